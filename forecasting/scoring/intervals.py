"""Prediction intervals by locally adaptive split conformal prediction.

Per horizon, the quantiles of the errors (actual − forecast) a model made on data it did not
train on, each divided by how changeable the weather was when that forecast was made (the
mean |x_t − x_{t − 1 day}| over the day before: seasonal persistence's recent error). An
interval is the forecast plus those quantiles times today's changeability, so it is wide on
stormy days and in summer's large daily swings, narrow on calm ones. No distribution is
assumed; the finite-sample correction keeps it from covering less than its level on
exchangeable data. The interval of a later hour is never narrower than an earlier one's.

Weather is not exchangeable: after a season change the offsets are last season's for weeks.
So each issue also tracks the coverage the station's issued intervals have had
(`tracked_factors`): per level, horizon group and side, the offset is multiplied by
1 + TRACKING_STEP × (the misses on that side − those the level allows), counted over every
verified interval issued before, per issue (a group's 6 hours count as one issue). This is
quantile tracking (Angelopoulos, Candès & Tibshirani, "Conformal PID control", 2023), the
additive form of adaptive conformal inference (Gibbs & Candès, 2021): since the factor is
bounded, the misses on each side over T issues differ from the level's share by at most
about MAX_FACTOR / (TRACKING_STEP × T): a long-run guarantee whatever the weather does, as
long as no miss lies beyond MAX_FACTOR times an offset. A group whose side misses one more
issue than allowed widens by TRACKING_STEP times its offset on that side at the next issue;
a biased forecast moves one side out and the other in.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

LEVELS = (50, 80, 95)  # central intervals, percent, that the forecasts' columns hold
FLOOR = 0.2  # of the median changeability, added to every scale: calm days keep a width
TRACKING_STEP = 0.2  # an issue missing a whole group on one side widens that offset ~20 %;
# an issue inside narrows it by 0.2 x the level's share (80 %: 2 %, 95 %: 0.5 %), so one
# bad issue is undone by as many good ones as the level allows per miss (9 at 80 %, 39 at 95 %)
MAX_FACTOR = 5.0  # the tracked factors stay in [0, MAX_FACTOR]

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


def bounds(values: np.ndarray, calibration: Calibration, level: int, scale: float,
           factors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) around the forecast `values`, made when the changeability was
    `scale` (NaN: unknown, the calibration's median is used), the (lower, upper) offsets
    multiplied by `factors` (hours ahead, 2) when given (`tracked_factors`)."""
    offsets = np.asarray(calibration[str(level)])
    if factors is not None:
        offsets = offsets * factors
    unit = (scale if np.isfinite(scale) else calibration["scale"]["median"]) + \
        calibration["scale"]["floor"]
    return values + offsets[:, 0] * unit, values + offsets[:, 1] * unit


@dataclass(frozen=True)
class Misses:
    """How the intervals a station issued before did, by level and hour ahead: how many
    were verified (observed by the issue time, out of sample) and how many of those
    observations fell below the lower and above the upper bound."""

    verified: dict[int, np.ndarray]  # level -> (hours ahead,)
    below: dict[int, np.ndarray]
    above: dict[int, np.ndarray]

    @classmethod
    def none(cls, horizon: int) -> Misses:
        zero = {level: np.zeros(horizon) for level in LEVELS}
        return cls(zero, zero, zero)


def tracked_factors(misses: Misses, level: int, group_hours: int) -> np.ndarray:
    """(hours ahead, 2): the factors on the `level` % interval's (lower, upper) offsets for
    the next issue: per horizon group and side, 1 + TRACKING_STEP × (misses − the level's
    share of the verified) / the group's hours, within [0, MAX_FACTOR] (see the module)."""
    verified = np.asarray(misses.verified[level], np.float64)
    tail = (100 - level) / 200
    factors = np.ones((len(verified), 2))
    for start in range(0, len(verified), group_hours):
        group = slice(start, min(start + group_hours, len(verified)))
        hours = group.stop - group.start
        for side, counts in enumerate((misses.below[level], misses.above[level])):
            excess = (np.sum(counts[group]) - tail * verified[group].sum()) / hours
            factors[group, side] = np.clip(1 + TRACKING_STEP * excess, 0.0, MAX_FACTOR)
    return factors


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
