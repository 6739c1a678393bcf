"""`sensorcast status`: where each station stands, and a non-zero exit when it is stale (for
cron or a health check)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer

from flows.cli.app import StationOption, app
from flows.cli.common import chosen_stations, settings_store
from flows.cli.render import echo_status
from flows.settings import Settings


@app.command()
def status(ctx: typer.Context, station: StationOption = None) -> None:
    """Per station: newest observation and its age, champion and since when, last forecast
    and its age, the last run of ingest, retrain and forecast, files waiting in the drop
    folder (not yet stored), rows quarantined in the last day. Exits 1 when a station's newest observation
    is older than `forecast.max_data_age_minutes` or its last forecast older than
    `stale_forecast_hours`."""
    from forecasting.config import model_name, network_model_name
    from registry.dropfolder import waiting
    from registry.status import stale_reasons, station_status

    settings: Settings = ctx.obj
    stations = chosen_stations(settings, station)
    store, now, stale = settings_store(settings, read_only=True), datetime.now(UTC), 0
    try:
        for schema in stations:
            mine = store.of(schema.name)
            with mine.sessions() as session:
                s = station_status(session, mine.observations, schema.name,
                                   model_name(schema, settings.forecast), now,
                                   network_model_name(schema, settings.forecast))
                drop = settings.drop_dir(schema.name)
                unread = len(waiting(session, schema.name, drop))
            reasons = stale_reasons(
                s, timedelta(minutes=settings.forecast.max_data_age_minutes),
                timedelta(hours=settings.stale_forecast_hours), now)
            stale += bool(reasons)
            echo_status(schema.name, s, unread, drop, reasons, now)
    finally:
        store.close()
    if stale:
        raise typer.Exit(1)
