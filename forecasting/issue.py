"""One forecast as of a time, from the observations at or before that time only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.models.ensemble import Composed
from forecasting.models.naive import BestNaive, Persistence
from forecasting.config import ForecastParams
from forecasting.scoring.backtest import Predictor, predict_windows
from forecasting.scoring.correction import Verified, corrected_weights
from forecasting.scoring.intervals import (Calibration, Misses, at_hour, bounds, calibrate,
                                          tracked_factors)
from forecasting.features import build_features
from forecasting.station.schema import StationSchema
from forecasting.windows import latest_input, make_windows

# Days of forecasts from around the issue hour on which best naive is chosen per hour ahead:
# with 14, the choice flipped from day to day where the two are close and cost 1-3 % against
# a choice made once on 90 days (DWD München, Tetouan at the season changes); 28 did not.
NAIVE_FIT_DAYS = 28


class StaleData(ValueError):
    """The newest observation is too old, or the newest sample falls in a gap: no forecast."""


@dataclass(frozen=True)
class Forecast:
    issued_at: pd.Timestamp  # naive UTC: the last input sample
    target_times: pd.DatetimeIndex  # naive UTC, whole hours ahead
    values: np.ndarray  # target units
    by_model: bool  # False: a naive forecast (no model, or its input window had holes)
    naive: str = ""  # which naive forecast, when not by the model
    note: str = ""  # why the model was not used, when it was given
    # The interval offsets of the forecaster that made the values (None: no intervals).
    calibration: Calibration | None = None
    # Best naive's own offsets from its recent errors: the naive interval, the yardstick of
    # the interval score (None where it had too few of them).
    naive_calibration: Calibration | None = None
    # Per level ("80"), the (hours ahead, 2) factors on the (lower, upper) offsets that the
    # verified coverage of the station's earlier intervals asked for (`tracked_factors`).
    factors: dict[str, np.ndarray] | None = None
    # A model's issue is self-corrected (forecasting.scoring.correction): values = naive +
    # weights * (champion - naive), each per hour ahead; None for a naive forecast.
    champion: np.ndarray | None = None
    naive_values: np.ndarray | None = None
    weights: np.ndarray | None = None

    def parts(self) -> dict[str, list[float]] | None:
        """The self-corrected issue's parts as the forecasts table stores them."""
        if self.weights is None:
            return None
        return {"champion_value": self.champion.tolist(),
                "naive_value": self.naive_values.tolist(), "weight": self.weights.tolist()}

    def bounds(self, level: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(lower, upper) of the central `level` % interval at each hour ahead."""
        if self.calibration is None or str(level) not in self.calibration:
            return None
        return bounds(self.values, self.calibration, level,
                      (self.factors or {}).get(str(level)))

    def naive_bounds(self, level: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(lower, upper) of the naive `level` % interval: best naive's forecast plus the
        quantiles of its own errors over the last `NAIVE_FIT_DAYS`, untracked."""
        if self.naive_calibration is None or str(level) not in self.naive_calibration:
            return None
        path = self.values if self.naive_values is None else self.naive_values
        return bounds(path, self.naive_calibration, level)


def input_span(params: ForecastParams) -> pd.Timedelta:
    """How far before the forecast time the observations must reach (the model's window, and
    enough days for the naive fallback to choose between its two forecasts)."""
    return pd.Timedelta(hours=max(params.lookback_hours, (NAIVE_FIT_DAYS + 2) * 24),
                        minutes=params.max_data_age_minutes)


def forecast_as_of(frame: pd.DataFrame, station: StationSchema, params: ForecastParams,
                   at: pd.Timestamp, network: Predictor | None = None,
                   calibration: Calibration | None = None,
                   verified: Verified | None = None, misses: Misses | None = None) -> Forecast:
    """The target at each whole hour 1..horizon after the newest input sample.

    `frame` may hold later rows; they are cut off at `at`, so the result never depends on
    them. The model needs the whole lookback window without holes (after filling gaps up
    to `max_input_gap_minutes`); when one is left, or without a model, the forecast is the
    best naive one: per hour ahead, persistence or the value a day before, whichever did
    better over the last `NAIVE_FIT_DAYS` (persistence alone when those days have too many
    holes to tell). Stale data is refused outright. The model's intervals come from
    `calibration`; the naive forecast's from its own errors over those days, which every
    issue also carries as the naive interval (the interval score's yardstick). A model's
    forecast is self-corrected: best naive + w (champion - best naive) per hour ahead, w
    from the `verified` issues known at `at` (`corrected_weights`), starting from the
    gate's weights (a composed champion's; 1 for any other). Every interval's offsets are
    tracked by the `misses` of the station's intervals verified by `at` (`tracked_factors`).
    """
    frame = frame[frame.index <= at]
    if frame.empty:
        raise StaleData(f"no observations at or before {at:%Y-%m-%d %H:%M} UTC")
    newest = frame.index[-1]
    if at - newest > pd.Timedelta(minutes=params.max_data_age_minutes):
        raise StaleData(
            f"newest observation is {newest:%Y-%m-%d %H:%M} UTC, {(at - newest).floor('min')} "
            f"before the forecast time {at:%Y-%m-%d %H:%M} UTC; allowed is "
            f"{params.max_data_age_minutes} minutes (forecast.max_data_age_minutes)")
    features, _, _ = build_features(frame, station, params)
    issued_at = features.index[-1]
    target = features.columns.get_loc(station.target_channel.column)
    if np.isnan(features.iloc[-1, target]):
        raise StaleData(f"no {station.target} at the newest sample time "
                        f"{issued_at:%Y-%m-%d %H:%M} UTC (inside a gap)")
    columns = tuple(features.columns)
    if network is not None and network.columns != columns:
        raise ValueError(f"the model was trained on features {network.columns}, "
                         f"the station now gives {columns}")
    lookback, horizon = params.lookback_steps, params.horizon_steps
    window = latest_input(features, lookback)
    by_network = network is not None and window is not None
    note = ""
    if network is not None and window is None:
        recent = features.iloc[-lookback:]
        missing = int(recent.isna().any(axis=1).sum()) + lookback - len(recent)
        note = (f"the {params.lookback_hours} h input window ending {issued_at:%Y-%m-%d %H:%M} "
                f"UTC misses {missing} of {lookback} samples after filling input gaps up to "
                f"{params.input_gap_minutes} minutes; a naive forecast instead")
    naive, parts = "", {}
    hourly = params.hourly_steps
    naive_name, naive_path, naive_calibration = naive_forecast(
        features, station.target_channel.column, params)
    if by_network:
        parts = self_corrected(network, window, naive_path, hourly,
                               verified or Verified.none(int(hourly.sum())), params.group_hours)
        path = parts["naive_values"] + parts["weights"] * (parts["champion"]
                                                           - parts["naive_values"])
        calibration = calibration and at_hour(calibration, issued_at.hour)
    else:
        naive, path, calibration = naive_name, naive_path[hourly], naive_calibration
    minutes = params.step_minutes * np.arange(1, horizon + 1)[hourly]
    factors = calibration and misses and {
        level: tracked_factors(misses, int(level), params.group_hours)
        for level in calibration if level != "scale"}
    return Forecast(issued_at, issued_at + pd.to_timedelta(minutes, unit="min"),
                    shortest(path), by_network, naive, note, calibration=calibration,
                    naive_calibration=naive_calibration, factors=factors or None, **parts)


def shortest(values: np.ndarray) -> np.ndarray:
    """The shortest decimal of each float32 (1.35, not 1.350000023841858): reads well in SQL."""
    return np.array([float(str(v)) for v in np.asarray(values).astype(np.float32)])


def self_corrected(network: Predictor, window: np.ndarray, naive_path: np.ndarray,
                   hourly: np.ndarray, verified: Verified, group_hours: int
                   ) -> dict[str, np.ndarray]:
    """The champion's forecast (a composed one's member's) and best naive's at each hour
    ahead, and the champion's weight against best naive there: the gate's weights moved by
    the verified issues (`corrected_weights`)."""
    composed = isinstance(network, Composed)
    member = network.member if composed else network
    prior = network.weights[hourly] if composed else np.ones(int(hourly.sum()))
    return {"champion": shortest(np.asarray(member.predict(window))[0][hourly]),
            "naive_values": shortest(naive_path[hourly]),
            "weights": np.round(corrected_weights(prior, verified, group_hours), 4)}


def naive_forecast(features: pd.DataFrame, target: str, params: ForecastParams
                   ) -> tuple[str, np.ndarray, Calibration | None]:
    """(name, path, interval calibration) of the best naive forecast from the newest sample,
    chosen and calibrated per hour ahead on the last `NAIVE_FIT_DAYS`' forecasts from around
    the newest sample's hour of day (as `BestNaive.at_hours` chooses; from every hour when
    those are too few); persistence, without intervals, when those hold no complete day-long
    window."""
    day, horizon = params.samples_per_day, params.horizon_steps
    recent = features[features.index > features.index[-1] - pd.Timedelta(days=NAIVE_FIT_DAYS)]
    windows = make_windows(recent[[target]], target, day, horizon)
    windows = windows.preferring_hours(params.hours_around(features.index[-1].hour))
    data = features[[target]].to_numpy(np.float32)
    if len(windows) and len(data) >= day and horizon <= day \
            and not np.isnan(data[-day:]).any():
        best = BestNaive(day).fit(windows)
        residuals = windows.targets() - predict_windows(best, windows)
        return (BestNaive.name, best.predict(data[None, -day:])[0],
                calibrate(residuals[:, params.hourly_steps]))
    return (Persistence.name, Persistence().for_target(0, horizon).predict(data[None, -1:])[0],
            None)
