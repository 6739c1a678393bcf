"""Prediction intervals by split conformal prediction.

Per horizon, the quantiles of the errors (actual − forecast) a model made on data it did not
train on; an interval is the forecast plus those quantiles. No distribution is assumed; the
finite-sample correction keeps it from covering less than its level on exchangeable data.
The interval of a later hour is never narrower than an earlier one's.

The offsets used to be scaled by how changeable the weather had been (the mean |x_t −
x_{t − 1 day}| over the day before: locally adaptive conformal). On best naive's errors at
the 03 UTC issue, with 28 days of them per interval, that scaling made the interval
(Winkler) score 12 % (80 %) and 22 % (95 %) worse at DWD München, 0-2 % worse at Tetouan and
8-19 % worse on the simulator, at the same coverage: yesterday's changeability says little
about tomorrow's error. So the offsets are plain; a calibration saved with a scale is read at
its median changeability.

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

from dataclasses import dataclass

import numpy as np
import pandas as pd

LEVELS = (50, 80, 95)  # central intervals, percent, that the forecasts' columns hold
TRACKING_STEP = 0.2  # an issue missing a whole group on one side widens that offset ~20 %;
# an issue inside narrows it by 0.2 x the level's share (80 %: 2 %, 95 %: 0.5 %), so one
# bad issue is undone by as many good ones as the level allows per miss (9 at 80 %, 39 at 95 %)
MAX_FACTOR = 5.0  # the tracked factors stay in [0, MAX_FACTOR]

# JSON: {"50": per horizon [low, high] offsets in target units, "80": ..., "95": ...}; one
# saved before the offsets were plain also holds "scale": {"floor": .., "median": ..}, its
# offsets in units of (changeability + floor); one of a product that issues at several
# hours of the day also holds "by_hour": {"<issue hour>": a calibration of its own}
Calibration = dict


def calibrate(residuals: np.ndarray) -> Calibration:
    """Interval offsets for every level from `residuals` (n, horizon): actual − forecast on
    windows the model did not train on (NaN where the actual is unknown)."""
    residuals = np.asarray(residuals, np.float64)
    result: Calibration = {}
    for level in LEVELS:
        lows, highs = [], []
        for column in residuals.T:
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


def calibrate_by_hour(residuals: np.ndarray, hours: np.ndarray,
                      around: dict[int, frozenset[int]]) -> Calibration:
    """`calibrate(residuals)`, and for each issue hour in `around` (each issue hour and
    the origin hours pooled with it: `ForecastParams.issue_neighbourhoods`), one from the
    residuals of forecasts made from around it (`hours`: each row's origin hour): the
    errors of a forecast made at 06 UTC are not those of one made at 21 UTC (at DWD München
    the 1-6 h interval of offsets shared by every hour held 56 % from 06 UTC, 90 % from 21
    UTC, for 80 %). An issue hour with no residuals around it keeps the shared one."""
    result = calibrate(residuals)
    if around:
        hours = np.asarray(hours)
        rows = {hour: np.isin(hours, sorted(near)) for hour, near in around.items()}
        result["by_hour"] = {str(hour): calibrate(residuals[there])
                             for hour, there in rows.items() if there.any()}
    return result


def at_hour(calibration: Calibration, hour: int) -> Calibration:
    """The offsets for a forecast made from `hour` (UTC): the calibration of the nearest
    issue hour where there are several, else the shared one."""
    by_hour = calibration.get("by_hour")
    shared = {k: v for k, v in calibration.items() if k != "by_hour"}
    if not by_hour:
        return shared
    nearest = min(by_hour, key=lambda h: min((int(h) - hour) % 24, (hour - int(h)) % 24))
    return by_hour[nearest]


def bounds(values: np.ndarray, calibration: Calibration, level: int,
           factors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) around the forecast `values`, the (lower, upper) offsets multiplied by
    `factors` (hours ahead, 2) when given (`tracked_factors`)."""
    offsets = np.asarray(calibration[str(level)])
    if factors is not None:
        offsets = offsets * factors
    if "scale" in calibration:  # saved in units of changeability: at its median
        offsets = offsets * (calibration["scale"]["median"] + calibration["scale"]["floor"])
    return values + offsets[:, 0], values + offsets[:, 1]


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


def verified_calibration(residuals: pd.DataFrame, min_verified: int) -> Calibration | None:
    """Interval offsets from a model's verified forecasts (`residuals`: a row per issue time,
    a column per hour ahead), once every hour ahead has `min_verified` of them; None
    before."""
    if not len(residuals) or residuals.count().min() < min_verified:
        return None
    return calibrate(residuals.to_numpy())
