"""The self-correcting forecast's weight: the gate's weights until issues are verified,
then down at once where the verified errors say the champion loses, up beyond the gate only
on clear evidence, never above the gate at +24 h, within [0, 1]."""

from __future__ import annotations

import numpy as np

from forecasting.scoring.correction import Verified, corrected_weights


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
    """A model twice as wrong as best naive (least squares would give it 0.2): three days
    of verified issues take its weight from the gate's 1 to below a half."""
    rng = np.random.default_rng(1)
    assert np.all(corrected_weights(np.ones(24), history(3, 4.0, rng), 6) < 0.5)
    assert np.all(corrected_weights(np.ones(24), history(3, 0.5, rng), 6) > 0.9)


def test_the_gates_weight_is_exceeded_only_on_clear_evidence_and_never_at_24_hours():
    rng = np.random.default_rng(2)
    prior = np.zeros(24)  # the gate left every group to best naive
    one_day = corrected_weights(prior, history(1, 1.9, rng), 6)
    assert np.all(one_day == 0)  # one day of a slight edge: no reason to trust it
    exact = history(1, 1.0, rng)  # one issue the fit matches exactly: still no reason
    exact = Verified(exact.age_days, exact.naive + 2 * (exact.observed - exact.naive),
                     exact.naive, exact.observed)
    assert np.all(corrected_weights(prior, exact, 6) == 0)
    weeks = corrected_weights(prior, history(14, 0.5, rng), 6)
    assert np.all(weeks[:-1] > 0.5) and weeks[-1] == 0  # +24 h: never above the gate


def test_old_verified_issues_count_less_than_new_ones():
    """A month of losing, then a week of winning: the week lifts the weight well above
    where the month left it."""
    rng = np.random.default_rng(3)
    old, new = history(30, 4.0, rng), history(7, 0.5, rng)
    before = corrected_weights(np.ones(24), Verified(old.age_days, old.model, old.naive,
                                                     old.observed), 6)
    verified = Verified(np.r_[old.age_days + 7, new.age_days], np.r_[old.model, new.model],
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
