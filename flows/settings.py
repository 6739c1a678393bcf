"""Flow parameters -> the one Settings object (flows take plain, JSON-friendly overrides),
and run names that read well in the UI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from forecasting.config import ForecastParams, Settings


def run_name(flow: str) -> Callable[[], str]:
    """`<flow> <start time, UTC>`, e.g. `ingest 2026-11-25 07:10`, instead of a random name."""
    def name() -> str:
        return f"{flow} {datetime.now(UTC):%Y-%m-%d %H:%M}"
    return name


def settings_from(data_dir: str | None = None, database_url: str | None = None,
                  station_schema: str | None = None, stations_file: str | None = None
                  ) -> Settings:
    overrides = {"data_dir": data_dir, "database_url": database_url,
                 "station_schema": station_schema, "stations_file": stations_file}
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def params_from(settings: Settings, families: list[str] | None = None,
                epochs: int | None = None) -> ForecastParams:
    """The settings' model parameters with a run's overrides (raises ValidationError)."""
    overrides = {k: v for k, v in {"families": families, "epochs": epochs}.items() if v}
    return ForecastParams(**{**settings.forecast.model_dump(), **overrides})


def fit_runner(settings: Settings, params: ForecastParams) -> TaskRunner:
    """The task runner that fits the backtest folds: threads, or Dask (a remote scheduler,
    or a LocalCluster of single-threaded processes). Fold fits take and return plain data
    (windows, linear models' arrays, saved networks' file paths), never live models, so
    they run anywhere a worker can reach the same disk."""
    if settings.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=params.parallel_folds)
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": params.parallel_folds,
                                          "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None})


def as_utc(moment: datetime) -> datetime:
    """A flow's time parameter in UTC; one without an offset is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_datetime(moment) -> datetime:
    """A naive-UTC pandas Timestamp (what the library computes in) as the aware datetime
    the registry stores."""
    return moment.to_pydatetime().replace(tzinfo=UTC)


def who_started(given: str | None) -> str:
    """Who started this run, for the audit trail (`promotion_events`, `forecast_runs`): the
    caller's word when it gives one (`cli`, `demo`), else what Prefect recorded: the
    scheduler, a trigger (automation), or a person's run from the UI or API."""
    if given:
        return given
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if not flow_run.id:
        return "python call"
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run.id)
    if run.auto_scheduled:
        return "schedule"
    if run.created_by and run.created_by.type:
        kind = run.created_by.type.lower()
        return f"{kind} {run.created_by.display_value or ''}".strip()
    return "manual run (UI or API)" if run.deployment_id else "flow called directly"
