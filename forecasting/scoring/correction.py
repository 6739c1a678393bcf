"""The self-correcting forecast: each issue is best naive + w (champion - best naive) per
hour ahead, with w updated at every issue from the verified forecasts of the recent past.

A backtest over past months cannot know that April will not be like March; an operational
forecaster watches the verified forecasts and leans on the naive forecast, hour ahead by
hour ahead, as soon as the model starts losing (updateable MOS, Kalman-filter bias
correction). Here w starts from the gate's weights and moves by the exponentially weighted
least-squares weight of the champion against best naive on the verified issues (targets
observed by the issue time), with a half-life of HALF_LIFE_DAYS, pooled over each horizon
group (6 hours: one issue gives 6 pairs), once MIN_ISSUES are verified. It moves only as
far as the fit is beyond the gate's weight at a one-sided confidence (a Student t on the
fit's standard error clustered by issue, the verified issues less one as degrees of
freedom): down readily (LOWER_CONFIDENCE: the champion is losing there, lean on best
naive), up beyond the gate's weight only on clear evidence (RAISE_CONFIDENCE: the gate did
not trust the champion there, and a few lucky days are no reason to). At the last hour ahead it never
rises above the gate's weight: the promise there is to be no worse than best naive. With
nothing verified yet the gate's weights stand; w stays in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HALF_LIFE_DAYS = 3.0  # a verified issue this old counts half: the rule reacts within days
RAISE_CONFIDENCE = 0.95  # how sure the fit must be to trust the champion more than the gate
LOWER_CONFIDENCE = 0.75  # ... and to trust it less: leaning on best naive costs less
MIN_ISSUES = 3  # verified issues a group needs before its weight moves at all


@dataclass(frozen=True)
class Verified:
    """The issues verified by an issue time: how many days before it each was issued, and
    per hour ahead the champion's uncorrected forecast, best naive's and the observation
    (NaN where the target was not observed by the issue time)."""

    age_days: np.ndarray  # (issues,)
    model: np.ndarray  # (issues, hours ahead)
    naive: np.ndarray
    observed: np.ndarray

    @classmethod
    def none(cls, horizon: int) -> Verified:
        empty = np.zeros((0, horizon))
        return cls(np.zeros(0), empty, empty, empty)


def corrected_weights(prior: np.ndarray, verified: Verified, group_steps: int,
                      half_life_days: float = HALF_LIFE_DAYS,
                      raise_confidence: float = RAISE_CONFIDENCE) -> np.ndarray:
    """The champion's weight against best naive at each hour ahead for the next issue: the
    gate's weights `prior`, moved per horizon group by the decayed least-squares fit of
    (observed - naive) on (model - naive) over the verified pairs, as far as the fit is
    beyond it at LOWER_CONFIDENCE (down) or `raise_confidence` (up); the last hour never
    above its prior; within [0, 1]."""
    from scipy.stats import t as student_t  # here: every process that opens the store
    # imports this module, and scipy.stats costs it half a second

    prior = np.asarray(prior, np.float64)
    spread = verified.model - verified.naive
    error = verified.observed - verified.naive
    seen = np.isfinite(error) & np.isfinite(spread)
    if not seen.any():
        return np.clip(prior, 0, 1)
    decay = 0.5 ** (np.asarray(verified.age_days, np.float64) / half_life_days)[:, None]
    decay = np.where(seen, decay, 0.0)
    x, y = np.where(seen, spread, 0.0), np.where(seen, error, 0.0)
    weights = prior.copy()
    for start in range(0, len(prior), group_steps):
        group = slice(start, min(start + group_steps, len(prior)))
        sxx = (decay[:, group] * x[:, group] ** 2).sum()
        if sxx <= 0:
            continue
        fitted = (decay[:, group] * x[:, group] * y[:, group]).sum() / sxx
        per_issue = (decay[:, group] * x[:, group]
                     * (y[:, group] - fitted * x[:, group])).sum(axis=1)
        error_of_fit = np.sqrt((per_issue ** 2).sum()) / sxx
        issues = int((decay[:, group] > 0).any(axis=1).sum())
        if issues < MIN_ISSUES:
            continue
        move = fitted - prior[group]
        up = student_t.ppf(raise_confidence, issues - 1) * error_of_fit
        down = student_t.ppf(LOWER_CONFIDENCE, issues - 1) * error_of_fit
        weights[group] = prior[group] + np.maximum(move - up, 0) - np.maximum(-move - down, 0)
    weights[-1] = min(weights[-1], prior[-1])
    return np.clip(weights, 0.0, 1.0)
