"""Flow `monitor`: watch each station's champion after promotion. Its verified forecasts of the last
`monitor_days` are scored against persistence and seasonal persistence per 6-hour group;
when it loses to the best naive forecast beyond `monitor_margin`, it is demoted (forecasts
fall back to the labelled best naive one) and a retrain is started."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.states import Failed, State

from flows.network import (artifact_key, database_refusals, map_over_store, outcome,
                           shared_store)
from flows.settings import Settings, as_utc, run_name, settings_from, who_started
from forecasting.config import model_name
from forecasting.scoring.monitor import Verdict, judge_champion
from registry.champions import demote
from registry.forecasts import read_view
from registry.store import Store
from registry.versions import ModelVersion, champion

RETRAIN_DEPLOYMENT = "retrain/retrain"  # flow name/deployment name, as in prefect.yaml


def judge(store: Store, settings: Settings, version: ModelVersion, at: datetime,
          days: int) -> Verdict:
    """The champion's verified out-of-sample forecasts of the period, judged."""
    with store.sessions() as session:
        skill = read_view(session, "forecast_skill", store.station.name,
                          since=at - timedelta(days=days))
    mine = skill[(skill.model_name == version.model_name)
                 & (skill.model_version == version.version) & skill.out_of_sample.astype(bool)
                 & (skill.target_time <= at.astimezone(UTC).replace(tzinfo=None))]
    return judge_champion(mine, settings.forecast.group_hours, settings.monitor_margin,
                          settings.monitor_min_issues)


def start_retrain(parameters: dict, at: datetime | None) -> str:
    """Through the `retrain` deployment when one is served (it runs on its worker, and the
    "forecast after retrain" automation issues a forecast when it completes), else as a
    subflow of this run followed by a forecast as of `at`, so the latest forecast is never
    the demoted model's."""
    try:
        run = run_deployment(RETRAIN_DEPLOYMENT, parameters=parameters, timeout=0)
        return f"retrain deployment run {run.name}"
    except ObjectNotFound:
        from flows.forecast import forecast
        from flows.retrain import retrain

        retrained = retrain(**parameters, return_state=True)
        issued = forecast(**{k: parameters[k] for k in (
            "data_dir", "database_url", "station_schema", "stations_file", "station",
            "triggered_by")}, at=at, return_state=True)
        return "; ".join(f"{what} subflow: {state.name}" + (f" ({state.message})"
                                                          if state.message else "")
                         for what, state in (("retrain", retrained), ("forecast", issued)))


@task(cache_policy=NO_CACHE, task_run_name="monitor {station}")
@database_refusals
def monitor_station(station: str, settings: Settings, moment: datetime,
                    triggered_by: str) -> dict:
    """Judge one station's champion; demote it when it is losing."""
    logger = get_run_logger()
    mine = shared_store(settings, station)
    name = model_name(mine.station, settings.forecast)
    with mine.sessions() as session:
        current = champion(session, name)
    if current is None:
        logger.info("%s has no champion to watch: forecasts are the best naive one", name)
        return {"model_name": name, "decision": "no champion", "reason": ""}
    verdict = judge(mine, settings, current, moment, settings.monitor_days)
    label = f"{name} v{current.version}"
    if verdict.losing:
        overall = verdict.groups[-1]
        with mine.sessions.begin() as session:
            demote(session, name, f"skill monitor: {verdict.reason}", triggered_by,
                   {"champion_mean": overall["champion_mae"],
                    "best_naive_mean": overall["best_naive_mae"],
                    "baseline_mean": overall["persistence_mae"]}, verdict.groups)
        logger.warning("Demoted %s: %s; forecasts are the best naive one until a retrain "
                       "promotes another", label, verdict.reason)
    decision = {None: "not judged", False: "kept", True: "demoted"}[verdict.losing]
    create_table_artifact(key=artifact_key("skill-monitor", station),
                          table=verdict.groups or [{}], description=(
        f"{label} as of {moment:%Y-%m-%d %H:%M} UTC, last {settings.monitor_days} days: "
        f"{decision}: {verdict.reason}"))
    if verdict.losing is None:
        logger.info("Not judging %s: %s", label, verdict.reason)
    elif not verdict.losing:
        logger.info("Keeping %s: %s", label, verdict.reason)
    return {"model_name": name, "version": current.version, "decision": decision,
            "reason": verdict.reason, "groups": verdict.groups}


@flow(name="monitor", flow_run_name=run_name("monitor"))
def monitor(data_dir: str | None = None, database_url: str | None = None,
            station_schema: str | None = None, stations_file: str | None = None,
            station: str | None = None, at: datetime | None = None, retrain: bool = True,
            families: list[str] | None = None, triggered_by: str | None = None
            ) -> dict[str, dict] | State:
    """Judge every station's (or `station`'s) champion as of `at` (default now); demote the
    losing ones and start a retrain of those stations (with `families`, default the
    settings')."""
    logger = get_run_logger()
    triggered_by = who_started(triggered_by)
    settings = settings_from(data_dir, database_url, station_schema, stations_file)
    try:
        stations = settings.selected(station)
    except ValueError as unknown:
        return Failed(message=str(unknown))
    states = map_over_store(monitor_station, settings, stations,
                            moment=as_utc(at) if at else datetime.now(UTC),
                            triggered_by=triggered_by)
    results = outcome("monitor", states)
    if isinstance(results, State) or not retrain:
        return results
    for name, result in results.items():
        if result["decision"] == "demoted":
            result["retrain"] = start_retrain({
                "data_dir": data_dir, "database_url": database_url,
                "station_schema": station_schema, "stations_file": stations_file,
                "station": name, "families": families, "until": at,
                "triggered_by": f"monitor ({triggered_by})"}, at)
            logger.info("Started a retrain of %s: %s", name, result["retrain"])
    return results
