"""Forecasts: issue (or backfill) them, and plot them."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import StationOption, app
from flows.cli.common import (chosen_stations, fail, flow_settings, prefect_home, run_flow,
                              settings_store, timestamp)
from flows.cli.render import echo_latest
from flows.settings import Settings


class ModelChoice(str, Enum):
    as_of = "as-of"
    current = "current"


@app.command()
def forecast(
    ctx: typer.Context,
    at: Annotated[str | None, typer.Option(
        help="Issue as of this time (ISO, UTC unless an offset is given); default now.")] = None,
    days: Annotated[int, typer.Option(
        min=0, max=36_500, help="Also backfill one forecast a day for the N days before.")] = 0,
    model: Annotated[ModelChoice, typer.Option(
        help="as-of: each forecast by the champion of its time (out of sample); current: "
             "today's champion, rows inside its training span marked in sample.")
    ] = ModelChoice.as_of,
    station: StationOption = None,
) -> None:
    """Forecast the next 24 hours with the champion (the best naive forecast if there is
    none), using only observations at or before the forecast time."""
    settings: Settings = ctx.obj
    chosen_stations(settings, station)
    when = timestamp(at, "--at") if at else None
    prefect_home(settings)
    from flows.forecast import forecast as forecast_flow

    issued = run_flow(forecast_flow, **flow_settings(settings), station=station,
                       at=when, days=days,
                       model=model.value.replace("-", "_"), triggered_by="cli")
    for name, runs in issued.items():
        for run in runs:
            by = run["model_name"] + (f" v{run['model_version']}" if run["model_version"]
                                      else "")
            typer.echo(f"{name} as of {run['as_of']:%Y-%m-%d %H:%M}: issued at "
                       f"{run['issued_at']:%Y-%m-%d %H:%M} UTC by {by}, "
                       f"{run['rows_written']} new rows"
                       + (f" ({run['message']})" if run["message"] else ""))
        echo_latest(settings, name)


class Export(str, Enum):
    latest = "latest"
    forecasts = "forecasts"
    skill = "skill"


EXPORTED = {"latest": "latest_forecast", "forecasts": "forecasts", "skill": "forecast_skill"}


@app.command()
def export(
    ctx: typer.Context,
    what: Annotated[Export, typer.Argument(
        help="latest: each station's newest forecast; forecasts: every forecast issued (in "
             "--start/--end); skill: each verified forecast beside what was observed and "
             "the naive forecasts.")],
    out: Annotated[Path, typer.Option(help="A .csv or .parquet file to write.")],
    start: Annotated[str | None, typer.Option(
        help="Issued at or after (ISO, UTC unless an offset is given).")] = None,
    end: Annotated[str | None, typer.Option(help="Issued before.")] = None,
    tz: Annotated[str, typer.Option(
        help="Time zone of the times written (e.g. Europe/Berlin); the database keeps UTC.")
    ] = "UTC",
    station: StationOption = None,
) -> None:
    """Write forecasts or their skill as CSV or Parquet (by the file's suffix), times with
    their offset in `--tz`."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from registry.forecasts import read_view

    settings: Settings = ctx.obj
    chosen_stations(settings, station)
    if out.suffix not in (".csv", ".parquet"):
        fail(f"--out {out}: name a .csv or .parquet file")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"--tz {tz!r} is not a time zone (e.g. UTC, Europe/Berlin)")
    since = timestamp(start, "--start") if start else None
    until = timestamp(end, "--end") if end else None
    if since and until and until < since:
        fail(f"--end {end} is before --start {start}")
    store = settings_store(settings, read_only=True)
    try:
        with store.sessions() as session:
            frame = read_view(session, EXPORTED[what.value], station, since, until=until)
    finally:
        store.close()
    for column in ("issued_at", "target_time", "created_at"):
        if column in frame:
            frame[column] = frame[column].dt.tz_localize("UTC").dt.tz_convert(tz)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".csv":
            frame.to_csv(out, index=False)
        else:
            frame.to_parquet(out, index=False)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    typer.echo(f"wrote {len(frame)} rows to {out} (times in {tz})")


@app.command()
def plot(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(help="PNG path; default data/plots.")] = None,
    days: Annotated[int, typer.Option(min=1, help="Days of observations shown.")] = 7,
    station: StationOption = None,
) -> None:
    """Write a PNG of the latest forecast against recent observations and past forecasts,
    one per station."""
    from flows.forecast import PLOT_FILE, plot_dir, render_plot

    settings: Settings = ctx.obj
    stations = chosen_stations(settings, station)
    if out and len(stations) > 1:
        fail("--out names one file: add --station")
    store = settings_store(settings)
    try:
        paths = {s.name: render_plot(store.of(s.name),
                                     out or plot_dir(settings, s.name) / PLOT_FILE, days)
                 for s in stations}
    finally:
        store.close()
    for name, path in paths.items():
        typer.echo(f"{name}: wrote {path}" if path else
                   f"{name}: no forecast in the database yet; run `sensorcast forecast` first")
    if not all(paths.values()):
        raise typer.Exit(2)
