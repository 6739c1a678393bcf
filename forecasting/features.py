"""From stored channels to model inputs: a regular sampled grid and derived features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.config import ForecastParams
from forecasting.station.schema import StationSchema
from forecasting.windows import Windows, make_windows

DAY_SECONDS = 86_400
YEAR_SECONDS = 365.2425 * DAY_SECONDS
TIME_FEATURES = ("day_sin", "day_cos", "year_sin", "year_cos")


def regular_grid(frame: pd.DataFrame, cadence_minutes: int, max_gap_minutes: int) -> pd.DataFrame:
    """Reindex onto the full cadence grid; fill gaps up to `max_gap_minutes` linearly.

    Longer gaps stay NaN, so every window that touches them is dropped later.
    """
    if frame.empty:
        return frame
    freq = pd.Timedelta(minutes=cadence_minutes)
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=freq, name=frame.index.name)
    regular = frame.reindex(grid)
    limit = max_gap_minutes // cadence_minutes
    if limit:
        # Only gaps that are short in full are filled (pandas' `limit` would fill the
        # start of a long gap too).
        missing = regular.isna().any(axis=1).to_numpy()
        run_id = np.cumsum(~missing)
        run_length = pd.Series(missing).groupby(run_id).transform("sum").to_numpy()
        fillable = missing & (run_length <= limit)
        filled = regular.interpolate(method="linear", limit_area="inside")
        regular[fillable] = filled[fillable]
    return regular


def sample(frame: pd.DataFrame, step_minutes: int) -> pd.DataFrame:
    """Rows on the `step_minutes` grid (e.g. every full hour of 10-minute data)."""
    return frame[frame.index.as_unit("s").asi8 % (step_minutes * 60) == 0]


def build_features(
    frame: pd.DataFrame, station: StationSchema, params: ForecastParams
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Model inputs on the sampled grid, which of them are taken relative to the last value,
    and where the target is missing as a target.

    Physical channels are relative (a window is read as changes from its last values);
    the sin/cos clock features are absolute, since the time of day itself matters.
    Inputs are interpolated over gaps up to `max_input_gap_minutes` (a few hours missing
    days back hardly matter to a 24-hour forecast); a target counts only where it was
    observed or filled within `max_gap_minutes`, so no model is trained or scored on
    invented values.
    """
    columns = frame[[c.column for c in station.required]]  # optional ones have holes
    regular = regular_grid(columns, station.cadence_minutes, params.input_gap_minutes)
    features = sample(regular, params.step_minutes).astype(np.float64)
    target = station.target_channel.column
    strict = regular_grid(columns[[target]], station.cadence_minutes, params.max_gap_minutes)
    target_missing = sample(strict, params.step_minutes)[target].isna().to_numpy()
    wind = {station.wind_speed, station.wind_direction}
    if params.wind_vector and None not in wind and \
            wind <= {c.source for c in station.required}:
        speed = features.pop(station.channel(station.wind_speed).column)
        direction = np.deg2rad(features.pop(station.channel(station.wind_direction).column))
        features["wind_u"] = speed * np.sin(direction)
        features["wind_v"] = speed * np.cos(direction)
    relative = np.ones(features.shape[1], bool)
    if params.time_features:
        seconds = features.index.as_unit("s").asi8.astype(np.float64)
        day, year = 2 * np.pi * seconds / DAY_SECONDS, 2 * np.pi * seconds / YEAR_SECONDS
        for name, values in zip(TIME_FEATURES, (np.sin(day), np.cos(day),
                                                np.sin(year), np.cos(year))):
            features[name] = values
        relative = np.concatenate([relative, np.zeros(len(TIME_FEATURES), bool)])
    return features.astype(np.float32), relative, target_missing


def station_windows(frame: pd.DataFrame, station: StationSchema,
                    params: ForecastParams) -> tuple[Windows, np.ndarray]:
    """Features and every complete window of a frame of observations."""
    for name, minutes in (("lookback_hours", params.lookback_hours * 60),
                          ("horizon_hours", params.horizon_hours * 60)):
        if minutes % params.step_minutes or params.step_minutes % station.cadence_minutes:
            raise ValueError(f"{name} and the station cadence must be whole multiples of "
                             f"step_minutes={params.step_minutes}")
    features, relative, target_missing = build_features(frame, station, params)
    windows = make_windows(
        features,
        station.target_channel.column,
        params.lookback_steps,
        params.horizon_steps,
        target_missing,
    )
    return windows, relative
