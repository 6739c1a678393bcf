"""The self-correcting forecast: each issue is best naive + w (champion - best naive) per
hour ahead, with w updated at every issue from the verified forecasts of the recent past.

A backtest over past months cannot know that April will not be like March; an operational
forecaster watches the verified forecasts and leans on the naive forecast, hour ahead by
hour ahead, as soon as the model starts losing (updateable MOS, Kalman-filter bias
correction). Here w is the exponentially weighted least-squares weight of the champion
against best naive, fitted on the verified issues (a target observed by the issue time)
with a half-life of HALF_LIFE_DAYS, pooled over each horizon group (6 hours: one issue
gives 6 pairs), and starting from the gate's weights, which count as PRIOR_DAYS of
verified issues: with none verified yet the gate's weights stand, after a few days of
verified issues the evidence leads. w stays in [0, 1]: between best naive's forecast and
the champion's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HALF_LIFE_DAYS = 3.0  # a verified issue this old counts half: the rule reacts within days
PRIOR_DAYS = 1.0  # the gate's weights weigh as much as this many days of verified issues


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
                      prior_days: float = PRIOR_DAYS) -> np.ndarray:
    """The champion's weight against best naive at each hour ahead for the next issue: the
    decayed least-squares fit of (observed - naive) on (model - naive) over the verified
    pairs of its horizon group, shrunk towards `prior` (the gate's weights) by prior
    evidence worth `prior_days` of the verified issues' rate; clipped to [0, 1]."""
    prior = np.asarray(prior, np.float64)
    spread = verified.model - verified.naive
    error = verified.observed - verified.naive
    seen = np.isfinite(error) & np.isfinite(spread)
    if not seen.any():
        return np.clip(prior, 0, 1)
    decay = 0.5 ** (np.asarray(verified.age_days, np.float64) / half_life_days)[:, None]
    decay = np.where(seen, decay, 0.0)
    x, y = np.where(seen, spread, 0.0), np.where(seen, error, 0.0)
    ages = np.sort(np.asarray(verified.age_days, np.float64))
    spacing = float(np.diff(ages).mean()) if len(ages) > 1 else 1.0
    per_day = 1 / max(spacing, 1 / 24)  # issues a day, to size the prior's weight
    weights = np.empty_like(prior)
    for start in range(0, len(prior), group_steps):
        group = slice(start, min(start + group_steps, len(prior)))
        pairs = decay[:, group].sum()
        sxx = (decay[:, group] * x[:, group] ** 2).sum()
        sxy = (decay[:, group] * x[:, group] * y[:, group]).sum()
        if pairs <= 0 or sxx <= 0:
            weights[group] = prior[group]
            continue
        # the prior's pseudo-pairs: as many as `prior_days` of issues give, at the spread
        # the verified ones had
        strength = prior_days * per_day * (group.stop - start) * sxx / pairs
        weights[group] = (strength * prior[group] + sxy) / (strength + sxx)
    return np.clip(weights, 0.0, 1.0)
