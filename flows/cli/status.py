"""`sensorcast status`: where each station stands, and a non-zero exit when it is stale (for
cron or a health check)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer

from flows.cli.app import StationOption, app
from flows.cli.common import chosen_stations, settings_store
from flows.settings import Settings


@app.command()
def status(ctx: typer.Context, station: StationOption = None) -> None:
    """Per station: newest observation and its age, champion and since when, last forecast
    and its age, the last run of ingest, retrain and forecast, files waiting in the drop
    folder, rows quarantined in the last day. Exits 1 when a station's newest observation
    is older than `forecast.max_data_age_minutes` or its last forecast older than
    `stale_forecast_hours`."""
    from forecasting.config import model_name
    from registry.status import age, stale_reasons, station_status

    settings: Settings = ctx.obj
    stations = chosen_stations(settings, station)
    store, now, stale = settings_store(settings, read_only=True), datetime.now(UTC), 0
    try:
        for schema in stations:
            mine = store.of(schema.name)
            with mine.sessions() as session:
                s = station_status(session, mine.observations, schema.name,
                                   model_name(schema, settings.forecast), now)
            drop = settings.drop_dir(schema.name)
            waiting = len(list(drop.glob("*.csv"))) if drop.is_dir() else 0
            reasons = stale_reasons(
                s, timedelta(minutes=settings.forecast.max_data_age_minutes),
                timedelta(hours=settings.stale_forecast_hours), now)
            stale += bool(reasons)

            def when(moment: datetime | None) -> str:
                return (f"{moment:%Y-%m-%d %H:%M} UTC ({age(now - moment)} ago)" if moment
                        else "none")

            runs = "; ".join(f"{kind} {when(run.at)}: {run.outcome}"
                             for kind, run in s.last_runs.items()) or "none"
            typer.echo(f"{schema.name}:")
            typer.echo(f"  newest observation  {when(s.newest_observation)}")
            typer.echo(f"  champion            {s.champion or 'none (forecasts are best naive)'}"
                       + (f", since {when(s.champion_since)}" if s.champion_since else ""))
            typer.echo(f"  last forecast       {when(s.last_forecast)}"
                       + (f" by {s.last_forecast_by}" if s.last_forecast_by else ""))
            typer.echo(f"  last runs           {runs}")
            typer.echo(f"  drop folder         {waiting} file(s) waiting in {drop}")
            typer.echo(f"  quarantined         {s.quarantined_last_day} row(s) in the last day")
            verdict = "STALE: " + "; ".join(reasons) if reasons else "ok"
            typer.echo(f"  status              {verdict}")
    finally:
        store.close()
    if stale:
        raise typer.Exit(1)
