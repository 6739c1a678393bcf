"""Opening the system of record: one engine, its sessions and the station's tables."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, Table
from sqlalchemy.orm import sessionmaker

from forecasting.schema import StationSchema
from registry import backtests, versions  # noqa: F401  (registers their tables)
from registry.db import make_engine, make_sessionmaker, schema_transaction
from registry.forecasts import create_forecast_views
from registry.tables import create_tables


@dataclass(frozen=True)
class Store:
    engine: Engine
    sessions: sessionmaker
    observations: Table
    station: StationSchema

    def close(self) -> None:
        self.engine.dispose()


def open_store(database_url: str, station: StationSchema) -> Store:
    """Connect and create any missing tables (idempotent)."""
    engine = make_engine(database_url)
    try:
        with schema_transaction(engine) as connection:
            observations = create_tables(connection, station)
            create_forecast_views(connection, station)
    except Exception:
        engine.dispose()
        raise
    return Store(engine, make_sessionmaker(engine), observations, station)
