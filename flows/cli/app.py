"""The `sensorcast` Typer app and what all its commands take: the settings flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from flows.cli.common import fail
from flows.settings import Settings, invalid_settings

StationOption = Annotated[str | None, typer.Option(
    "--station", help="Only this station (default: all).")]

app = typer.Typer(help="Scheduled 24-hour forecasting for weather-station data.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def main(
    ctx: typer.Context,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (db, artifacts).")] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL.")] = None,
    station_schema: Annotated[Path | None, typer.Option(help="Station TOML.")] = None,
    stations_file: Annotated[Path | None, typer.Option(
        help="TOML list of stations (default: one, --station-schema's).")] = None,
) -> None:
    """Settings come from defaults, sensorcast.toml, SENSORCAST_* variables, then these flags."""
    flags = {"data_dir": data_dir, "database_url": database_url,
             "station_schema": station_schema, "stations_file": stations_file}
    from registry.db import checked_url

    try:
        ctx.obj = Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as invalid:
        fail(f"invalid settings: {invalid_settings(invalid)}")
    except ValueError as unreadable:  # sensorcast.toml that is not TOML
        fail(f"sensorcast.toml: {unreadable}")
    from registry.tables import station_rows

    try:  # the stations' descriptions, checked before any command uses them
        for station in ctx.obj.stations:
            station_rows(station)  # each channel can be an SQL column
        checked_url(ctx.obj.db_url)
    except (ValueError, OSError) as invalid:
        fail(str(invalid))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
