"""One forecast as of a time, from the observations at or before that time only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.models.naive import BestNaive, Persistence
from forecasting.config import ForecastParams
from forecasting.scoring.backtest import Predictor, predict_windows
from forecasting.scoring.intervals import Calibration, bounds, calibrate, changeability
from forecasting.features import build_features
from forecasting.station.schema import StationSchema
from forecasting.windows import latest_input, make_windows

NAIVE_FIT_DAYS = 14  # days of windows on which the naive fallback picks its forecast per hour


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
    # The interval offsets of the forecaster that made the values (None: no intervals), and
    # how changeable the weather was at the issue time (forecasting.scoring.intervals).
    calibration: Calibration | None = None
    changeability: float = float("nan")

    def bounds(self, level: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(lower, upper) of the central `level` % interval at each hour ahead."""
        if self.calibration is None or str(level) not in self.calibration:
            return None
        return bounds(self.values, self.calibration, level, self.changeability)


def input_span(params: ForecastParams) -> pd.Timedelta:
    """How far before the forecast time the observations must reach (the model's window, and
    enough days for the naive fallback to choose between its two forecasts)."""
    return pd.Timedelta(hours=max(params.lookback_hours, (NAIVE_FIT_DAYS + 2) * 24),
                        minutes=params.max_data_age_minutes)


def forecast_as_of(frame: pd.DataFrame, station: StationSchema, params: ForecastParams,
                   at: pd.Timestamp, network: Predictor | None = None,
                   calibration: Calibration | None = None) -> Forecast:
    """The target at each whole hour 1..horizon after the newest input sample.

    `frame` may hold later rows; they are cut off at `at`, so the result never depends on
    them. The model needs the whole lookback window without holes (after filling gaps up
    to `max_input_gap_minutes`); when one is left, or without a model, the forecast is the
    best naive one: per hour ahead, persistence or the value a day before, whichever did
    better over the last `NAIVE_FIT_DAYS` (persistence alone when those days have too many
    holes to tell). Stale data is refused outright. The model's intervals come from
    `calibration`; the naive forecast's from its own errors over those days.
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
    naive = ""
    if by_network:
        path = np.asarray(network.predict(window))[0]
    else:
        naive, path, calibration = naive_forecast(features, station.target_channel.column,
                                                  params)
    hourly = params.hourly_steps
    minutes = params.step_minutes * np.arange(1, horizon + 1)[hourly]
    # The shortest decimal of each float32 (1.35, not 1.350000023841858) reads well in SQL.
    values = np.array([float(str(v)) for v in path[hourly].astype(np.float32)])
    series = features.iloc[:, target].to_numpy()
    now = changeability(series, np.array([len(series) - 1]), params.samples_per_day)[0]
    return Forecast(issued_at, issued_at + pd.to_timedelta(minutes, unit="min"),
                    values, by_network, naive, note, calibration, now)


def naive_forecast(features: pd.DataFrame, target: str, params: ForecastParams
                   ) -> tuple[str, np.ndarray, Calibration | None]:
    """(name, path, interval calibration) of the best naive forecast from the newest sample,
    chosen and calibrated per hour on the last `NAIVE_FIT_DAYS`; persistence, without
    intervals, when those hold no complete day-long window."""
    day, horizon = params.samples_per_day, params.horizon_steps
    recent = features[features.index > features.index[-1] - pd.Timedelta(days=NAIVE_FIT_DAYS)]
    windows = make_windows(recent[[target]], target, day, horizon)
    data = features[[target]].to_numpy(np.float32)
    if len(windows) and len(data) >= day and horizon <= day \
            and not np.isnan(data[-day:]).any():
        best = BestNaive(day).fit(windows)
        residuals = windows.targets() - predict_windows(best, windows)
        return (BestNaive.name, best.predict(data[None, -day:])[0],
                calibrate(residuals[:, params.hourly_steps],
                          changeability(windows.target, windows.origins, day)))
    return (Persistence.name, Persistence().for_target(0, horizon).predict(data[None, -1:])[0],
            None)
