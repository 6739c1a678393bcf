"""The models of a station: retrain, the registry (list, promote, rollback), the monitor,
and replaying the schedule over a past period (backtest)."""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated

import typer
from pydantic import ValidationError

from flows.cli.app import StationOption, app
from flows.cli.common import (chosen_stations, fail, flow_settings, prefect_home, run_flow,
                              settings_store, timestamp)
from flows.cli.render import echo_leaderboard, echo_model, echo_skill_table, version_label
from flows.settings import Settings, invalid_settings


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
    chosen_stations(settings, station)
    try:
        params_from(settings, family or None, epochs)
    except ValidationError as invalid:
        fail(f"invalid settings: {invalid_settings(invalid)}")
    prefect_home(settings)
    from flows.retrain import retrain as retrain_flow

    boards = run_flow(retrain_flow, **flow_settings(settings), station=station,
                       families=family or None, epochs=epochs, triggered_by="cli")
    for name, rows in boards.items():
        echo_leaderboard(name, rows)


@app.command()
def models(ctx: typer.Context, station: StationOption = None) -> None:
    """Registered versions with their holdout metrics; * marks the champion."""
    from forecasting.config import model_name

    settings: Settings = ctx.obj
    names = [model_name(s, settings.forecast) for s in chosen_stations(settings, station)]
    store = settings_store(settings, read_only=True)
    try:
        for name in names:
            echo_model(store, name)
    finally:
        store.close()


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


def _move_champion(settings: Settings, station: str | None, move) -> None:
    from forecasting.config import model_name
    from registry.artifacts import ArtifactError

    (moved,) = chosen_stations(settings, station, one=True)
    store = settings_store(settings)
    try:
        with store.sessions.begin() as session:
            event = move(session, settings.artifact_dir, model_name(moved, settings.forecast))
    except (ArtifactError, LookupError, ValueError) as exc:
        fail(str(exc))
    finally:
        store.close()
    typer.echo(f"{event.decision}: champion is now {version_label(event.candidate_version)} "
               f"(was {version_label(event.previous_champion_version)})")


@app.command()
def backtest(
    ctx: typer.Context,
    start: Annotated[str, typer.Option(help="First retrain and forecast (ISO, UTC unless an "
                                            "offset is given).")],
    end: Annotated[str, typer.Option(help="Last forecast.")],
    retrain_every: Annotated[str, typer.Option(help="e.g. 7d, 12h.")] = "7d",
    issue_every: Annotated[str, typer.Option(help="A forecast this often from --start (e.g. "
                                                  "1d, 3h), as the forecast is scheduled.")
                           ] = "1d",
    family: Annotated[list[str] | None, typer.Option(help="Only these families.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    station: StationOption = None,
) -> None:
    """Replay the schedule over a past period, leak-free: retrain every RETRAIN_EVERY on the
    data up to then, forecast every ISSUE_EVERY (daily) with the champion of that time.
    Results go to the backtest tables (`backtest_skill`), never to live state. Re-run the
    same command to resume an interrupted backtest."""
    import pandas as pd

    from flows.settings import params_from
    from forecasting.config import model_name
    from registry.backtests import plan

    settings: Settings = ctx.obj
    (replayed,) = chosen_stations(settings, station, one=True)
    first, last = timestamp(start, "--start"), timestamp(end, "--end")
    try:
        every, issues = duration(retrain_every), duration(issue_every)
        params = params_from(settings, family, epochs)
        steps = plan(first, last, every, issues)
    except ValidationError as invalid:
        fail(f"invalid settings: {invalid_settings(invalid)}")
    except ValueError as exc:
        fail(f"--retrain-every {retrain_every!r}, --issue-every {issue_every!r}, --start, "
             f"--end: {exc}")
    prefect_home(settings)
    from flows.backtest import backtest as backtest_flow

    spec = (model_name(replayed, params), first, last, every, params.model_dump(mode="json"),
            issues)
    with _progress_bar(settings, spec, len(steps)):
        result = run_flow(backtest_flow, start=first, end=last,
                          retrain_every_hours=every / pd.Timedelta(hours=1),
                          issue_every_hours=issues / pd.Timedelta(hours=1),
                          families=family or None, epochs=epochs,
                          **flow_settings(settings), station=replayed.name,
                          triggered_by="cli")
    resumed = (f", resumed after {result['resumed_after']} finished steps"
               if result["resumed_after"] else "")
    typer.echo(f"\nbacktest {result['backtest_id']}: {result['steps']} steps{resumed}; "
               f"models registered as {result['model_name']}. Out-of-sample MAE by horizon "
               f"({replayed.target_channel.unit}):")
    echo_skill_table(result["skill"])
    typer.echo(f"\nrows: select * from backtest_skill where backtest_id = "
               f"{result['backtest_id']}")


def duration(text: str) -> timedelta:
    """`7d`, `12h`, `30min` as a timedelta (pandas' units; days also as the lower-case `d`
    the help shows, which pandas is dropping)."""
    import pandas as pd

    return pd.Timedelta(re.sub(r"(?<=\d)\s*d$", "D", text.strip())).to_pytimedelta()


@contextmanager
def _progress_bar(settings: Settings, spec: tuple, total: int):
    """A progress bar of the backtest's finished steps, read from the database by a thread
    while the flow runs in this one."""
    import threading

    from registry.backtests import progress

    stop = threading.Event()

    def watch(bar) -> None:
        store, shown = settings_store(settings), 0
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
            at: Annotated[str | None, typer.Option(
                help="Judge as of this time (ISO, UTC unless an offset is given); default "
                     "now.")] = None,
            station: StationOption = None) -> None:
    """Judge the champion on its verified forecasts of the last `monitor_days` (before
    `--at`); demote it (and retrain) when it loses to the best naive forecast."""
    settings: Settings = ctx.obj
    when = timestamp(at, "--at") if at else None
    chosen_stations(settings, station)
    prefect_home(settings)
    from flows.monitor import monitor as monitor_flow

    results = run_flow(monitor_flow, **flow_settings(settings), station=station, at=when,
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


@app.command("network-model")
def network_model(ctx: typer.Context,
                  at: Annotated[str | None, typer.Option(
                      help="Fit on the data up to this time (ISO, UTC unless an offset is "
                           "given); default now.")] = None) -> None:
    """Fit the network model across every station (the weekly job), register it and gate
    it on the stations replayed as new: it then forecasts the stations too new for models
    of their own."""
    settings: Settings = ctx.obj
    when = timestamp(at, "--at") if at else None
    prefect_home(settings)
    from flows.network_model import network_model as network_model_flow

    for row in run_flow(network_model_flow, **flow_settings(settings), at=when,
                        triggered_by="cli"):
        typer.echo(f"{row['model']} v{row['version']} ({row['family']}, {row['stations']} "
                   f"stations): {row['decision']}; replayed as new at {row['replayed']}: "
                   f"MAE {row['replay MAE']} against best naive's {row['best naive MAE']}; "
                   f"{row['trusted']}")
