"""Engine, sessions and the shared column types of the system of record."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from sqlalchemy import Connection, DateTime, Engine, String, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
BUSY_TIMEOUT_MS = 60_000


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out.

    SQLite stores them as `YYYY-MM-DD HH:MM:SS` text (sortable, readable by `datetime()`),
    PostgreSQL as `timestamptz`.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(
                sqlite.DATETIME(
                    storage_format="%(year)04d-%(month)02d-%(day)02d "
                    "%(hour)02d:%(minute)02d:%(second)02d",
                    regexp=r"(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)",
                )
            )
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} given where UTC is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


utc_time = Annotated[datetime, mapped_column(UTCDateTime())]
STATION = "station"
# The station a row belongs to, in every table of station data. Nullable only because
# columns are added to existing tables as nullable; a migrated database's rows are filled
# in and every row written since carries it.
station_key = Annotated[str | None, mapped_column(String(64))]
int_pk = Annotated[int, mapped_column(primary_key=True, autoincrement=True)]


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime()}


def checked_url(url: str) -> URL:
    """`url` parsed, if it names a database sensorcast works with (SQLite or PostgreSQL);
    ValueError saying what is wrong otherwise."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"database_url {url!r} is not a database URL (e.g. "
                         "sqlite:///data/sensorcast.db or postgresql+psycopg://user@host/db)"
                         ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"database_url {url!r}: {parsed.get_backend_name()} is not "
                         "supported; use SQLite (sqlite:///...) or PostgreSQL "
                         "(postgresql+psycopg://...)")
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        raise ValueError(f"database_url {url!r}: PostgreSQL is reached through psycopg 3; "
                         "write postgresql+psycopg://...")
    return parsed


def make_engine(url: str) -> Engine:
    """An engine for any SQLAlchemy URL; SQLite files get WAL and a busy timeout."""
    parsed = checked_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:" and \
            not parsed.query.get("uri"):  # a `file:` URI names an existing file
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        wal_mode(cursor)
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def wal_mode(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL. While other processes open the same new file, SQLite answers
    this at once with "database is locked" instead of waiting out the busy timeout (8
    processes at once: in 14-57 % of new files here), so it is retried until that timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as busy:
            if "locked" not in str(busy) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def schema_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for checking and creating the schema. On SQLite it holds the write
    lock from its start (BEGIN IMMEDIATE), so processes opening a new database at once take
    turns instead of one creating a table between another's check and its CREATE."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            yield connection
        return
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")  # we issue BEGIN/COMMIT
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.exec_driver_sql("ROLLBACK")
            raise
        connection.exec_driver_sql("COMMIT")


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
