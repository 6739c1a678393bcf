"""`sensorcast`: the user's entry point (ingest, simulate, demo)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from forecasting.config import Settings
from forecasting.csvfile import HeaderError

app = typer.Typer(help="Scheduled 24-hour forecasting for weather-station data.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def main(
    ctx: typer.Context,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (db, artifacts).")] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL.")] = None,
    station_schema: Annotated[Path | None, typer.Option(help="Station TOML.")] = None,
) -> None:
    """Settings come from defaults, sensorcast.toml, SENSORCAST_* variables, then these flags."""
    flags = {"data_dir": data_dir, "database_url": database_url,
             "station_schema": station_schema}
    ctx.obj = Settings(**{k: v for k, v in flags.items() if v is not None})


@app.command()
def ingest(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="CSV file or drop folder.")] = None,
) -> None:
    """Validate and store new rows; bad rows are quarantined with a reason."""
    from registry.ingestion import files_to_ingest, ingest_file

    settings: Settings = ctx.obj
    source = path or settings.drop_dir
    failed = 0
    try:
        files = files_to_ingest(source)
    except OSError as exc:
        _fail(str(exc))
    store = _store(settings)
    try:
        for file in files:
            try:
                s = ingest_file(store, file, settings.chunk_rows)
            except (HeaderError, OSError) as exc:
                failed += 1
                typer.echo(f"{file}: refused: {exc}", err=True)
                continue
            extra = f"; ignored columns: {', '.join(s.extra_columns)}" if s.extra_columns else ""
            if s.status == "skipped":
                typer.echo(f"{file}: skipped ({s.message})")
            else:
                typer.echo(
                    f"{file}: {s.rows_read} read, {s.rows_inserted} inserted, "
                    f"{s.rows_present} already present, {s.rows_quarantined} quarantined; "
                    f"newest {s.newest_observation}{extra}"
                )
    finally:
        store.close()
    if not files:
        typer.echo(f"no CSV files in {source}")
    if failed:
        raise typer.Exit(1)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="CSV file to write.")],
    start: Annotated[str, typer.Option(help="First day (station local time).")] = "2009-01-01",
    days: Annotated[int, typer.Option(min=1)] = 180,
    seed: Annotated[int, typer.Option()] = 0,
    gaps: Annotated[float, typer.Option(help="Fraction of rows missing.")] = 0.0,
    duplicates: Annotated[float, typer.Option(help="Fraction of rows repeated.")] = 0.0,
    sentinels: Annotated[float, typer.Option(help="Fraction of -9999 wind values.")] = 0.0,
    garbled: Annotated[float, typer.Option(help="Fraction of garbled lines.")] = 0.0,
) -> None:
    """Write a synthetic Jena-format station file (deterministic for a seed)."""
    from forecasting.simulate import Faults, simulate_station, write_station_csv

    frame = simulate_station(start, days, seed)
    write_station_csv(out, frame, Faults(gaps, duplicates, sentinels, garbled), seed)
    typer.echo(f"wrote {len(frame)} rows ({days} days from {start}) to {out}")


@app.command()
def retrain(
    ctx: typer.Context,
    family: Annotated[list[str] | None, typer.Option(help="Only these families.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Train the candidates on the rolling window, register them, apply the gate."""
    settings: Settings = ctx.obj
    _prefect_home(settings)
    from flows.retrain import retrain as retrain_flow
    from forecasting.windows import NotEnoughData

    try:
        rows = retrain_flow(data_dir=str(settings.data_dir),
                            database_url=settings.database_url,
                            station_schema=_str(settings.station_schema),
                            families=family or None, epochs=epochs, triggered_by="cli")
    except (NotEnoughData, ValueError) as exc:
        _fail(str(exc))
    for row in rows:
        typer.echo(f"{row['family']:<18} v{row['version']:<4} mean MAE {row['mean_mae']:.3f} "
                   f"(persistence {row['persistence_mean_mae']:.3f})  +24 h "
                   f"{row['last_mae']:.3f} ({row['persistence_last_mae']:.3f})  "
                   f"{row['decision']}: {row['reason']}")


@app.command()
def models(ctx: typer.Context) -> None:
    """Registered versions with their holdout metrics; * marks the champion."""
    from forecasting.training import model_name
    from registry.versions import champion, list_events, list_versions

    settings: Settings = ctx.obj
    name = model_name(settings.station, settings.forecast)
    store = _store(settings)
    with store.sessions() as session:
        versions = list_versions(session, name)
        current = champion(session, name)
        events = list_events(session, name)
    store.close()
    typer.echo(f"model {name}: {len(versions)} version(s)")
    for v in versions:
        mark = "*" if current and current.id == v.id else " "
        typer.echo(f"{mark} v{v.version:<4} {v.family:<18} mean MAE {v.holdout_mean:.3f} "
                   f"(persistence {v.persistence_mean:.3f})  +24 h {v.holdout_last:.3f} "
                   f"({v.persistence_last:.3f})  trained to {v.train_end:%Y-%m-%d %H:%M}")
    for e in events[-10:]:
        typer.echo(f"  {e.created_at:%Y-%m-%d %H:%M} {e.decision:<9} v{e.candidate_version} "
                   f"(was v{e.previous_champion_version}) by {e.triggered_by}: {e.reason}")


@app.command()
def promote(ctx: typer.Context, version: int,
            reason: Annotated[str, typer.Option(help="Why, for the event log.")]) -> None:
    """Make VERSION the champion by hand (refused if its artifact fails verification)."""
    from registry.champions import promote_version

    _move_champion(ctx.obj, lambda s, name: promote_version(s, name, version, reason, "cli"))


@app.command()
def rollback(ctx: typer.Context,
             reason: Annotated[str, typer.Option()] = "manual rollback") -> None:
    """Give the champion back to the previous champion."""
    from registry.champions import rollback as rollback_champion

    _move_champion(ctx.obj, lambda s, name: rollback_champion(s, name, reason, "cli"))


def _move_champion(settings: Settings, move) -> None:
    from forecasting.training import model_name
    from registry.artifacts import ArtifactError

    store = _store(settings)
    try:
        with store.sessions.begin() as session:
            event = move(session, model_name(settings.station, settings.forecast))
    except (ArtifactError, LookupError, ValueError) as exc:
        _fail(str(exc))
    finally:
        store.close()
    typer.echo(f"{event.decision}: champion is now v{event.candidate_version} "
               f"(was v{event.previous_champion_version})")


def _store(settings: Settings):
    from registry.store import open_store

    try:
        return open_store(settings.db_url, settings.station)
    except (ValueError, OSError) as exc:
        _fail(str(exc))


def _prefect_home(settings: Settings) -> None:
    """Keep Prefect's own state under the data directory unless the user set it."""
    (settings.data_dir / "prefect").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str((settings.data_dir / "prefect").resolve()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@app.command()
def demo(ctx: typer.Context, days: Annotated[int, typer.Option(min=20)] = 180,
         epochs: Annotated[int, typer.Option(min=1)] = 3) -> None:
    """Simulate a station, ingest it and retrain the candidates through the Prefect flows."""
    settings: Settings = ctx.obj
    _prefect_home(settings)
    from forecasting.simulate import simulate_station, write_station_csv
    from flows.ingest import ingest as ingest_flow
    from flows.retrain import retrain as retrain_flow

    drop = settings.drop_dir / "demo-station.csv"
    if not drop.exists():
        typer.echo(f"simulating {days} days of station data -> {drop}")
        write_station_csv(drop, simulate_station("2024-01-01", days, seed=7), seed=7)
    rows = ingest_flow(data_dir=str(settings.data_dir), database_url=settings.database_url,
                       station_schema=_str(settings.station_schema))
    for row in rows:
        typer.echo(f"{row['source']}: {row['status']}, {row['rows_inserted']} inserted, "
                   f"{row['rows_present']} already present, {row['rows_quarantined']} quarantined")
    typer.echo(f"retraining the candidates ({epochs} epochs each)...")
    board = retrain_flow(data_dir=str(settings.data_dir), database_url=settings.database_url,
                         station_schema=_str(settings.station_schema), epochs=epochs,
                         triggered_by="demo")
    typer.echo(f"\n{'family':<18}{'version':>8}{'mean MAE':>10}{'+24 h':>8}"
               f"{'persist.':>10}{'+24 h':>8}  decision")
    for row in board:
        typer.echo(f"{row['family']:<18}{row['version']:>8}{row['mean_mae']:>10.3f}"
                   f"{row['last_mae']:>8.3f}{row['persistence_mean_mae']:>10.3f}"
                   f"{row['persistence_last_mae']:>8.3f}  {row['decision']}")
    typer.echo(f"\ndatabase: {settings.db_url}")
    typer.echo(f"try: sqlite3 {settings.data_dir / 'sensorcast.db'} \"select version, family, "
               "holdout_mean, persistence_mean from model_versions\"")


def _str(path: Path | None) -> str | None:
    return str(path) if path else None


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
