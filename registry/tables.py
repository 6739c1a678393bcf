"""Tables of the station, its observations, quarantined rows and ingest runs."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import Column, Connection, Float, ForeignKey, MetaData, String, Table, Text
from sqlalchemy import UniqueConstraint, inspect, select
from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS as POSTGRESQL_RESERVED
from sqlalchemy.orm import Mapped, mapped_column

from forecasting.schema import TIMESTAMP_SQL_COLUMN, StationSchema
from registry.db import Base, UTCDateTime, int_pk, utc_time
from registry.migrations import add_missing_columns


class StationRow(Base):
    """The station this database holds: what its rows and forecasts mean. One row."""

    __tablename__ = "station"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    target: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))  # see station_fingerprint
    recorded_at: Mapped[utc_time]


def station_fingerprint(station: StationSchema) -> str:
    """sha256 of what gives stored values and forecasts their meaning: channel columns and
    units, the target, the clock and cadence (not the valid ranges, which may be widened)."""
    meaning = {"channels": [(c.source, c.column, c.unit) for c in station.channels],
               "target": station.target, "timezone": station.timezone,
               "cadence_minutes": station.cadence_minutes}
    return hashlib.sha256(json.dumps(meaning, sort_keys=True).encode()).hexdigest()


class IngestRun(Base):
    """One attempt to ingest one file; its counters advance with each committed chunk."""

    __tablename__ = "ingest_runs"

    id: Mapped[int_pk]
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # running|complete|refused|failed|interrupted
    rows_read: Mapped[int] = mapped_column(default=0)
    rows_inserted: Mapped[int] = mapped_column(default=0)
    rows_present: Mapped[int] = mapped_column(default=0)
    rows_quarantined: Mapped[int] = mapped_column(default=0)
    extra_columns: Mapped[str] = mapped_column(Text, default="")
    newest_observation: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[utc_time]
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class QuarantinedRow(Base):
    """A row that broke a rule, kept verbatim with the reason; unique per file and line."""

    __tablename__ = "quarantined_rows"
    __table_args__ = (UniqueConstraint("sha256", "line_number"),)

    id: Mapped[int_pk]
    run_id: Mapped[int] = mapped_column(ForeignKey("ingest_runs.id"))
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    line_number: Mapped[int]
    raw: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


def keyword_problem(name: str) -> str | None:
    """Why plain SQL could not use `name` unquoted as a column, or None. Probed on a real
    in-memory SQLite; PostgreSQL's reserved words come from its SQLAlchemy dialect."""
    if name in POSTGRESQL_RESERVED:
        return "a reserved word in PostgreSQL"
    try:
        with closing(sqlite3.connect(":memory:")) as probe:  # name is [a-z_][a-z0-9_]*
            probe.execute(f"create table probe ({name} real)")
            probe.execute(f"select {name} from probe where {name} > 0 order by {name}")
    except sqlite3.Error:
        return "an SQL keyword in SQLite"
    return None


@lru_cache(maxsize=None)
def observation_table(station: StationSchema) -> Table:
    """`observations`: one row per UTC timestamp, one REAL column per channel of the station;
    a channel whose column plain SQL could not name is refused before any table exists."""
    for c in station.channels:
        if problem := keyword_problem(c.column):
            raise ValueError(
                f"station {station.name!r}: channel {c.source!r} would be column {c.column!r}, "
                f"{problem}; give it another `column = \"...\"` in the station TOML")
    return Table(
        "observations",
        MetaData(),
        Column(TIMESTAMP_SQL_COLUMN, UTCDateTime(), primary_key=True),
        *(
            Column(c.column, Float, nullable=False, comment=f"{c.source} [{c.unit}]")
            for c in station.channels
        ),
    )


def _column_difference(found: list[str], expected: list[str]) -> str:
    """The difference in words, so two long lists need not be compared by eye."""
    if sorted(found) == sorted(expected):
        at = next(i for i, (f, e) in enumerate(zip(found, expected)) if f != e)
        return (f"the same columns in another order (column {at + 1} is {found[at]!r}, the "
                f"station has {expected[at]!r} there)")
    parts = [f"{label} {names}" for label, names in (
        ("it lacks", [n for n in expected if n not in found]),
        ("it has extra", [n for n in found if n not in expected])) if names]
    return ", ".join(parts)


def create_tables(connection: Connection, station: StationSchema) -> Table:
    """Create missing tables and columns; refuse a database whose observations belong to
    another station."""
    Base.metadata.create_all(connection)
    add_missing_columns(connection, Base.metadata)
    table = observation_table(station)
    inspector = inspect(connection)
    if inspector.has_table("observations"):
        found = [c["name"] for c in inspector.get_columns("observations")]
        expected = [c.name for c in table.columns]
        if found != expected:
            raise ValueError(f"database observations table does not fit station "
                             f"{station.name!r}: {_column_difference(found, expected)}; use "
                             "another database_url")
    table.metadata.create_all(connection)
    _check_station(connection, station)
    return table


def _check_station(connection: Connection, station: StationSchema) -> None:
    """Record the station on first use; afterwards refuse any other meaning (a schema with
    the same channels but another target would mix pressure forecasts with temperature)."""
    rows = StationRow.__table__
    known = connection.execute(select(rows)).first()
    mine = station_fingerprint(station)
    if known is None:
        connection.execute(rows.insert().values(name=station.name, target=station.target,
                                                fingerprint=mine, recorded_at=datetime.now(UTC)))
    elif known.fingerprint != mine:
        what = ("" if known.target != station.target
                else " with other channels, units, clock or cadence")
        raise ValueError(
            f"this database holds station {known.name!r} forecasting {known.target!r}; the "
            f"settings describe station {station.name!r} forecasting {station.target!r}{what}; "
            "use another database_url for it")
