"""Tables of the stations, their observations, quarantined rows and ingest runs.

Every station's observations share one table, `observations`, keyed by (station,
observed_at), with one REAL column per channel of any station: plain SQL reads every
station the same way (`WHERE station = 'jena'`), and a channel a station lacks is NULL in
its rows. A column means one quantity in one unit at every station (checked when a station
is first recorded)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import (BigInteger, Column, Connection, Float, ForeignKey, MetaData, String,
                        Table, Text, UniqueConstraint, select)
from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS as POSTGRESQL_RESERVED
from sqlalchemy.orm import Mapped, mapped_column

from forecasting.station.schema import TIMESTAMP_SQL_COLUMN, StationSchema
from registry.db import STATION, Base, UTCDateTime, int_pk, station_key, utc_time
from registry.migrations import add_missing_columns, migrate_to_stations


class StationRow(Base):
    """A station this database holds: what its rows and forecasts mean. One row each."""

    __tablename__ = "station"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    target: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))  # see station_fingerprint
    recorded_at: Mapped[utc_time]
    # Added with many stations (NULL only on a row recorded before, until its first open).
    target_column: Mapped[str | None] = mapped_column(String(100))
    units: Mapped[str | None] = mapped_column(Text)  # JSON: {column: unit} of its channels


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
    station: Mapped[station_key]
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


class ArchivedFile(Base):
    """A drop-folder file moved to the ingested folder, with its size and modification time
    as ingested: one that changes after its move (a writer still held it open) is read
    again, for `ingestion.WATCH_DAYS`."""

    __tablename__ = "archived_files"

    path: Mapped[str] = mapped_column(Text, primary_key=True)
    station: Mapped[station_key]
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    archived_at: Mapped[utc_time] = mapped_column(index=True)


class QuarantinedRow(Base):
    """A row that broke a rule, kept verbatim with the reason; unique per station, file and
    line."""

    __tablename__ = "quarantined_rows"
    __table_args__ = (UniqueConstraint(STATION, "sha256", "line_number"),)

    id: Mapped[int_pk]
    station: Mapped[station_key]
    run_id: Mapped[int] = mapped_column(ForeignKey("ingest_runs.id"))
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    line_number: Mapped[int]
    raw: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


class CellProblemRow(Base):
    """A stored row's cell of an optional channel that broke a rule: NULL in
    `observations`, the reason kept here; unique per station, file, line and column."""

    __tablename__ = "cell_problems"
    __table_args__ = (UniqueConstraint(STATION, "sha256", "line_number", "column_name"),)

    id: Mapped[int_pk]
    station: Mapped[station_key]
    run_id: Mapped[int] = mapped_column(ForeignKey("ingest_runs.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    line_number: Mapped[int]
    column_name: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)


@lru_cache(maxsize=None)
def keyword_problem(name: str) -> str | None:
    """Why plain SQL could not use `name` unquoted as a column, or None. Probed on a real
    in-memory SQLite; PostgreSQL's reserved words come from its SQLAlchemy dialect, its
    system columns (every table has them, so ALTER TABLE ADD fails) from its manual."""
    if name in POSTGRESQL_RESERVED:
        return "a reserved word in PostgreSQL"
    if name in POSTGRESQL_SYSTEM_COLUMNS:
        return "a system column of every PostgreSQL table"
    if name == STATION:
        return "the observations table's station key"
    try:
        with closing(sqlite3.connect(":memory:")) as probe:  # name is [a-z_][a-z0-9_]*
            probe.execute(f"create table probe ({name} real)")
            probe.execute(f"select {name} from probe where {name} > 0 order by {name}")
    except sqlite3.Error:
        return "an SQL keyword in SQLite"
    return None


POSTGRESQL_SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid",
                                       "oid"})


@dataclass(frozen=True)
class StationRows:
    """One station's part of `observations`: the table as its channels see it, and its key.
    Queries through it (registry.observations) read and write only this station's rows."""

    table: Table
    station: str


def station_rows(station: StationSchema) -> StationRows:
    """The station's part of `observations`. A channel whose column plain SQL could not name
    is refused before any table exists."""
    for c in station.channels:
        if problem := keyword_problem(c.column):
            raise ValueError(
                f"station {station.name!r}: channel {c.source!r} would be column {c.column!r}, "
                f"{problem}; give it another `column = \"...\"` in the station TOML")
    return StationRows(observation_table(
        tuple((c.column, f"{c.source} [{c.unit}]") for c in station.channels)), station.name)


@lru_cache(maxsize=None)
def observation_table(channels: tuple[tuple[str, str], ...]) -> Table:
    """`observations` with the key and the (column, comment) `channels` (nullable, since other
    stations' rows lack them): one Table for every station with these channels, so each
    statement on it compiles once for all of them; a Table per station kept compiled state
    for each (60 MiB more at 1,000 stations than at 100)."""
    return Table(
        "observations",
        MetaData(),
        Column(STATION, String(64), primary_key=True),
        Column(TIMESTAMP_SQL_COLUMN, UTCDateTime(), primary_key=True),
        *(Column(column, Float, comment=comment) for column, comment in channels),
    )


def create_tables(connection: Connection, stations: Sequence[StationSchema]) -> bool:
    """Create missing tables and columns, migrate a database from before stations were keys,
    and record each station (refusing one whose meaning changed, or a column another
    station uses in another unit). True when the set of stations grew (the views, which
    name each station's target, must then be rebuilt)."""
    Base.metadata.create_all(connection)
    add_missing_columns(connection, Base.metadata)
    grew = migrate_to_stations(connection, stations)
    grew = _record_stations(connection, stations) or grew
    station_rows(stations[0]).table.metadata.create_all(connection)
    for station in stations:  # a new station's channels become columns of the shared table
        add_missing_columns(connection, station_rows(station).table.metadata)
    return grew


def _record_stations(connection: Connection, stations: Sequence[StationSchema]) -> bool:
    """Record each station on first use; afterwards refuse any other meaning (a schema with
    the same channels but another target would mix pressure forecasts with temperature)."""
    rows = StationRow.__table__
    known = {r.name: r for r in connection.execute(select(rows))}
    units = {}  # column -> (unit, station) over every station, recorded and configured
    for row in known.values():
        for column, unit in json.loads(row.units or "{}").items():
            units.setdefault(column, (unit, row.name))
    grew = False
    for station in stations:
        mine = {c.column: c.unit for c in station.channels}
        for column, unit in mine.items():
            other_unit, other = units.setdefault(column, (unit, station.name))
            if other_unit != unit:
                raise ValueError(
                    f"station {station.name!r}: column {column!r} is in {unit}, but station "
                    f"{other!r} stores {column!r} in {other_unit}; one column holds one unit, "
                    "so give the channel another `column = \"...\"` in its station TOML")
        record = known.get(station.name)
        fingerprint = station_fingerprint(station)
        if record is None:
            connection.execute(rows.insert().values(
                name=station.name, target=station.target, fingerprint=fingerprint,
                recorded_at=datetime.now(UTC), target_column=station.target_channel.column,
                units=json.dumps(mine, sort_keys=True)))
            grew = True
        elif record.fingerprint != fingerprint:
            what = ("" if record.target != station.target
                    else " with other channels, units, clock or cadence")
            raise ValueError(
                f"this database holds station {record.name!r} forecasting {record.target!r}; "
                f"the settings describe station {station.name!r} forecasting "
                f"{station.target!r}{what}; give it another station name (or database_url)")
        elif record.target_column is None:  # recorded before these columns existed
            connection.execute(rows.update().where(rows.c.name == station.name).values(
                target_column=station.target_channel.column,
                units=json.dumps(mine, sort_keys=True)))
            grew = True
    return grew


def target_columns(connection: Connection) -> dict[str, str]:
    """Every recorded station's target column, by station name."""
    rows = StationRow.__table__
    return {r.name: r.target_column for r in connection.execute(
        select(rows.c.name, rows.c.target_column).where(rows.c.target_column.is_not(None)))}
