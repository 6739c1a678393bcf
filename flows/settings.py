"""The one settings object of an installation (defaults < `sensorcast.toml` <
`SENSORCAST_*` env < CLI flags), flow parameters -> it (flows take plain, JSON-friendly
overrides), and run names that read well in the UI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from forecasting.config import ForecastParams, NetworkModelParams
from forecasting.station.network import Site, load_stations, shared_drop_dirs, station_named
from forecasting.station.schema import JENA, StationSchema, load_station, read_toml

if TYPE_CHECKING:  # Prefect reads its settings when imported: the CLI sets them first
    from prefect.task_runners import TaskRunner


class BoundedToml(TomlConfigSettingsSource):
    """`sensorcast.toml`, read only if it is a regular file of a sane size."""

    def _read_file(self, file_path: Path) -> dict:
        return read_toml(file_path, "settings file")


class Settings(BaseSettings):
    """Paths and parameters of one sensorcast installation.

    Build it explicitly (`Settings()` or `Settings(data_dir=...)`); keyword arguments are the
    CLI flags and win over environment variables, which win over `sensorcast.toml`.
    """

    model_config = SettingsConfigDict(
        env_prefix="SENSORCAST_",
        env_nested_delimiter="__",
        toml_file="sensorcast.toml",
        frozen=True,
        extra="forbid",
    )

    data_dir: Path = Field(Path("data"), description="Database, artifacts, drop folder, plots.")
    database_url: str | None = Field(
        None, description="Any SQLAlchemy URL; default: SQLite file data_dir/sensorcast.db."
    )
    station_schema: Path | None = Field(
        None, description="TOML station description of the one station served when there "
        "is no stations_file; default: the built-in Jena station.")
    stations_file: Path | None = Field(
        None, description="TOML list of the stations served (forecasting.station.network); "
        "default: one station, station_schema's, with its files dropped into data_dir/incoming.")
    chunk_rows: int = Field(50_000, gt=0, description="Rows per ingest transaction.")
    ingested_folder: str = Field(
        "done", description="A drop-folder file whose rows are all stored is moved to "
        "<drop folder>/<this>/<UTC date>/ (never deleted), so a run reads only new files; "
        "'' leaves files in place (each run then hashes every one again). It must lie inside "
        "the drop folder (no absolute path, no '..').")
    parallel_stations: int = Field(
        2, gt=0, description="Stations a run works on at once (threads, or Dask worker "
        "processes): a retrain holds its station's windows in memory and fits "
        "`parallel_folds` folds at once.")
    tensorflow_threads: int = Field(
        1, ge=0, description="Threads per TensorFlow op in training (0: TensorFlow's own "
        "choice, one per core); see forecasting.models.networks.set_tensorflow_threads.")
    forecast: ForecastParams = ForecastParams()
    network_model: NetworkModelParams = NetworkModelParams()
    intervals: tuple[Literal[50, 80, 95], ...] = Field(
        (80,), description="Central prediction intervals (%) written with each forecast "
        "(columns lower_80/upper_80, ...).")
    interval_min_verified: int = Field(
        30, gt=1, description="Verified out-of-sample issues of the champion after which its "
        "intervals are calibrated on those errors instead of its registration backtest's.")

    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="Where the stations' work runs (ingest, retrain, forecast, "
        "monitor; `parallel_stations` at a time), and a backtest's folds and the network "
        "model's families: threads of the flow's process, or Dask (a LocalCluster of "
        "`parallel_stations` or `parallel_folds` single-threaded processes, or "
        "`dask_address`).")
    dask_address: str | None = Field(
        None, description="A running Dask scheduler (tcp://host:8786) for task_runner dask.")
    retrain_wait_seconds: float = Field(
        1800, ge=0, description="A retrain of a station that another live process is "
        "retraining waits this long for it, then fails saying who holds it (a holder that "
        "died is taken over at once).")
    lease_ttl_seconds: float = Field(
        150, gt=0, description="A retrain or backtest that has not renewed its lease (every "
        "sixth of this, by the database's clock) for this long may be taken over; the frozen "
        "holder then registers nothing. Keep it well above SQLite's 60 s busy timeout.")
    stale_forecast_hours: float = Field(
        26, gt=0, description="`sensorcast status` calls a station stale (exit 1) when its "
        "newest issued forecast is as of longer ago than this (a daily forecast, and two "
        "hours' grace).")
    monitor_days: int = Field(14, gt=0, description="The skill monitor judges the champion "
                              "on its verified forecasts of the last this many days.")
    monitor_margin: float = Field(
        0.05, ge=0, description="The champion is demoted when its MAE exceeds best naive's "
        "by more than this (relative) overall or in any horizon group.")
    monitor_min_issues: int = Field(7, gt=0, description="Verified issues the monitor needs "
                                    "in the period before it judges.")

    @field_validator("ingested_folder")
    @classmethod
    def _inside_the_drop_folder(cls, folder: str) -> str:
        """Files move only within their drop folder: never to an absolute path or up."""
        if folder and (Path(folder).is_absolute() or ".." in Path(folder).parts
                       or Path(folder) == Path(".")):
            raise ValueError(f"{folder!r} must be a folder inside the drop folder (e.g. "
                             "'done'), not an absolute path, '.' or one going up with '..'")
        return folder

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, BoundedToml(settings_cls))

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sensorcast.db'}"

    @property
    def sites(self) -> tuple[Site, ...]:
        # Read once per version of the file and kept outside this object: Prefect walks
        # every attribute in a settings object's __dict__ at each task call, and a network
        # of 1,000 sites cached there made that walk most of a station's retrain.
        if self.stations_file:
            return _network(*_version(self.stations_file), self.data_dir)
        if self.station_schema:
            return _one_station(*_version(self.station_schema), self.data_dir)
        return (Site(JENA, self.data_dir / "incoming"),)

    @property
    def stations(self) -> tuple[StationSchema, ...]:
        return tuple(site.station for site in self.sites)

    def selected(self, name: str | None) -> tuple[StationSchema, ...]:
        """The station called `name`, or every station when None."""
        return self.stations if name is None else (station_named(self.stations, name),)

    def drop_dir(self, station: str) -> Path:
        """Where the station's files arrive."""
        site = next(s for s in self.sites if s.station.name == station)
        return site.drop_dir or self.data_dir / "incoming" / station

    def done_dir(self, station: str) -> Path | None:
        """Where the station's fully ingested files go (None: they stay)."""
        return self.drop_dir(station) / self.ingested_folder if self.ingested_folder else None

    @property
    def artifact_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def plot_dir(self) -> Path:
        return self.data_dir / "plots"



def _version(path: Path) -> tuple[Path, tuple[int, int] | None]:
    """A file and its version (modification time and size; None when it is not a file)."""
    file = Path(path).resolve()
    stat = file.stat() if file.is_file() else None
    return file, stat and (stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _one_station(station_schema: Path, file_version: tuple | None, data_dir: Path
                 ) -> tuple[Site, ...]:
    return (Site(load_station(station_schema), data_dir / "incoming"),)


@lru_cache(maxsize=8)
def _network(stations_file: Path, file_version: tuple | None, data_dir: Path
             ) -> tuple[Site, ...]:
    """The stations file's sites, read once per version of the file: each station's task
    reads the settings, and reading a file of 1,000 stations took 66 ms."""
    sites = load_stations(stations_file)
    shared = shared_drop_dirs({s.station.name: s.drop_dir or data_dir / "incoming" /
                               s.station.name for s in sites})
    if shared:
        raise ValueError(f"stations file {stations_file}: {shared}")
    return sites


def invalid_settings(error: ValidationError) -> str:
    """A settings error in one line: each field that broke a rule, with the rule."""
    return "; ".join(f"{'.'.join(str(part) for part in e['loc']) or 'settings'}: {e['msg']}"
                     for e in error.errors())




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


def task_runner(settings: Settings, workers: int) -> TaskRunner:
    """Where a flow's parallel work runs, `workers` at a time: threads of the flow's
    process, or Dask (the cluster at `dask_address`, or a LocalCluster of that many
    single-threaded processes). The work (a station's task, a fold's fit, a network-model
    family) takes and returns plain data (settings, windows, the linear models' arrays,
    saved networks' file paths), never live models or open databases, so it runs anywhere
    a worker reaches the same database and disk. Work already on a Dask worker (a station's
    retrain) runs its own parallel work on threads there."""
    from prefect.task_runners import ThreadPoolTaskRunner

    if settings.task_runner == "threads" or on_dask_worker():
        return ThreadPoolTaskRunner(max_workers=workers)
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


def on_dask_worker() -> bool:
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


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
