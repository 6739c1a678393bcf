"""The self-correcting forecast's weight: the gate's weights until issues are verified, then
the combination with the smallest recent MAE, down at once where the champion loses, never
above the gate's weights, within [0, 1]."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.scoring.correction import (MIN_ISSUES, Verified, corrected_weights,
                                         issued_in_turn)


def history(days: int, model_error: float, rng, horizon: int = 24) -> Verified:
    """Daily verified issues: best naive off by 2 on average, the model `model_error` off."""
    truth = rng.normal(10, 3, (days, horizon))
    naive = truth + rng.normal(0, 2, (days, horizon))
    model = truth + rng.normal(0, model_error, (days, horizon))
    return Verified(np.arange(days)[::-1] + 1.0, model, naive, truth)


def test_with_nothing_verified_the_gates_weights_stand():
    prior = np.r_[np.full(6, 0.9), np.full(6, 0.7), np.zeros(12)]
    assert np.array_equal(corrected_weights(prior, Verified.none(24), 6), prior)


def test_a_model_that_starts_losing_is_leaned_off_within_days():
    """A model twice as wrong as best naive: three days of verified issues take its weight
    from the gate's 1 to below a half; one four times as good keeps it near 1."""
    rng = np.random.default_rng(1)
    assert np.all(corrected_weights(np.ones(24), history(3, 4.0, rng), 6) < 0.5)
    assert np.all(corrected_weights(np.ones(24), history(3, 0.5, rng), 6) >= 0.9)


def test_the_gates_weight_is_a_ceiling_however_well_the_champion_does():
    rng = np.random.default_rng(2)
    weeks = history(14, 0.5, rng)  # two weeks of a champion four times as good
    assert np.all(corrected_weights(np.zeros(24), weeks, 6) == 0)  # the gate left it out
    prior = np.r_[np.full(12, 0.4), np.full(12, 0.8)]
    assert np.array_equal(corrected_weights(prior, weeks, 6), prior)


def test_the_weight_minimises_absolute_not_squared_error():
    """A champion that halves one large miss and is a little worse every other day:
    least squares would trust it (the miss dominates squares), its MAE says lean on naive."""
    days, horizon = 14, 24
    truth = np.zeros((days, horizon))
    naive = np.full((days, horizon), 0.5)  # a little off every day ...
    naive[7] = 12.0  # ... and far off one day
    model = np.full((days, horizon), 1.5)  # more off every day, but half as far that one
    model[7] = 6.0
    verified = Verified(np.arange(days)[::-1] + 1.0, model, naive, truth)
    spread, miss = model - naive, truth - naive
    assert (spread * miss).sum() / (spread ** 2).sum() > 0.8  # least squares: trust it
    mae = [np.abs(naive + w * spread - truth).mean() for w in (0.0, 1.0)]
    assert mae[0] < mae[1]  # yet best naive alone has the smaller MAE here ...
    assert np.all(corrected_weights(np.ones(24), verified, 6) < 0.5)  # ... and leads


def test_old_verified_issues_count_less_than_new_ones():
    """A month of losing, then two weeks of winning: they lift the weight well above where
    the month left it."""
    rng = np.random.default_rng(3)
    old, new = history(30, 4.0, rng), history(14, 0.5, rng)
    before = corrected_weights(np.ones(24), Verified(old.age_days, old.model, old.naive,
                                                     old.observed), 6)
    verified = Verified(np.r_[old.age_days + 14, new.age_days], np.r_[old.model, new.model],
                        np.r_[old.naive, new.naive], np.r_[old.observed, new.observed])
    after = corrected_weights(np.ones(24), verified, 6)
    assert np.all(before < 0.3) and np.all(after[:-1] > before[:-1] + 0.3)


def test_the_weight_stays_within_zero_and_one_and_unobserved_targets_are_left_out():
    rng = np.random.default_rng(4)
    verified = history(20, 1.0, rng)
    away = Verified(verified.age_days, verified.naive + 3 * (verified.naive
                                                             - verified.observed),
                    verified.naive, verified.observed)  # pointing away from the truth
    assert np.all(corrected_weights(np.ones(24), away, 6) == 0)
    unknown = Verified(verified.age_days, verified.model, verified.naive,
                       np.full_like(verified.observed, np.nan))
    assert np.array_equal(corrected_weights(np.ones(24), unknown, 6), np.ones(24))


def test_the_last_hour_ahead_leans_on_best_naive_where_it_alone_loses():
    """A champion that wins clearly at 19-23 h but is twice as wrong as best naive at
    +24 h: the group keeps its weight, the last hour drops below a half."""
    rng = np.random.default_rng(5)
    wins, loses = history(10, 0.5, rng), history(10, 4.0, rng)
    model = np.c_[wins.model[:, :-1], loses.model[:, -1:]]
    observed = np.c_[wins.observed[:, :-1], loses.observed[:, -1:]]
    naive = np.c_[wins.naive[:, :-1], loses.naive[:, -1:]]
    weights = corrected_weights(np.ones(24), Verified(wins.age_days, model, naive, observed), 6)
    assert np.all(weights[18:23] >= 0.9) and weights[23] < 0.5


def test_issues_in_turn_are_corrected_only_by_issues_verified_before_them():
    """Daily issues of a day-long horizon: an issue's targets are all observed by the next
    one. The model is perfect until day 5, then far off; the issues keep its values until
    MIN_ISSUES losing issues are verified, then lean on best naive. Changing what is
    observed after an issue's time never changes that issue."""
    days, horizon = 12, 24
    times = pd.date_range("2024-04-01 03:00", periods=days, freq="D")
    truth = np.tile(np.sin(np.arange(horizon) / 4.0), (days, 1)) * 5
    naive = truth + 1.0
    model = truth.copy()
    model[5:] += 6.0
    issued = issued_in_turn(model, naive, truth, times, 60, np.ones(horizon), 6)
    assert np.array_equal(issued[:6], model[:6])  # day 5 knows only days 0-4: all won
    first_leaned = 5 + MIN_ISSUES  # wins (decayed) against MIN_ISSUES fresh losses
    assert np.all(np.abs(issued[first_leaned + 1:] - naive[first_leaned + 1:]) < 1e-9)
    later = truth.copy()
    later[8:] += 100.0  # observations after day 8's issue time
    again = issued_in_turn(model, naive, later, times, 60, np.ones(horizon), 6)
    assert np.array_equal(again[:9], issued[:9])
