"""Station data: ingest files, write a simulated station."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import StationOption, app
from flows.cli.common import chosen_stations, fail, settings_store
from flows.settings import Settings


@app.command()
def ingest(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(
        help="CSV file or folder of the station (default: each station's drop folder).")
    ] = None,
    station: StationOption = None,
) -> None:
    """Validate and store new rows; bad rows are quarantined with a reason."""
    settings: Settings = ctx.obj
    stations = chosen_stations(settings, station)
    if path and len(stations) > 1:
        fail(f"which station's file is {path}? add --station (one of "
             f"{', '.join(s.name for s in stations)})")
    store = settings_store(settings)
    try:
        failed = sum(_ingest_station(settings, store.of(s.name), path) for s in stations)
    finally:
        store.close()
    if failed:
        raise typer.Exit(1)


def _ingest_station(settings: Settings, store, path: Path | None) -> int:
    """Ingest one station's files, saying each file's outcome as the flow's log does;
    returns how many were refused or failed."""
    from flows.ingest import archive_warning, describe, ingest_source, refusal

    source = path or settings.drop_dir(store.station.name)
    done = None if path else settings.done_dir(store.station.name)
    try:
        summaries, refused = ingest_source(store, source, settings.chunk_rows, done)
    except OSError as exc:
        fail(str(exc))
    prefix = f"{store.station.name}: " if len(settings.stations) > 1 else ""
    for entry in refused:
        typer.echo(prefix + refusal(entry), err=True)
    if warning := archive_warning(summaries):
        typer.echo(f"{prefix}warning: {warning}", err=True)
    for s in summaries:
        typer.echo(prefix + describe(s), err=s.status in ("refused", "failed"))
    if not summaries and not refused:
        typer.echo(f"{prefix}no CSV files in {source}")
    return len(refused) + sum(s.status in ("refused", "failed") for s in summaries)


@app.command("split-wide")
def split_wide(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(
        help="Wide files, one per quantity, each named for its channel (temperature.csv or "
             ".csv.gz), a timestamp column and a column per station.")],
) -> None:
    """Split wide files into one file per station, written into each station's drop folder
    for `ingest`: cells are passed on as written, so ingest validates and quarantines them."""
    from forecasting.station.wide import WideFileError
    from forecasting.station.wide import split_wide as split

    settings: Settings = ctx.obj
    sites = settings.sites
    try:
        parts = split(files, {s.station.name: s.station for s in sites},
                      {s.station.name: s.column for s in sites})
    except WideFileError as exc:
        fail(str(exc))
    for part in parts:
        folder = settings.drop_dir(part.station)
        target = folder / part.name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")  # not `.csv` until complete
            partial.write_text(part.text)
            partial.replace(target)
        except OSError as exc:
            fail(f"cannot write {target}: {exc.strerror or exc}")
        typer.echo(f"{part.station}: {part.rows} rows to {target}")


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="CSV file to write (a folder with --stations).")],
    start: Annotated[str | None, typer.Option(
        help="First day (station local time); default: the data ends now, so `forecast` "
             "can use it at once.")] = None,
    days: Annotated[int, typer.Option(min=1, max=36_525)] = 180,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    gaps: Annotated[float, typer.Option(help="Fraction of rows missing (0 to 1).")] = 0.0,
    duplicates: Annotated[float, typer.Option(help="Fraction of rows repeated.")] = 0.0,
    sentinels: Annotated[float, typer.Option(help="Fraction of -9999 wind values.")] = 0.0,
    garbled: Annotated[float, typer.Option(help="Fraction of garbled lines.")] = 0.0,
    stations: Annotated[int, typer.Option(
        min=0, help="Write a network of N stations instead (climates of their own, shared "
                    "weather systems): OUT/stations.toml and OUT/incoming/<station>/.")] = 0,
) -> None:
    """Write a synthetic Jena-format station file, or a network of them (deterministic for
    a seed)."""
    import math

    import pandas as pd

    from forecasting.station.simulate import (
        Faults,
        network_until,
        simulate_network,
        simulate_station,
        simulate_until,
        write_network,
        write_station_csv,
    )

    fractions = {"gaps": gaps, "duplicates": duplicates, "sentinels": sentinels,
                 "garbled": garbled}
    for name, value in fractions.items():
        if not (math.isfinite(value) and 0 <= value < 1):
            fail(f"--{name} {value}: a fraction of the rows, at least 0 and below 1")
    try:
        pd.Timestamp(start or "now")
    except ValueError as exc:
        fail(f"--start {start!r} is not a date (e.g. 2016-01-01): {exc}")
    faults, now = Faults(gaps, duplicates, sentinels, garbled), pd.Timestamp.now("UTC")
    span = (f"{days} days from {start}" if start
            else f"{days} days up to now, {now:%Y-%m-%d %H:%M} UTC")
    try:
        if stations:
            network = (simulate_network(start, days, stations, seed) if start
                       else network_until(now, days, stations, seed))
            listed = write_network(out, network, faults, seed)
            typer.echo(f"wrote {stations} stations ({span}) under {out}; "
                       f"use them with --stations-file {listed}")
            return
        frame = simulate_station(start, days, seed) if start else simulate_until(now, days, seed)
        write_station_csv(out, frame, faults, seed)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    typer.echo(f"wrote {len(frame)} rows ({span}) to {out}")
