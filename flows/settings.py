"""Flow parameters -> the one Settings object (flows take plain, JSON-friendly overrides),
and run names that read well in the UI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from forecasting.config import Settings


def run_name(flow: str) -> Callable[[], str]:
    """`<flow> <start time, UTC>`, e.g. `ingest 2026-11-25 07:10`, instead of a random name."""
    def name() -> str:
        return f"{flow} {datetime.now(UTC):%Y-%m-%d %H:%M}"
    return name


def settings_from(data_dir: str | None = None, database_url: str | None = None,
                  station_schema: str | None = None) -> Settings:
    overrides = {"data_dir": data_dir, "database_url": database_url,
                 "station_schema": station_schema}
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
