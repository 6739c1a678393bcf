"""Prediction intervals by locally adaptive split conformal prediction.

Per horizon, the quantiles of the errors (actual − forecast) a model made on data it did not
train on, each divided by how changeable the weather was when that forecast was made (the
mean |x_t − x_{t − 1 day}| over the day before: seasonal persistence's recent error). An
interval is the forecast plus those quantiles times today's changeability, so it is wide on
stormy days and in summer's large daily swings, narrow on calm ones. No distribution is
assumed; the finite-sample correction keeps it from covering less than its level on
exchangeable data. The interval of a later hour is never narrower than an earlier one's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

LEVELS = (50, 80, 95)  # central intervals, percent, that the forecasts' columns hold
FLOOR = 0.2  # of the median changeability, added to every scale: calm days keep a width

# JSON: {"50": per horizon [low, high] offsets (in units of the scale), ..., "scale":
# {"floor": float, "median": float}}
Calibration = dict


def changeability(target: np.ndarray, origins: np.ndarray, day: int) -> np.ndarray:
    """For each origin (an index into `target`, one sample per step), the mean |x_t −
    x_{t − day}| over the `day` samples up to it; NaN where none is known."""
    index = np.asarray(origins)[:, None] + np.arange(-day + 1, 1)
    known = index - day >= 0
    now, before = target[np.maximum(index, 0)], target[np.maximum(index - day, 0)]
    change = np.where(known, np.abs(now.astype(np.float64) - before), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        return np.nanmean(change, axis=1)


def calibrate(residuals: np.ndarray, scales: np.ndarray) -> Calibration:
    """Interval offsets for every level from `residuals` (n, horizon): actual − forecast on
    windows the model did not train on (NaN where the actual is unknown), made when the
    changeability was `scales` (n,)."""
    residuals = np.asarray(residuals, np.float64)
    scales = np.asarray(scales, np.float64)
    median = float(np.nanmedian(scales)) if np.isfinite(scales).any() else 1.0
    floor = FLOOR * median
    units = np.where(np.isfinite(scales), scales, median) + floor
    normalised = residuals / units[:, None]
    result: Calibration = {"scale": {"floor": floor, "median": median}}
    for level in LEVELS:
        lows, highs = [], []
        for column in normalised.T:
            known = np.sort(column[~np.isnan(column)])
            n = len(known)
            if n == 0:
                raise ValueError("no residuals to calibrate an interval on")
            # The k-th smallest with k = ceil((n + 1)(1 - tail)) and floor((n + 1) tail),
            # tail = (1 - level) / 2: conformal's correction (in integers, exactly).
            highs.append(known[min(n, -(-(n + 1) * (100 + level) // 200)) - 1])
            lows.append(known[max(1, (n + 1) * (100 - level) // 200) - 1])
        # A later hour is never more certain than an earlier one of the same forecast: the
        # per-horizon quantiles of a few weeks' errors dip by chance (the +23 h one below
        # the +17 h one), and an interval cut by such a dip covers too little a month out.
        result[str(level)] = np.column_stack([np.minimum.accumulate(lows),
                                              np.maximum.accumulate(highs)]).tolist()
    return result


def bounds(values: np.ndarray, calibration: Calibration, level: int,
           scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) around the forecast `values`, made when the changeability was
    `scale` (NaN: unknown, the calibration's median is used)."""
    offsets = np.asarray(calibration[str(level)])
    unit = (scale if np.isfinite(scale) else calibration["scale"]["median"]) + \
        calibration["scale"]["floor"]
    return values + offsets[:, 0] * unit, values + offsets[:, 1] * unit


def verified_calibration(residuals: pd.DataFrame, hourly: pd.Series, min_verified: int
                         ) -> Calibration | None:
    """Interval offsets from a model's verified forecasts (`residuals`: a row per issue time,
    a column per hour ahead; `hourly`: the target observed on the hourly grid around them),
    once every hour ahead has `min_verified` of them; None before."""
    if not len(residuals) or residuals.count().min() < min_verified:
        return None
    origins = hourly.index.get_indexer(residuals.index)
    scales = np.where(origins >= 0, changeability(hourly.to_numpy(), np.maximum(origins, 0),
                                                  24), np.nan)
    return calibrate(residuals.to_numpy(), scales)
