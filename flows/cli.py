"""`sensorcast`: the user's entry point (ingest, retrain, forecast, registry, demo)."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from flows.settings import Settings, invalid_settings


class ModelChoice(str, Enum):
    as_of = "as-of"
    current = "current"


StationOption = Annotated[str | None, typer.Option(
    "--station", help="Only this station (default: all).")]
LOCAL_PREFECT_API = "http://127.0.0.1:4200/api"  # the server `make serve` starts
FEED_DAYS = 30  # of the demo station's future, fed live by `make serve`

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
        _fail(f"invalid settings: {invalid_settings(invalid)}")
    except ValueError as unreadable:  # sensorcast.toml that is not TOML
        _fail(f"sensorcast.toml: {unreadable}")
    try:
        ctx.obj.stations  # the stations' descriptions, checked before any command uses them
        checked_url(ctx.obj.db_url)
    except (ValueError, OSError) as invalid:
        _fail(str(invalid))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter


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
    stations = _stations(settings, station)
    if path and len(stations) > 1:
        _fail(f"which station's file is {path}? add --station (one of "
              f"{', '.join(s.name for s in stations)})")
    store = _store(settings)
    try:
        failed = sum(_ingest_station(settings, store.of(s.name), path) for s in stations)
    finally:
        store.close()
    if failed:
        raise typer.Exit(1)


def _ingest_station(settings: Settings, store, path: Path | None) -> int:
    """Ingest one station's files; returns how many were refused."""
    from registry.ingestion import files_to_ingest, ingest_file

    source = path or settings.drop_dir(store.station.name)
    failed = 0
    try:
        files, refused = files_to_ingest(source)
    except OSError as exc:
        _fail(str(exc))
    for entry in refused:
        failed += 1
        typer.echo(f"{entry}: refused: it points outside the folder ({entry.resolve()})",
                   err=True)
    prefix = f"{store.station.name}: " if len(settings.stations) > 1 else ""
    for file in files:
        s = ingest_file(store, file, settings.chunk_rows)
        extra = f"; ignored columns: {', '.join(s.extra_columns)}" if s.extra_columns else ""
        if s.status == "refused":
            failed += 1
            typer.echo(f"{prefix}{s.source}: refused: {s.message}", err=True)
        elif s.status == "skipped":
            typer.echo(f"{prefix}{s.source}: skipped ({s.message})")
        else:
            typer.echo(
                f"{prefix}{s.source}: {s.rows_read} read, {s.rows_inserted} inserted, "
                f"{s.rows_present} already present, {s.rows_quarantined} quarantined; "
                f"newest {s.newest_observation}{extra}"
            )
    if not files:
        typer.echo(f"{prefix}no CSV files in {source}")
    return failed


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="CSV file to write (a folder with --stations).")],
    start: Annotated[str, typer.Option(help="First day (station local time).")] = "2009-01-01",
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

    from forecasting.station.simulate import (Faults, simulate_network, simulate_station,
                                      write_network, write_station_csv)

    fractions = {"gaps": gaps, "duplicates": duplicates, "sentinels": sentinels,
                 "garbled": garbled}
    for name, value in fractions.items():
        if not (math.isfinite(value) and 0 <= value < 1):
            _fail(f"--{name} {value}: a fraction of the rows, at least 0 and below 1")
    try:
        pd.Timestamp(start)
    except ValueError as exc:
        _fail(f"--start {start!r} is not a date (e.g. 2016-01-01): {exc}")
    faults = Faults(gaps, duplicates, sentinels, garbled)
    try:
        if stations:
            network = simulate_network(start, days, stations, seed)
            listed = write_network(out, network, faults, seed)
            typer.echo(f"wrote {stations} stations ({days} days from {start}) under {out}; "
                       f"use them with --stations-file {listed}")
            return
        frame = simulate_station(start, days, seed)
        write_station_csv(out, frame, faults, seed)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}")
    typer.echo(f"wrote {len(frame)} rows ({days} days from {start}) to {out}")


@app.command()
def retrain(
    ctx: typer.Context,
    family: Annotated[list[str] | None, typer.Option(help="Only these families.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    station: StationOption = None,
) -> None:
    """Train the candidates on the rolling window, register them, apply the gate."""
    from flows.settings import params_from

    settings: Settings = ctx.obj
    _stations(settings, station)
    try:
        params_from(settings, family or None, epochs)
    except ValidationError as invalid:
        _fail(f"invalid settings: {invalid_settings(invalid)}")
    _prefect_home(settings)
    from flows.retrain import retrain as retrain_flow

    boards = _run_flow(retrain_flow, **_flow_settings(settings), station=station,
                       families=family or None, epochs=epochs, triggered_by="cli")
    for name, rows in boards.items():
        _echo_leaderboard(name, rows)


@app.command()
def models(ctx: typer.Context, station: StationOption = None) -> None:
    """Registered versions with their holdout metrics; * marks the champion."""
    from forecasting.config import model_name

    settings: Settings = ctx.obj
    names = [model_name(s, settings.forecast) for s in _stations(settings, station)]
    store = _store(settings, read_only=True)
    try:
        for name in names:
            _echo_model(store, name)
    finally:
        store.close()


def _echo_model(store, name: str) -> None:
    from registry.versions import champion, list_events, list_versions

    with store.sessions() as session:
        versions = list_versions(session, name)
        current = champion(session, name)
        events = list_events(session, name)
    typer.echo(f"model {name}: {len(versions)} version(s)")
    for v in versions:
        mark = "*" if current and current.id == v.id else " "
        naive = (f"best naive {v.best_naive_mean:.3f}, " if v.best_naive_mean is not None
                 else "")
        typer.echo(f"{mark} v{v.version:<4} {v.family:<18} mean MAE {v.holdout_mean:.3f} "
                   f"({naive}persistence {v.persistence_mean:.3f})  +24 h "
                   f"{v.holdout_last:.3f} ({v.persistence_last:.3f})  trained to "
                   f"{v.train_end:%Y-%m-%d %H:%M}")
    for e in events[-10:]:
        was = _version_label(e.previous_champion_version)
        typer.echo(f"  {e.created_at:%Y-%m-%d %H:%M} {e.decision:<9} "
                   f"{_version_label(e.candidate_version)} (champion was {was}) by "
                   f"{e.triggered_by}: {e.reason}")


@app.command()
def promote(ctx: typer.Context, version: int,
            reason: Annotated[str, typer.Option(help="Why, for the event log.")],
            station: StationOption = None) -> None:
    """Make VERSION the champion by hand (refused if its artifact fails verification)."""
    from registry.champions import promote_version

    _move_champion(ctx.obj, station, lambda s, root, name: promote_version(
        s, root, name, version, reason, "cli"))


@app.command()
def rollback(ctx: typer.Context,
             reason: Annotated[str, typer.Option()] = "manual rollback",
             station: StationOption = None) -> None:
    """Give the champion back to the previous champion."""
    from registry.champions import rollback as rollback_champion

    _move_champion(ctx.obj, station, lambda s, root, name: rollback_champion(
        s, root, name, reason, "cli"))


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
    _stations(settings, station)
    when = _timestamp(at, "--at") if at else None
    _prefect_home(settings)
    from flows.forecast import forecast as forecast_flow

    issued = _run_flow(forecast_flow, **_flow_settings(settings), station=station,
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
        _echo_latest(settings, name)


@app.command()
def backtest(
    ctx: typer.Context,
    start: Annotated[str, typer.Option(help="First retrain and forecast (ISO, UTC unless an "
                                            "offset is given).")],
    end: Annotated[str, typer.Option(help="Last forecast.")],
    retrain_every: Annotated[str, typer.Option(help="e.g. 7d, 12h.")] = "7d",
    family: Annotated[list[str] | None, typer.Option(help="Only these families.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    station: StationOption = None,
) -> None:
    """Replay the schedule over a past period, leak-free: retrain every RETRAIN_EVERY on the
    data up to then, forecast daily with the champion of that day. Results go to the
    backtest tables (`backtest_skill`), never to live state. Re-run the same command to
    resume an interrupted backtest."""
    import pandas as pd

    from flows.settings import params_from
    from forecasting.config import model_name
    from registry.backtests import plan

    settings: Settings = ctx.obj
    (replayed,) = _stations(settings, station, one=True)
    first, last = _timestamp(start, "--start"), _timestamp(end, "--end")
    try:
        every = pd.Timedelta(retrain_every).to_pytimedelta()
        params = params_from(settings, family, epochs)
        steps = plan(first, last, every)
    except ValidationError as invalid:
        _fail(f"invalid settings: {invalid_settings(invalid)}")
    except ValueError as exc:
        _fail(f"--retrain-every {retrain_every!r}, --start, --end: {exc}")
    _prefect_home(settings)
    from flows.backtest import backtest as backtest_flow

    spec = (model_name(replayed, params), first, last, every, params.model_dump(mode="json"))
    with _progress_bar(settings, spec, len(steps)):
        result = _run_flow(backtest_flow, start=first, end=last,
                           retrain_every_hours=every / pd.Timedelta(hours=1),
                           families=family or None, epochs=epochs,
                           **_flow_settings(settings), station=replayed.name,
                           triggered_by="cli")
    resumed = (f", resumed after {result['resumed_after']} finished steps"
               if result["resumed_after"] else "")
    typer.echo(f"\nbacktest {result['backtest_id']}: {result['steps']} steps{resumed}; "
               f"models registered as {result['model_name']}. Out-of-sample MAE by horizon "
               f"({replayed.target_channel.unit}):")
    _echo_skill_table(result["skill"])
    typer.echo(f"\nrows: select * from backtest_skill where backtest_id = "
               f"{result['backtest_id']}")


def _echo_skill_table(rows: list[dict]) -> None:
    if not rows:
        typer.echo("  no forecast has been verified by observations yet")
        return
    typer.echo(f"  {'h':>3}{'issues':>8}{'MAE':>8}{'persist.':>10}{'seasonal':>10}"
               f"{'vs best naive':>15}")
    for row in rows:
        typer.echo(f"  {row['horizon_hours']:>3}{row['issues']:>8.0f}{row['mae']:>8.3f}"
                   f"{row['persistence']:>10.3f}{row['seasonal_persistence']:>10.3f}"
                   f"{row['vs_best_naive']:>15.3f}")
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in
            ("mae", "persistence", "seasonal_persistence")}
    best = sum(r["mae"] / r["vs_best_naive"] for r in rows) / len(rows)
    typer.echo(f"  {'all':>3}{'':>8}{mean['mae']:>8.3f}{mean['persistence']:>10.3f}"
               f"{mean['seasonal_persistence']:>10.3f}{mean['mae'] / best:>15.3f}")


@contextmanager
def _progress_bar(settings: Settings, spec: tuple, total: int):
    """A progress bar of the backtest's finished steps, read from the database by a thread
    while the flow runs in this one."""
    import threading

    from registry.backtests import progress

    stop = threading.Event()

    def watch(bar) -> None:
        store, shown = _store(settings), 0
        try:
            while not stop.wait(1.0):
                with store.sessions() as session:
                    done = progress(session, *spec)
                bar.update(done - shown)
                shown = done
        finally:
            store.close()

    with typer.progressbar(length=total, label="backtest steps", file=sys.stderr) as bar:
        watcher = threading.Thread(target=watch, args=(bar,), daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()


@app.command()
def monitor(ctx: typer.Context,
            retrain: Annotated[bool, typer.Option(help="Retrain when it demotes.")] = True,
            station: StationOption = None) -> None:
    """Judge the champion on its verified forecasts of the last `monitor_days`; demote it
    (and retrain) when it loses to the best naive forecast."""
    settings: Settings = ctx.obj
    _stations(settings, station)
    _prefect_home(settings)
    from flows.monitor import monitor as monitor_flow

    results = _run_flow(monitor_flow, **_flow_settings(settings), station=station,
                        retrain=retrain, triggered_by="cli")
    for result in results.values():
        version = f" v{result['version']}" if result.get("version") else ""
        typer.echo(f"{result['model_name']}{version}: {result['decision']}"
                   + (f": {result['reason']}" if result["reason"] else ""))
        for group in result.get("groups", []):
            typer.echo(f"  {group['hours']:>13}  champion {group['champion_mae']:.3f}  best "
                       f"naive {group['best_naive_mae']:.3f}  ratio {group['ratio']:.3f}")
        if result.get("retrain"):
            typer.echo(f"started: {result['retrain']}")


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
    stations = _stations(settings, station)
    if out and len(stations) > 1:
        _fail("--out names one file: add --station")
    store = _store(settings)
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


def _view(settings: Settings, name: str, station: str):
    from registry.forecasts import read_view

    store = _store(settings)
    with store.sessions() as session:
        frame = read_view(session, name, station)
    store.close()
    return frame


def _echo_latest(settings: Settings, station: str) -> None:
    latest = _view(settings, "latest_forecast", station)
    if latest.empty:
        return
    first = latest.iloc[0]
    target = next(s for s in settings.stations if s.name == station).target
    typer.echo(f"\nlatest forecast of {target} at {station}, issued "
               f"{first.issued_at:%Y-%m-%d %H:%M} UTC by {first.model}:")
    for row in latest.itertuples():
        typer.echo(f"  +{row.horizon_hours:>2} h  {row.target_time:%Y-%m-%d %H:%M}  "
                   f"{row.value:7.2f}")


def _run_flow(flow, **parameters):
    """Run a flow; a failed run exits non-zero with its message (refusals carry no traceback).
    Prefect's temporary API server too slow to start (a loaded machine) is one line too."""
    try:
        state = flow(**parameters, return_state=True)
    except RuntimeError as exc:
        if "ephemeral" not in str(exc).lower():
            raise
        _fail(f"{exc}; the machine is too busy for Prefect's temporary server to start in "
              "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (180): retry, raise it, or "
              "start a server (make serve) so runs attach to it")
    if state.is_failed() or state.is_crashed():
        _fail(state.message)
    return state.result()


def _timestamp(text: str, option: str):
    import pandas as pd

    try:
        moment = pd.Timestamp(text)
    except ValueError as exc:
        _fail(f"{option} {text!r} is not a timestamp (e.g. 2016-06-01T12:00): {exc}")
    return (moment.tz_localize("UTC") if moment.tzinfo is None else moment).to_pydatetime()


def _move_champion(settings: Settings, station: str | None, move) -> None:
    from forecasting.config import model_name
    from registry.artifacts import ArtifactError

    (moved,) = _stations(settings, station, one=True)
    store = _store(settings)
    try:
        with store.sessions.begin() as session:
            event = move(session, settings.artifact_dir, model_name(moved, settings.forecast))
    except (ArtifactError, LookupError, ValueError) as exc:
        _fail(str(exc))
    finally:
        store.close()
    typer.echo(f"{event.decision}: champion is now {_version_label(event.candidate_version)} "
               f"(was {_version_label(event.previous_champion_version)})")


def _version_label(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def _writable(folder: Path, what: str) -> None:
    """Refuse, in one line, to start work that must write into `folder` when it cannot."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        _fail(f"{what} {folder} is not writable ({exc.strerror or exc}); nothing was done. "
              "Point --data-dir (or PREFECT_HOME) at a folder this user can write")


def _store(settings: Settings, read_only: bool = False):
    """The store; a read-only command on a data directory it cannot write opens the SQLite
    file read-only (SQLite could not create its WAL files there). Other commands first check
    that they can write."""
    from flows.network import unlisted_warning
    from registry.store import open_store

    url = settings.db_url
    if read_only and settings.database_url is None and not os.access(settings.data_dir,
                                                                      os.W_OK):
        url = (f"sqlite:///file:{(settings.data_dir / 'sensorcast.db').resolve()}"
               "?mode=ro&immutable=1&uri=true")
    elif not read_only:
        _writable(settings.data_dir, "the data directory")
    try:
        store = open_store(url, settings.stations)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    if names := store.unlisted():
        typer.echo(f"warning: {unlisted_warning(names)}", err=True)
    return store


def _stations(settings: Settings, station: str | None, one: bool = False) -> tuple:
    """The stations a command works on: `--station`, or all (`one`: the only one)."""
    if one and station is None and len(settings.stations) > 1:
        _fail(f"this command works on one station: add --station (one of "
              f"{', '.join(s.name for s in settings.stations)})")
    try:
        return settings.selected(station)
    except ValueError as exc:
        _fail(str(exc))


def _flow_settings(settings: Settings) -> dict:
    """The settings a flow run is given, as plain parameters (they show in the UI)."""
    return {"data_dir": str(settings.data_dir), "database_url": settings.database_url,
            "station_schema": _str(settings.station_schema),
            "stations_file": _str(settings.stations_file)}


def _prefect_home(settings: Settings) -> None:
    """Keep Prefect's own state under the data directory unless the user set it. Runs go to
    the local server of `make serve` when one is up (they show in its UI, and no server is
    started per command); otherwise to an ephemeral server, given minutes rather than
    Prefect's 20 s to start on a loaded machine (set the variable to change it)."""
    _writable(settings.data_dir, "the data directory")
    os.environ.setdefault("PREFECT_HOME", str((settings.data_dir / "prefect").resolve()))
    _writable(Path(os.environ["PREFECT_HOME"]), "Prefect's home (PREFECT_HOME)")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    _stop_orphaned_servers(os.environ["PREFECT_HOME"])
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    if "PREFECT_API_URL" not in os.environ and _healthy(LOCAL_PREFECT_API):
        os.environ["PREFECT_API_URL"] = LOCAL_PREFECT_API


def _stop_orphaned_servers(prefect_home: str) -> None:
    """A CLI killed mid-run (SIGKILL) cannot stop the ephemeral Prefect server it started,
    which then runs on for ever (about 200 MB). The next CLI call stops those of this
    PREFECT_HOME whose parent is gone; `make serve`'s server is another command line."""
    import psutil

    for process in psutil.process_iter(["ppid", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if process.info["ppid"] != 1 or "uvicorn" not in command \
                or "prefect.server.api.server:create_app" not in command:
            continue
        try:
            if process.environ().get("PREFECT_HOME") == prefect_home:
                process.terminate()
        except psutil.Error:
            continue


def _healthy(api_url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@app.command()
def demo(ctx: typer.Context, days: Annotated[int, typer.Option(min=20)] = 180,
         epochs: Annotated[int, typer.Option(min=1)] = 3,
         backfill: Annotated[int, typer.Option(min=0, help="Days of past forecasts.")] = 7,
         ) -> None:
    """The whole cycle on a simulated station (the first station), through the Prefect
    flows: simulate, ingest, retrain, backfill a week of forecasts, forecast today, and show
    how to query it."""
    import pandas as pd

    settings: Settings = ctx.obj
    _prefect_home(settings)
    from flows.feed import DEMO_FEED
    from flows.forecast import PLOT_FILE, plot_dir
    from flows.forecast import forecast as forecast_flow
    from forecasting.station.simulate import simulate_until, write_station_csv
    from flows.ingest import ingest as ingest_flow
    from flows.retrain import retrain as retrain_flow

    station = settings.stations[0]
    common = {**_flow_settings(settings), "station": station.name}
    drop = settings.drop_dir(station.name) / "demo-station.csv"
    if not drop.exists():  # the past now, and the future for `make serve`'s simulated feed
        now = pd.Timestamp.now("UTC")
        frame = simulate_until(now + pd.Timedelta(days=FEED_DAYS), days + FEED_DAYS, seed=7)
        past = frame.index <= now.tz_convert(station.timezone).tz_localize(None)
        typer.echo(f"[1/4] simulating {days} days of station data up to "
                   f"{frame.index[past][-1]} (station time) -> {drop}")
        write_station_csv(settings.data_dir / DEMO_FEED, frame[~past], seed=7)
        write_station_csv(drop, frame[past], seed=7)
    typer.echo("[1/4] ingesting the drop folder")
    for row in _run_flow(ingest_flow, **common)[station.name]:
        if row["status"] == "skipped":
            typer.echo(f"  {row['source']}: skipped ({row['message']})")
            continue
        typer.echo(f"  {row['source']}: {row['status']}, {row['rows_inserted']} inserted, "
                   f"{row['rows_present']} already present, {row['rows_quarantined']} "
                   f"quarantined; newest {row['newest_observation']}")
    newest = _newest_observation(settings, station.name)
    cut = newest - pd.Timedelta(days=backfill)
    typer.echo(f"[2/4] retraining the candidates on a rolling backtest of the data up to "
               f"{cut:%Y-%m-%d %H:%M} UTC, as the schedule would have {backfill} days ago "
               f"(networks: at most {epochs} epochs)")
    boards = _run_flow(retrain_flow, **common, epochs=epochs, until=cut, triggered_by="demo")
    _echo_leaderboard(station.name, boards[station.name])
    typer.echo(f"\n[3/4] forecasting as of the newest observation ({newest:%Y-%m-%d %H:%M} "
               f"UTC), backfilling the {backfill} days before with that champion")
    _run_flow(forecast_flow, **common, at=newest, days=backfill, model="current",
              triggered_by="demo")
    _echo_latest(settings, station.name)
    typer.echo(f"\n[4/4] skill of the backfilled forecasts, all out of sample (the models saw "
               f"no data after {cut:%Y-%m-%d %H:%M} UTC), MAE in "
               f"{station.target_channel.unit}:")
    _echo_skill(settings, station.name)
    db = settings.data_dir / "sensorcast.db"
    typer.echo(f"""
plot: {plot_dir(settings, station.name) / PLOT_FILE}
query it (more in the README):
  sqlite3 -header {db} "select target_time, horizon_hours, round(value, 2) as value, model_name, model_version from latest_forecast where station = '{station.name}'"
  sqlite3 -header {db} "select model_name, horizon_hours, round(avg(abs_error), 2) as mae, round(avg(persistence_abs_error), 2) as persistence_mae from forecast_skill where station = '{station.name}' group by 1, 2"
  sqlite3 -header {db} "select model_name, version, family, round(holdout_mean, 3) as mae, round(persistence_mean, 3) as persistence from model_versions where station = '{station.name}'"
""")


def _echo_leaderboard(station: str, rows: list[dict]) -> None:
    """MAE ratios against the best naive forecast (below 1 wins): mean, each 6-hour group."""
    groups = [k for k in rows[0] if k.startswith("group_")] if rows else []
    hours = [f"{6 * i + 1}-{6 * i + 6}h" for i in range(len(groups))]
    typer.echo(f"\n{station}:")
    typer.echo(f"{'family':<18}{'version':>8}{'MAE':>7}{'best naive':>11}{'ratio':>7}"
               + "".join(f"{h:>7}" for h in hours) + f"{'+24 h':>7}{'persist.':>9}  decision")
    for row in rows:
        typer.echo(f"{row['family']:<18}{row['version']:>8}{row['mean_mae']:>7.3f}"
                   f"{row['best_naive_mean_mae']:>11.3f}{row['vs_best_naive']:>7.3f}"
                   + "".join(f"{row[g]:>7.3f}" for g in groups)
                   + f"{row['last_mae']:>7.3f}{row['persistence_last_mae']:>9.3f}  "
                   f"{row['decision']}: {row['reason']}")
    typer.echo("(ratio: MAE / best naive MAE on the same backtest windows; below 1 is better; "
               "+24 h: MAE at +24 h against persistence's)")


def _newest_observation(settings: Settings, station: str):
    from registry.observations import newest_time

    store = _store(settings).of(station)
    with store.sessions() as session:
        newest = newest_time(session, store.observations)
    store.close()
    return newest


def _echo_skill(settings: Settings, station: str) -> None:
    skill = _view(settings, "forecast_skill", station)
    if skill.empty:
        typer.echo("  no forecast has been verified by observations yet")
        return
    typer.echo(f"  {'model':<20}{'issues':>7}{'mean MAE':>10}{'+24 h':>8}"
               f"{'persist.':>10}{'+24 h':>8}{'seasonal':>10}")
    for model, rows in skill.groupby("model"):
        last = rows[rows.horizon_hours == rows.horizon_hours.max()]
        typer.echo(f"  {model:<20}{rows.issued_at.nunique():>7}{rows.abs_error.mean():>10.3f}"
                   f"{last.abs_error.mean():>8.3f}{rows.persistence_abs_error.mean():>10.3f}"
                   f"{last.persistence_abs_error.mean():>8.3f}"
                   f"{rows.seasonal_persistence_abs_error.mean():>10.3f}")


def _str(path: Path | None) -> str | None:
    return str(path) if path else None


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def run() -> None:
    """The `sensorcast` command: the app, with database refusals (read-only file, full disk,
    server down) as one line instead of a traceback. Each write is one transaction, so
    nothing stored is lost or half-written: re-run once the cause is fixed."""
    from sqlalchemy.exc import OperationalError
    # Typer's own copy of click (pinned Typer): its usage errors, raised here rather than
    # drawn as a box of several lines.
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as bare:  # `sensorcast` alone: the help
        typer.echo(bare.ctx.get_help())
        raise SystemExit(0) from None
    except UsageError as exc:  # a bad argument: one line, as every refusal
        command = exc.ctx.command_path if exc.ctx else "sensorcast"
        typer.echo(f"error: {command}: {exc.format_message()} (see --help)", err=True)
        raise SystemExit(2) from None
    except ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(1) from None
    except OperationalError as exc:
        typer.echo(f"error: the database refused: {exc.orig}; nothing stored was lost or "
                   "half-written, re-run once that is fixed", err=True)
        raise SystemExit(2) from None
    raise SystemExit(code if isinstance(code, int) else 0)
