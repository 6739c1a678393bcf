"""The self-correcting forecast: each issue is best naive + w (champion - best naive) per
hour ahead, with w updated at every issue from the verified forecasts of the recent past.

A backtest over past months cannot know that April will not be like March; an operational
forecaster watches the verified forecasts and leans on the naive forecast, hour ahead by
hour ahead, as soon as the model starts losing (updateable MOS, Kalman-filter bias
correction). Here, per horizon group (6 hours: one issue gives 6 verified pairs), w is the
combination weight on a grid of WEIGHTS (0, 0.05, .., 1: the experts) whose forecasts had
the smallest exponentially weighted mean absolute error over the issues verified by the
issue time (targets observed by then), with a half-life of HALF_LIFE_DAYS: discounted
follow-the-leader over the experts, once MIN_ISSUES issues are verified. The loss is the
absolute error because the promise and every score are MAE: a least-squares weight trusts a
champion that saves a few large misses while it loses a little on most days, which MAE
counts. The gate's weight is the ceiling: below it w follows the verified errors at once
(leaning on best naive is the safe side of the promise), above it nothing a few days show
is reason enough to trust the champion more than the backtest did. The +24 h forecast, which
the promise judges alone, follows its own verified pairs too, below its group's weight.
With nothing verified yet, the gate's weights stand; w stays in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

HALF_LIFE_DAYS = 7.0  # a verified issue this old counts half: with one issue a day, about
# ten issues carry the weight, few enough to react within days, enough not to chase one day
WEIGHTS = np.linspace(0.0, 1.0, 21)  # the experts: best naive, 5 % steps, the champion
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


def corrected_weights(prior: np.ndarray, verified: Verified, group_steps: int) -> np.ndarray:
    """The champion's weight against best naive at each hour ahead for the next issue: per
    horizon group, the weight of WEIGHTS with the smallest decayed MAE over the verified
    pairs, capped by the gate's weights `prior`; `prior` where fewer than MIN_ISSUES issues
    are verified there. The last hour ahead is then chosen again on its own pairs, never
    above its group's weight: the promise judges +24 h alone, and a group that wins on the
    whole can lose at its far end."""
    prior = np.clip(np.asarray(prior, np.float64), 0.0, 1.0)
    spread = verified.model - verified.naive
    miss = verified.observed - verified.naive
    seen = np.isfinite(miss) & np.isfinite(spread)
    if not seen.any():
        return prior
    decay = 0.5 ** (np.asarray(verified.age_days, np.float64) / HALF_LIFE_DAYS)[:, None]
    decay = np.where(seen, decay, 0.0)
    x, y = np.where(seen, spread, 0.0), np.where(seen, miss, 0.0)
    weights = prior.copy()
    steps = len(prior)
    spans = [slice(start, min(start + group_steps, steps))
             for start in range(0, steps, group_steps)] + [slice(steps - 1, steps)]
    for span in spans:
        if int(seen[:, span].any(axis=1).sum()) < MIN_ISSUES:
            continue
        # (experts,): the decayed absolute error of naive + w (champion - naive), each w
        loss = (decay[None, :, span] * np.abs(
            y[None, :, span] - WEIGHTS[:, None, None] * x[None, :, span])).sum(axis=(1, 2))
        weights[span] = np.minimum(weights[span], WEIGHTS[int(np.argmin(loss))])
    return weights


def issued_in_turn(model: np.ndarray, naive: np.ndarray, observed: np.ndarray,
                   times: pd.DatetimeIndex, step_minutes: float, prior: np.ndarray,
                   group_steps: int) -> np.ndarray:
    """Issues made one after another as the product makes them, each self-corrected by the
    earlier ones verified by its time: `model`, `naive` and `observed` are (issues, steps
    ahead) at issue `times`, a step `step_minutes` long; returns the issued values."""
    ahead = pd.to_timedelta(step_minutes * np.arange(1, model.shape[1] + 1), unit="min")
    issued = np.empty(model.shape, dtype=np.float64)
    for i, at in enumerate(times):
        known = (times[:i].values[:, None] + ahead.values[None, :]) <= at.to_datetime64()
        verified = Verified((at - times[:i]) / pd.Timedelta(days=1), model[:i], naive[:i],
                            np.where(known, observed[:i], np.nan))
        weight = corrected_weights(prior, verified, group_steps)
        issued[i] = naive[i] + weight * (model[i] - naive[i])
    return issued
