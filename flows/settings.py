"""Flow parameters -> the one Settings object (flows take plain, JSON-friendly overrides)."""

from __future__ import annotations

from forecasting.config import Settings


def settings_from(data_dir: str | None = None, database_url: str | None = None,
                  station_schema: str | None = None) -> Settings:
    overrides = {"data_dir": data_dir, "database_url": database_url,
                 "station_schema": station_schema}
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
