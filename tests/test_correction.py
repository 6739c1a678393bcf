"""The self-correcting forecast's weight: the gate's weights until issues are verified,
then what the verified errors support, within days, per horizon group, within [0, 1]."""

from __future__ import annotations

import numpy as np

from forecasting.scoring.correction import Verified, corrected_weights


def history(days: int, model_error: float, rng, horizon: int = 24, per_day: int = 1
            ) -> Verified:
    """Daily verified issues: best naive off by 2 on average, the model `model_error` off."""
    n = days * per_day
    truth = rng.normal(10, 3, (n, horizon))
    naive = truth + rng.normal(0, 2, (n, horizon))
    model = truth + rng.normal(0, model_error, (n, horizon))
    return Verified(np.arange(n)[::-1] / per_day + 1.0, model, naive, truth)


def test_with_nothing_verified_the_gates_weights_stand():
    prior = np.r_[np.full(6, 0.9), np.full(6, 0.7), np.zeros(12)]
    assert np.array_equal(corrected_weights(prior, Verified.none(24), 6), prior)


def test_a_model_that_starts_losing_is_leaned_off_within_days():
    """A model twice as wrong as best naive (least squares would give it 0.2): four days
    of verified issues take its weight from the gate's 1 to near a half, two weeks to
    below 0.45."""
    rng = np.random.default_rng(1)
    assert np.all(corrected_weights(np.ones(24), history(4, 4.0, rng), 6) < 0.6)
    assert np.all(corrected_weights(np.ones(24), history(14, 4.0, rng), 6) < 0.45)
    winning = history(3, 0.5, rng)
    assert np.all(corrected_weights(np.ones(24), winning, 6) > 0.85)


def test_the_weight_follows_the_errors_of_each_group_and_stays_within_zero_and_one():
    rng = np.random.default_rng(2)
    verified = history(20, 1.0, rng)
    verified.model[:, 12:] = verified.naive[:, 12:] + 3 * (verified.naive[:, 12:]
                                                           - verified.observed[:, 12:])
    weights = corrected_weights(np.full(24, 0.5), verified, 6)
    assert np.all(weights[:12] > 0.6)  # the model is better: towards its own forecast
    assert np.all(weights[12:] == 0)  # pointing away from the truth: best naive's, not less
    assert np.all(weights <= 1)


def test_old_verified_issues_count_less_than_new_ones():
    """A month of losing, then a week of winning: that week lifts the weight well above
    where the month left it."""
    rng = np.random.default_rng(3)
    old, new = history(30, 4.0, rng), history(7, 0.5, rng)
    before = corrected_weights(np.zeros(24), Verified(old.age_days, old.model, old.naive,
                                                      old.observed), 6)
    verified = Verified(np.r_[old.age_days + 7, new.age_days], np.r_[old.model, new.model],
                        np.r_[old.naive, new.naive], np.r_[old.observed, new.observed])
    after = corrected_weights(np.zeros(24), verified, 6)
    assert np.all(before < 0.2) and np.all(after > before + 0.2)


def test_targets_not_yet_observed_are_left_out():
    rng = np.random.default_rng(4)
    verified = history(5, 4.0, rng)
    unknown = Verified(verified.age_days, verified.model, verified.naive,
                       np.full_like(verified.observed, np.nan))
    assert np.array_equal(corrected_weights(np.ones(24), unknown, 6), np.ones(24))
