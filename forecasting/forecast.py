"""One forecast as of a time, from the observations at or before that time only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.baselines import Persistence
from forecasting.config import ForecastParams
from forecasting.features import build_features
from forecasting.schema import StationSchema
from forecasting.training import NetworkForecaster
from forecasting.windows import latest_input


class StaleData(ValueError):
    """The newest observation is too old, or the newest sample falls in a gap: no forecast."""


@dataclass(frozen=True)
class Forecast:
    issued_at: pd.Timestamp  # naive UTC: the last input sample
    target_times: pd.DatetimeIndex  # naive UTC, whole hours ahead
    values: np.ndarray  # target units
    by_network: bool  # False: persistence (no network, or its input window had holes)
    note: str = ""  # why the network was not used, when it was given


def input_span(params: ForecastParams) -> pd.Timedelta:
    """How far before the forecast time the observations must reach."""
    return pd.Timedelta(hours=params.lookback_hours, minutes=params.max_data_age_minutes)


def forecast_as_of(frame: pd.DataFrame, station: StationSchema, params: ForecastParams,
                   at: pd.Timestamp, network: NetworkForecaster | None = None) -> Forecast:
    """The target at each whole hour 1..horizon after the newest input sample.

    `frame` may hold later rows; they are cut off at `at`, so the result never depends on
    them. The network needs the whole lookback window without holes (after filling gaps up
    to `max_input_gap_minutes`); when one is left, or without a network, the forecast is
    persistence, which needs only the newest sample. Stale data is refused outright.
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
                f"{params.input_gap_minutes} minutes; persistence instead")
    if by_network:
        path = np.asarray(network.predict(window))[0]
    else:
        last = features.to_numpy(np.float32)[None, -1:]
        path = Persistence().for_target(target, horizon).predict(last)[0]
    minutes = params.step_minutes * np.arange(1, horizon + 1)
    hourly = minutes % 60 == 0
    # The shortest decimal of each float32 (1.35, not 1.350000023841858) reads well in SQL.
    values = np.array([float(str(v)) for v in path[hourly].astype(np.float32)])
    return Forecast(issued_at, issued_at + pd.to_timedelta(minutes[hourly], unit="min"),
                    values, by_network, note)
