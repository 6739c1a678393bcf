"""Flow `backtest`: replay operations over a past period as the scheduler would have run them,
leak-free: at each retrain time the candidates are trained on the data up to that time only
and gated against the backtest's champion of that time; each day the forecast is made by
the champion of that day. Results live in the backtest tables; live state never moves."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State
from prefect.task_runners import TaskRunner
from pydantic import ValidationError

from flows import sigterm
from flows.forecast import forecast_at, issue_rows, load_model
from flows.retrain import fit_and_gate, load_folds
from flows.settings import (Settings, as_utc, task_runner, invalid_settings, params_from, run_name,
                            settings_from, who_started)
from forecasting.config import ForecastParams, model_name
from forecasting.models.families import Forecaster
from forecasting.scoring.backtest import verified_skill
from forecasting.issue import StaleData
from forecasting.windows import NotEnoughData
from registry.backtests import (RETRAIN, BacktestRun, Step, finish, finish_step, plan,
                                start_or_resume, write_backtest_forecast)
from registry.forecasts import read_view
from registry.leases import Lease, LeaseBusy, LeaseLost, held
from registry.store import Store, open_store
from registry.versions import ModelVersion, champion


@task(cache_policy=NO_CACHE, task_run_name="forecast as of {step.at:%Y-%m-%d %H:%M}")
def forecast_step(store: Store, settings: Settings, lease: Lease, run: BacktestRun,
                  step: Step, version: ModelVersion | None, network: Forecaster | None) -> str:
    """The day's forecast into `backtest_forecasts`, recorded as done in the same
    transaction (while this run holds the backtest's lease); a refusal (stale or missing
    data) is a finished step too."""
    try:
        forecast = forecast_at(store, settings, step.at, version, network, run.id)
    except StaleData as refused:
        outcome = f"refused: {refused}"
        with store.sessions.begin() as session:
            if lease.holds(session):
                finish_step(session, run.id, step, outcome)
        return outcome
    rows = issue_rows(forecast, version, store.station, settings.intervals)
    with store.sessions.begin() as session:
        if not lease.holds(session):
            return "not written: the backtest's lease was lost"
        written = write_backtest_forecast(session, run.id, **rows)
        by = rows["model_name"] + (f" v{rows['model_version']}" if rows["model_version"]
                                   else "")
        outcome = f"issued by {by}: {written} rows" + (f" ({forecast.note})"
                                                        if forecast.note else "")
        finish_step(session, run.id, step, outcome)
    return outcome


@flow(name="backtest", flow_run_name=run_name("backtest"))
def backtest(start: datetime, end: datetime, retrain_every_hours: float = 168,
             issue_every_hours: float = 24, families: list[str] | None = None,
             epochs: int | None = None, data_dir: str | None = None,
             database_url: str | None = None, station_schema: str | None = None,
             stations_file: str | None = None, station: str | None = None,
             triggered_by: str | None = None) -> dict | State:
    """Replay retrains (every `retrain_every_hours` from `start`) and forecasts (every
    `issue_every_hours` from `start`; daily at its time of day by default) up to `end`, in
    time order, as the schedule runs them: each retrain fits its folds in parallel (up to
    `parallel_folds` at once), its networks only when due and fine-tuned from the
    backtest's earlier ones. Resumes the unfinished backtest of the same specification,
    skipping its finished steps. One station is replayed: `station`, or the only one."""
    logger = get_run_logger()
    settings = settings_from(data_dir, database_url, station_schema, stations_file)
    try:
        params = params_from(settings, families, epochs)
        steps = plan(as_utc(start), as_utc(end), timedelta(hours=retrain_every_hours),
                     timedelta(hours=issue_every_hours))
        if station is None and len(settings.stations) > 1:
            raise ValueError("a backtest replays one station; choose one of "
                             f"{', '.join(s.name for s in settings.stations)}")
        (replayed,) = settings.selected(station)
    except ValidationError as invalid:
        return Failed(message=f"not backtesting: {invalid_settings(invalid)}")
    except ValueError as invalid:
        return Failed(message=f"not backtesting: {invalid}")
    store = open_store(settings.db_url, settings.stations).of(replayed.name)
    try:
        with store.sessions.begin() as session:
            run = start_or_resume(session, model_name(replayed, params), steps[0].at,
                                  as_utc(end), timedelta(hours=retrain_every_hours),
                                  params.model_dump(mode="json"),
                                  timedelta(hours=issue_every_hours))
        triggered_by = f"backtest {run.id} ({who_started(triggered_by)})"
        with held(store.sessions, f"backtest {run.id}", 0,
                  ttl=settings.lease_ttl_seconds) as lease:
            pending = replay(store, settings, lease, params, run, steps, triggered_by)
        with store.sessions.begin() as session:
            finish(session, run.id)
            skill = verified_skill(read_view(session, "backtest_skill", backtest_id=run.id))
    except LeaseBusy as busy:
        logger.error("Not backtesting: already running (backtest %d): %s", run.id, busy)
        return Failed(message=f"not backtesting: already running (backtest {run.id}): {busy}")
    except LeaseLost as lost:
        logger.error("Backtest %d stopped: %s", run.id, lost)
        return Failed(message=f"backtest {run.id} stopped: {lost}")
    finally:
        store.close()
    table = [{"horizon_hours": h, **{k: round(float(v), 3) for k, v in row.items()}}
             for h, row in skill.iterrows()]
    create_table_artifact(key="backtest-skill", table=table, description=(
        f"Backtest {run.id} of {run.model_name}, {steps[0].at:%Y-%m-%d} to {end:%Y-%m-%d}: "
        "MAE by horizon against persistence and seasonal persistence, out of sample"))
    return {"backtest_id": run.id, "model_name": run.model_name, "steps": len(steps),
            "resumed_after": len(steps) - len(pending), "skill": table}


def replay(store: Store, settings: Settings, lease: Lease, params: ForecastParams,
           run: BacktestRun, steps: list[Step], triggered_by: str) -> list[Step]:
    """Run the steps the backtest has not finished, in time order, each retrain as the
    schedule runs it (`fit_and_gate`: networks only when due, fine-tuned from the
    backtest's own earlier networks); returns them."""
    logger = get_run_logger()
    pending = [s for s in steps if s not in run.done]
    logger.info("Backtest %d (models registered as %s): %d steps, %d already done",
                run.id, run.model_name, len(steps), len(steps) - len(pending))
    with tempfile.TemporaryDirectory(prefix="sensorcast-backtest-") as work, \
            task_runner(settings, params.parallel_folds) as runner:
        loaded: dict[int | None, tuple] = {}
        for number, step in enumerate(pending, len(steps) - len(pending) + 1):
            if step.kind == RETRAIN:
                outcome = retrain_step(store, settings, lease, params, run, step, runner,
                                       triggered_by, Path(work) / f"{step.at:%Y%m%dT%H%M}")
            else:
                with store.sessions() as session:
                    current = champion(session, run.model_name)
                key = current and current.id
                if key not in loaded:
                    loaded[key] = load_model(store, settings, run.model_name,
                                             triggered_by, None)
                outcome = forecast_step(store, settings, lease, run, step, *loaded[key])
            lease.stop()
            sigterm.stop_if_received()
            logger.info("Step %d/%d, %s at %s: %s", number, len(steps), step.kind,
                        f"{step.at:%Y-%m-%d %H:%M}", outcome)
    return pending


def retrain_step(store: Store, settings: Settings, lease: Lease, params: ForecastParams,
                 run: BacktestRun, step: Step, runner: TaskRunner, triggered_by: str,
                 workdir: Path) -> str:
    """Retrain on the data up to the step and gate against the backtest's champion; the
    step is recorded as done with the registrations (or alone, when there was too little
    data)."""
    loaded = load_folds.with_options(task_run_name=f"retrain {step.at:%Y-%m-%d %H:%M}: "
                                                   "load windows")(store, params, step.at)
    if isinstance(loaded, NotEnoughData):
        outcome = f"not retrained: {loaded}"
        with store.sessions.begin() as session:
            if lease.holds(session):
                finish_step(session, run.id, step, outcome)
        return outcome
    outcomes = []

    def record(session, leaderboard: list[dict]) -> None:
        promoted = [f"{r['family']} v{r['version']}" for r in leaderboard
                    if r["decision"] == "promoted"]
        outcomes.append(f"promoted {promoted[0]}" if promoted else
                        f"{len(leaderboard)} candidates, none promoted")
        finish_step(session, run.id, step, outcomes[0])

    fit_and_gate(store, settings, lease, run.model_name, loaded, params, runner, workdir,
                 triggered_by, then=record)
    return outcomes[0]
