"""The model parameters (`ForecastParams`, the `[forecast]` table of the settings) and the
family names; the installation's settings are `flows.settings.Settings`."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from forecasting.station.schema import StationSchema

NETWORKS: tuple[str, ...] = ("gru", "gru_dropout", "stacked_gru", "bidirectional_gru")
POOLED: tuple[str, ...] = ("pooled_ridge", "pooled_gru")  # the network model's families
ENSEMBLE = "ensemble"
COMPOSED = "composed"  # a candidate combined with best naive per horizon step by the gate
FAMILIES: tuple[str, ...] = ("blend", "ridge", *NETWORKS, ENSEMBLE)  # the simpler first
Family = Literal[FAMILIES]  # type: ignore[valid-type]


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
    issue_hours: tuple[int, ...] = Field(
        (3,), description="UTC hours of the newest sample the scheduled forecast is issued "
        "from (deployments/prefect.yaml runs `forecast` at 03:30, from the 03:00 sample). "
        "A model's skill against best naive depends on the hour it is issued at (from 03 UTC "
        "the 7-18 h forecast is of the coming day, where yesterday's value is hard to beat, "
        "though the same model wins from every afternoon hour), so the backtest scores, and "
        "the gate judges and calibrates, the forecasts from within `issue_spread_hours` of "
        "these hours; empty: from every hour.")
    issue_spread_hours: int = Field(
        3, ge=0, le=11, description="Origins this many hours either side of an issue hour "
        "are scored too: they give the gate seven times the evidence of the issue hour alone, "
        "and within 3 hours a model's skill against best naive still behaves alike (on DWD "
        "München the ensemble's 7-12 h ratio is 0.95-1.06 from 00 to 06 UTC, 0.84-0.90 from "
        "23 and 07).")
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
    give_up_epochs: int = Field(
        2, gt=0, description="A network whose validation error is not below its base's "
        "after this many epochs stops: it would keep the base.")
    warm_epochs: int = Field(
        5, gt=0, description="Epochs at most when a network is fine-tuned from the newest "
        "registered one of its family and settings (a warm start) instead of from zero.")
    network_refresh_days: int = Field(
        28, ge=0, description="A network is trained from zero again once its chain of warm "
        "starts began this many days before; 0: always from zero.")
    network_every_days: float = Field(
        7, ge=0, description="The networks are fitted at most this often: a retrain less "
        "than this many days after the newest registered network of a family (same "
        "settings) does not fit that family, while the linear families retrain every time; "
        "0: at every retrain.")
    skip_after_kept_base: int = Field(
        3, ge=0, description="A network family whose last this many registered versions all "
        "kept their base is not fitted (it would forecast as its base) until a refresh is "
        "due; 0: always fitted.")
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

    @field_validator("issue_hours")
    @classmethod
    def _hours_of_a_day(cls, hours: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= h < 24 for h in hours):
            raise ValueError(f"issue hours are hours of the day, 0-23 (got {list(hours)})")
        return tuple(sorted(set(hours)))

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
    def scored_hours(self) -> frozenset[int] | None:
        """The origin hours (UTC) the backtest scores: the issue hours and their neighbours
        (None: every hour)."""
        if not self.issue_hours:
            return None
        return frozenset().union(*(self.hours_around(h) for h in self.issue_hours))

    @property
    def issue_neighbourhoods(self) -> dict[int, frozenset[int]]:
        """Where the product issues at several hours of the day: each issue hour and the
        origin hours pooled with it (`hours_around`), which get interval offsets of their
        own; empty where it issues at one hour (or every hour)."""
        if len(self.issue_hours) < 2:
            return {}
        return {hour: self.hours_around(hour) for hour in self.issue_hours}

    def hours_around(self, hour: int) -> frozenset[int]:
        """`hour` of the day and its `issue_spread_hours` neighbours either side."""
        spread = range(-self.issue_spread_hours, self.issue_spread_hours + 1)
        return frozenset((hour + d) % 24 for d in spread)

    @property
    def scored_per_day(self) -> int:
        """Backtest windows scored per day."""
        hours = self.scored_hours
        return self.samples_per_day * (len(hours) if hours else 24) // 24

    @property
    def overlap_windows(self) -> int:
        """How many scored windows in a row a forecast's horizon overlaps: the lag over
        which the gate's paired test expects their errors to be dependent."""
        return max(1, -(-self.horizon_steps * self.scored_per_day // self.samples_per_day))

    @property
    def group_steps(self) -> int:
        """Horizon steps in one group of the gate."""
        return max(1, self.group_hours * 60 // self.step_minutes)

    @property
    def input_gap_minutes(self) -> int:
        """Longest gap interpolated in inputs (never shorter than the target fill)."""
        return max(self.max_gap_minutes, self.max_input_gap_minutes)


class NetworkModelParams(BaseModel):
    """The network model: one model learned across every station of the network
    (`forecasting.models.pooled`), fitted weekly, and the evidence a new station's forecast
    is gated on (`forecasting.scoring.cold_start`); TOML table `[network_model]`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    families: tuple[Literal[POOLED], ...] = Field(  # type: ignore[valid-type]
        POOLED, min_length=1, description="Fitted each week; the better on the evidence "
        "serves the new stations.")
    lookback_hours: int = Field(
        144, gt=0, description="Its input window (6 days): a new station is forecast by it "
        "once it holds this much history, from its seventh day.")
    history_days: float = Field(365, gt=0, description="Days of every station it learns from.")
    epochs: int = Field(8, gt=0)
    batch_size: int = Field(256, gt=0, description="Larger than a station's: it sees "
                            "every station's windows.")
    max_windows: int = Field(
        100_000, gt=0, description="Training windows of each fit, drawn at random from every "
        "station's (a quarter of it for validation): the weekly job costs the same time and "
        "memory for 100 stations or 1,000 (8 stations' year: about 70,000, all used).")
    station_groups: int = Field(
        4, ge=2, description="The stations are replayed as new in this many groups, each "
        "forecast by a model fitted without them (the evidence for a new station).")
    evidence_days: float = Field(28, gt=0, description="Days each station is replayed as new.")
    replayed_stations: int = Field(
        48, ge=2, description="At most this many stations are replayed as new each week, "
        "drawn at random: the evidence stays ample and the gate's cost flat however large "
        "the network.")
    new_station_days: float = Field(
        7, gt=0, description="Days of its own history a replayed station's scale is taken "
        "from, as a station in its first week has.")

    def forecast_params(self, base: ForecastParams) -> ForecastParams:
        """The station parameters with the network model's window and training."""
        return ForecastParams(**{**base.model_dump(), "lookback_hours": self.lookback_hours,
                                 "epochs": self.epochs, "batch_size": self.batch_size,
                                 "patience": 2, "give_up_epochs": 3})


def model_name(station: StationSchema, params: ForecastParams) -> str:
    """Registry name of the forecast: station, target column and horizon, e.g.
    `jena/t_degc_24h`."""
    return f"{station.name}/{station.target_channel.column}_{params.horizon_hours}h"


NETWORK_MODEL_PREFIX = "@network"  # no station's name begins with "@": no model name clashes


def network_model_name(station: StationSchema, params: ForecastParams) -> str:
    """Registry name of the network model that serves the station's target quantity, e.g.
    `@network/temperature_24h`."""
    return f"{NETWORK_MODEL_PREFIX}/{station.target_channel.column}_{params.horizon_hours}h"
