"""Writing and reading observations in bulk, one station at a time: each function takes the
station's part of `observations` (registry.tables.StationRows) and touches only its rows."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import repeat

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, String, Table, func, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from forecasting.station.schema import TIMESTAMP_SQL_COLUMN
from registry.db import STATION
from registry.tables import StationRows

_UPSERT_DIALECTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def insert_ignore(session: Session, table: Table, rows: list[dict]) -> int:
    """Insert rows, skipping keys already present; returns how many were inserted."""
    if not rows:
        return 0
    return _counted(session.connection(), _insert_ignore_statement(session, table), rows)


def _counted(connection, stmt, rows: list[dict]) -> int:
    """Execute a multi-row insert and count the rows it really inserted. SQLite's rowcount
    says so; through psycopg 3 a multi-row `INSERT ... ON CONFLICT DO NOTHING` reports -1,
    so there the inserted rows are returned and counted."""
    if connection.dialect.name == "sqlite":
        return connection.execute(stmt, rows).rowcount
    key = next(iter(stmt.table.primary_key.columns))
    return len(connection.execute(stmt.returning(key), rows).all())


def upsert_insert(session: Session, table: Table):
    """The dialect's INSERT that takes ON CONFLICT clauses (SQLite and PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    if dialect not in _UPSERT_DIALECTS:
        raise NotImplementedError(
            f"idempotent insert needs ON CONFLICT; supported: {sorted(_UPSERT_DIALECTS)}, "
            f"got {dialect!r}"
        )
    return _UPSERT_DIALECTS[dialect](table)


def _insert_ignore_statement(session: Session, table: Table):
    return upsert_insert(session, table).on_conflict_do_nothing()


def insert_observations(
    session: Session, mine: StationRows, times: np.ndarray, values: np.ndarray
) -> int:
    """Bulk-insert the station's UTC `datetime64[s]` times with their channel values;
    existing times are kept.

    SQLite takes pre-formatted rows straight to the driver's `executemany` (the ORM's
    per-row processing would cost more than the insert itself); PostgreSQL takes them by
    COPY (`_copy_postgresql`); other databases get the same statement through
    SQLAlchemy's parameter handling.
    """
    if not len(times):
        return 0
    connection, table = session.connection(), mine.table
    if connection.dialect.name == "postgresql":
        return _copy_postgresql(connection, mine, times, values)
    stmt = _insert_ignore_statement(session, table)
    if connection.dialect.name == "sqlite":
        compiled = stmt.compile(dialect=connection.dialect)
        if list(compiled.positiontup) != [c.name for c in table.columns]:
            raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
        rows = zip(repeat(mine.station), _sqlite_stamps(times), *values.T.tolist())
        return connection.exec_driver_sql(str(compiled), list(rows)).rowcount
    names = [c.name for c in table.columns]
    rows = [  # NaN, a blank optional cell, is NULL (SQLite stores a NaN as NULL itself)
        dict(zip(names, (mine.station, t, *(None if x != x else x for x in v))))
        for t, v in zip(_aware(times), values.tolist())
    ]
    return _counted(connection, stmt, rows)


def _copy_postgresql(connection, mine: StationRows, times: np.ndarray, values: np.ndarray
                     ) -> int:
    """PostgreSQL's bulk path, in the caller's transaction (a chunk stays all or nothing).
    Rows that are all new (the ingest has set aside the times it found stored) are COPYed
    straight into the table; if another writer stored one of them meanwhile, COPY fails on
    the key, is rolled back to its savepoint, and the rows go through a temporary table
    and one `INSERT ... SELECT ... ON CONFLICT DO NOTHING`. Either way the count is exact."""
    from psycopg import errors, sql

    table = mine.table
    names = [c.name for c in table.columns]
    columns = sql.SQL(", ").join(map(sql.Identifier, names))
    target, staging = sql.Identifier(table.name), sql.Identifier(f"staging_{table.name}")
    form, block = _copy_block(mine.station, times, values)
    cursor = connection.connection.driver_connection.cursor()

    def copy_into(name) -> None:
        with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT {})")
                         .format(name, columns, sql.SQL(form))) as copy:
            copy.write(block)

    cursor.execute("SAVEPOINT sensorcast_copy")
    try:
        copy_into(target)
    except errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT sensorcast_copy")
    else:
        cursor.execute("RELEASE SAVEPOINT sensorcast_copy")
        return len(times)
    cursor.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DROP")
                   .format(staging, target))
    copy_into(staging)
    cursor.execute(sql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM {s} ON CONFLICT DO NOTHING")
                   .format(t=target, c=columns, s=staging))
    inserted = cursor.rowcount
    cursor.execute(sql.SQL("TRUNCATE {}").format(staging))  # the next chunk of this transaction
    return inserted


PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")  # timestamptz's zero, binary COPY


def _copy_block(station: str, times: np.ndarray, values: np.ndarray) -> tuple[str, bytes]:
    """The rows (station, UTC time, channel values) as COPY data, built by numpy rather than
    a Python call per row: PostgreSQL's binary format (a fixed-size record per row: text,
    timestamptz, float8s) when no value is missing, else CSV, where NaN (a blank optional
    cell) is an empty field, which COPY reads as NULL."""
    if np.isnan(values).any():
        rows = pd.DataFrame(values)
        rows.insert(0, "t", [f"{stamp}+00" for stamp in _sqlite_stamps(times)])
        rows.insert(0, "s", station)
        return "csv", rows.to_csv(header=False, index=False, lineterminator="\n").encode()
    name = station.encode()
    fields = [("n", ">i2"), ("ls", ">i4"), ("s", f"S{len(name)}"), ("lt", ">i4"), ("t", ">i8")]
    fields += [f for k in range(values.shape[1]) for f in ((f"l{k}", ">i4"), (f"v{k}", ">f8"))]
    rows = np.empty(len(times), np.dtype(fields))
    rows["n"], rows["ls"], rows["s"], rows["lt"] = 2 + values.shape[1], len(name), name, 8
    rows["t"] = (times.astype("datetime64[us]") - PG_EPOCH).astype(np.int64)
    for k in range(values.shape[1]):
        rows[f"l{k}"], rows[f"v{k}"] = 8, values[:, k]
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") * 2
    return "binary", header + rows.tobytes() + (-1).to_bytes(2, "big", signed=True)


def _sqlite_stamps(times: np.ndarray) -> list[str]:
    """`YYYY-MM-DD HH:MM:SS` strings (the UTCDateTime storage format), vectorized."""
    stamps = np.datetime_as_string(times.astype("datetime64[s]"), unit="s").astype("U19")
    stamps.view(np.uint32).reshape(-1, 19)[:, 10] = ord(" ")  # ISO 'T' -> ' '
    return stamps.tolist()


def stored_between(
    session: Session, mine: StationRows, start: np.datetime64, end: np.datetime64
) -> tuple[np.ndarray, np.ndarray]:
    """Stored (times, values) with start <= time <= end, ordered by time."""
    table = mine.table
    ts = table.c[TIMESTAMP_SQL_COLUMN]
    rows = session.execute(
        select(*_columns(table)).where(_mine(mine), ts >= _aware([start])[0],
                                       ts <= _aware([end])[0]).order_by(ts)
    ).all()
    if not rows:
        return np.array([], "datetime64[s]"), np.empty((0, len(table.columns) - 2))
    times = np.array([r[0].replace(tzinfo=None) for r in rows], "datetime64[s]")
    return times, np.array([r[1:] for r in rows], np.float64)


def newest_time(session: Session, mine: StationRows, until: datetime | None = None
                ) -> datetime | None:
    """Time of the newest stored observation (at or before `until`), None when there is none."""
    ts = mine.table.c[TIMESTAMP_SQL_COLUMN]
    query = select(func.max(ts)).where(_mine(mine))
    if until is not None:
        query = query.where(ts <= until)
    return session.scalar(query)


def read_observations(
    session: Session, mine: StationRows, start: datetime | None = None,
    end: datetime | None = None
) -> pd.DataFrame:
    """The station's observations as a frame indexed by naive UTC time, one column per
    channel."""
    ts = mine.table.c[TIMESTAMP_SQL_COLUMN]
    channels = [c for c in _columns(mine.table) if c is not ts]
    # The times as the database holds them (SQLite: text), parsed as one array: converting
    # them row by row was a third of a station's daily retrain.
    sqlite_text = session.get_bind().dialect.name == "sqlite"
    query = select(type_coerce(ts, String) if sqlite_text else ts, *channels).where(
        _mine(mine)).order_by(ts)
    if start is not None:
        query = query.where(ts >= start)
    if end is not None:
        query = query.where(ts <= end)
    rows = session.execute(query).all()
    times = [r[0] for r in rows]
    index = (pd.to_datetime(times, format="%Y-%m-%d %H:%M:%S") if sqlite_text
             else pd.to_datetime(times, utc=True).tz_localize(None))
    values = np.array([r[1:] for r in rows], np.float64).reshape(len(rows), len(channels))
    return pd.DataFrame(values, columns=[c.name for c in channels],
                        index=pd.DatetimeIndex(index).as_unit("s").rename(TIMESTAMP_SQL_COLUMN))


def _mine(mine: StationRows) -> ColumnElement[bool]:
    return mine.table.c[STATION] == mine.station


def _columns(table: Table) -> list:
    """Time, then the station's channels (the key's station column left out)."""
    return [c for c in table.columns if c.name != STATION]


def _aware(times) -> list[datetime]:
    return [
        pd.Timestamp(t).to_pydatetime().replace(tzinfo=UTC) for t in np.asarray(times).tolist()
    ]
