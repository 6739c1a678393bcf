"""The one settings object: defaults < `sensorcast.toml` < `SENSORCAST_*` env < CLI flags."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from typing import Literal

import numpy as np

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from forecasting.schema import JENA, StationSchema, load_station
from forecasting.stations import Site, load_stations, shared_drop_dirs, station_named


Family = Literal["blend", "ridge", "gru", "gru_dropout", "stacked_gru", "bidirectional_gru",
                 "ensemble"]
NETWORKS: tuple[str, ...] = ("gru", "gru_dropout", "stacked_gru", "bidirectional_gru")
ENSEMBLE = "ensemble"
COMPOSED = "composed"  # a candidate with best naive at the horizons the gate did not trust
FAMILIES: tuple[str, ...] = ("blend", "ridge", *NETWORKS, ENSEMBLE)


class ForecastParams(BaseModel):
    """Windows, features and training of the candidate models (TOML table `[forecast]`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lookback_hours: int = Field(240, gt=0, description="Input window (10 days).")
    step_minutes: int = Field(60, gt=0, description="Input sampling interval.")
    horizon_hours: int = Field(24, gt=0, description="Forecast path length (+1 h .. +24 h).")
    max_gap_minutes: int = Field(
        60, ge=0, description="Gaps up to this long are filled by linear interpolation."
    )
    max_input_gap_minutes: int = Field(
        360, ge=0, description="Inputs only: longer gaps, up to this, are interpolated too; "
        "targets (training and scoring) never use values filled beyond max_gap_minutes.")
    max_data_age_minutes: int = Field(
        180, gt=0, description="A forecast is refused when the newest observation is older.")
    time_features: bool = Field(True, description="Time of day/year as sin/cos.")
    wind_vector: bool = Field(True, description="Wind speed+direction as a (u, v) vector.")
    window_days: int = Field(120, gt=0, description="Rolling training window of the networks.")
    history_days: int = Field(
        1095, gt=0, description="Training history of the linear models and the networks' "
        "base (3 years): they need a year to learn the seasons, the networks do not.")
    validation_days: float = Field(
        14, gt=0, description="Days before each cut-off for early stopping and the ridge "
        "penalty.")
    folds: int = Field(6, gt=0, description="Rolling-origin folds the gate scores the linear "
                       "families and the naive forecasts on.")
    network_folds: int = Field(3, gt=0, description="The newest of the folds, where the "
                               "networks (and an ensemble with them) are fitted and scored "
                               "too: they cost about a minute a fold.")
    fold_days: float = Field(7, gt=0, description="Days of forecasts scored in each fold.")
    backtest_days: float = Field(
        84, ge=0, description="The folds are spread over this many days before the newest "
        "data (or over what a shorter history has), so the gate sees several stretches of "
        "weather, not only the last weeks; 0: the last `folds` weeks.")
    gate_confidence: float = Field(
        0.95, gt=0.5, lt=1, description="A candidate is trusted in a horizon group only if "
        "it beat best naive there in every fold and a paired test (Diebold-Mariano) says so "
        "at this confidence; elsewhere the promoted forecast is best naive's.")
    families: tuple[Family, ...] = FAMILIES
    network_base: Literal["blend", "ridge"] = Field(
        "ridge", description="The linear forecast the networks learn to correct.")
    units: int = Field(32, gt=0)
    batch_size: int = Field(64, gt=0, description="Small enough for ~30 updates an epoch on "
                            "120 days of hourly windows.")
    epochs: int = Field(20, gt=0)
    patience: int = Field(3, gt=0, description="Early-stopping patience (epochs).")
    learning_rate: float = Field(1e-3, gt=0)
    jit_compile: bool = Field(True, description="XLA: about 2x faster GRU training on CPU.")
    seed: int = 0
    min_improvement: float = Field(
        0.0, ge=0, lt=1, description="Relative MAE gain a candidate needs over each rival.")
    group_hours: int = Field(6, gt=0, description="The gate must win in every group of "
                             "this many horizons (1-6 h, 7-12 h, ...).")
    parallel_folds: int = Field(
        1, gt=0, description="Backtest folds fitted at once; each fold's networks train in a "
        "process of their own (one core, about 1.4 GB), so 2 on 2 cores nearly halves the time.")

    @field_validator("families")
    @classmethod
    def _ensemble_has_members(cls, families: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(families)) < len(families):
            raise ValueError(f"each family once, please: {', '.join(families)}")
        if ENSEMBLE in families and not set(families) - {ENSEMBLE}:
            raise ValueError("the ensemble averages the other families, so it needs at "
                             "least one of them beside it")
        return families

    @property
    def lookback_steps(self) -> int:
        """Input samples per window."""
        return self.lookback_hours * 60 // self.step_minutes

    @property
    def horizon_steps(self) -> int:
        """Target samples per forecast path."""
        return self.horizon_hours * 60 // self.step_minutes

    @property
    def hourly_steps(self) -> np.ndarray:
        """Which horizon steps fall on whole hours: the forecasts' rows."""
        return self.step_minutes * np.arange(1, self.horizon_steps + 1) % 60 == 0

    @property
    def samples_per_day(self) -> int:
        return 24 * 60 // self.step_minutes

    @property
    def group_steps(self) -> int:
        """Horizon steps in one group of the gate."""
        return max(1, self.group_hours * 60 // self.step_minutes)

    @property
    def input_gap_minutes(self) -> int:
        """Longest gap interpolated in inputs (never shorter than the target fill)."""
        return max(self.max_gap_minutes, self.max_input_gap_minutes)


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
        None, description="TOML list of the stations served (forecasting.stations); default: "
        "one station, station_schema's, with its files dropped into data_dir/incoming.")
    chunk_rows: int = Field(50_000, gt=0, description="Rows per ingest transaction.")
    parallel_stations: int = Field(
        2, gt=0, description="Stations a run works on at once (threads): a retrain holds "
        "its station's windows in memory and fits `parallel_folds` folds at once.")
    tensorflow_threads: int = Field(
        1, ge=0, description="Threads per TensorFlow op in training (0: TensorFlow's own "
        "choice, one per core); see forecasting.training.set_tensorflow_threads.")
    forecast: ForecastParams = ForecastParams()
    intervals: tuple[Literal[50, 80, 95], ...] = Field(
        (80,), description="Central prediction intervals (%) written with each forecast "
        "(columns lower_80/upper_80, ...).")
    interval_min_verified: int = Field(
        30, gt=1, description="Verified out-of-sample issues of the champion after which its "
        "intervals are calibrated on those errors instead of its registration backtest's.")

    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="Where the backtest folds are fitted: threads of the flow's "
        "process, or Dask (a LocalCluster of `parallel_folds` processes, or `dask_address`).")
    dask_address: str | None = Field(
        None, description="A running Dask scheduler (tcp://host:8786) for task_runner dask.")
    retrain_wait_seconds: float = Field(
        1800, ge=0, description="A retrain of a station that another live process is "
        "retraining waits this long for it, then fails saying who holds it (a holder that "
        "died is taken over at once).")
    monitor_days: int = Field(14, gt=0, description="The skill monitor judges the champion "
                              "on its verified forecasts of the last this many days.")
    monitor_margin: float = Field(
        0.05, ge=0, description="The champion is demoted when its MAE exceeds best naive's "
        "by more than this (relative) overall or in any horizon group.")
    monitor_min_issues: int = Field(7, gt=0, description="Verified issues the monitor needs "
                                    "in the period before it judges.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sensorcast.db'}"

    @cached_property
    def sites(self) -> tuple[Site, ...]:
        if self.stations_file:
            sites = load_stations(self.stations_file)
            shared = shared_drop_dirs({
                s.station.name: s.drop_dir or self.data_dir / "incoming" / s.station.name
                for s in sites})
            if shared:
                raise ValueError(f"stations file {self.stations_file}: {shared}")
            return sites
        station = load_station(self.station_schema) if self.station_schema else JENA
        return (Site(station, self.data_dir / "incoming"),)

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

    @property
    def artifact_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def plot_dir(self) -> Path:
        return self.data_dir / "plots"



def invalid_settings(error: ValidationError) -> str:
    """A settings error in one line: each field that broke a rule, with the rule."""
    return "; ".join(f"{'.'.join(str(part) for part in e['loc']) or 'settings'}: {e['msg']}"
                     for e in error.errors())


def model_name(station: StationSchema, params: ForecastParams) -> str:
    """Registry name of the forecast: station, target column and horizon, e.g.
    `jena/t_degc_24h`."""
    return f"{station.name}/{station.target_channel.column}_{params.horizon_hours}h"
