"""Opening the system of record: one engine, its sessions and the stations' tables."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, inspect, select
from sqlalchemy.orm import sessionmaker

from forecasting.station.schema import StationSchema
from forecasting.station.network import station_named
from registry import backtests, leases, versions  # noqa: F401  (registers their tables)
from registry.db import make_engine, make_sessionmaker, schema_transaction
from registry.forecasts import create_forecast_views
from registry.tables import StationRow, StationRows, create_tables, station_rows


class Store:
    """The database, seen from one station (`station`, whose rows `observations` reads and
    writes); `of(name)` gives the same database seen from another of `stations`.

    A plain class, not a dataclass: Prefect walks a dataclass parameter of every task call
    field by field (looking for futures), and through `stations` that walk grew with the
    network (13-24 % of each station's task time at 100 stations)."""

    __slots__ = ("engine", "sessions", "observations", "station", "stations")

    def __init__(self, engine: Engine, sessions: sessionmaker, observations: StationRows,
                 station: StationSchema, stations: tuple[StationSchema, ...]) -> None:
        self.engine, self.sessions, self.observations = engine, sessions, observations
        self.station, self.stations = station, stations

    def of(self, name: str) -> Store:
        station = station_named(self.stations, name)
        return Store(self.engine, self.sessions, station_rows(station), station,
                     self.stations)

    def unlisted(self) -> list[str]:
        """Stations this database holds that the configuration does not list: a removed
        stations file or a renamed station leaves their rows and models unserved."""
        from registry.tables import StationRow

        with self.sessions() as session:
            stored = session.scalars(select(StationRow.name)).all()
        return sorted(set(stored) - {s.name for s in self.stations})

    def close(self) -> None:
        self.engine.dispose()


def open_store(database_url: str, stations: StationSchema | Sequence[StationSchema],
               read_only: bool = False) -> Store:
    """Connect, create any missing tables, migrate an older database and record the
    stations (idempotent); the store is seen from the first station. `read_only` changes
    nothing: it only checks that the database holds sensorcast's tables (ValueError)."""
    stations = (stations,) if isinstance(stations, StationSchema) else tuple(stations)
    engine = make_engine(database_url)
    try:
        if read_only:
            if not inspect(engine).has_table(StationRow.__tablename__):
                raise ValueError(f"{engine.url.database} holds no sensorcast tables; nothing "
                                 "was changed")
        else:
            with schema_transaction(engine) as connection:
                grew = create_tables(connection, stations)
                create_forecast_views(connection, rebuild=grew)
    except Exception:
        engine.dispose()
        raise
    first = stations[0]
    return Store(engine, make_sessionmaker(engine), station_rows(first), first, stations)
