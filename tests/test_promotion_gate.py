"""The promotion gate: beat the best naive forecast on the mean, at +24 h and in every 6-hour
horizon group, and beat the champion; every failed comparison is named."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.scoring.backtest import Scores
from forecasting.scoring.gate import (ENSEMBLE_MARGIN, choose_champion, combination_weights,
                                   decide_promotion, paired_test,
                                   plan_composition)

NAIVE = Scores((1.0,) * 6 + (2.0,) * 6 + (2.0,) * 6 + (2.0,) * 6, 100)


def groups(a: float, b: float, c: float, d: float, windows: int = 100) -> Scores:
    """Scores with the given MAE in each 6-hour group."""
    return Scores((a,) * 6 + (b,) * 6 + (c,) * 6 + (d,) * 6, windows)


def test_a_candidate_that_loses_to_seasonal_persistence_in_one_group_is_rejected():
    # far better than naive on the mean (1.55 < 1.75) and at +24 h, but not at 7-12 h
    candidate = groups(0.5, 2.1, 1.8, 1.8)
    decision = decide_promotion(candidate, NAIVE, None)
    assert not decision.promote
    assert decision.reason == "7-12 h MAE 2.100 >= best naive 2.000"


@pytest.mark.parametrize(
    ("candidate", "champion", "promote", "phrase"),
    [
        (groups(0.9, 1.8, 1.8, 1.8), None, True, "no champion yet"),
        (groups(0.9, 1.9, 1.9, 1.9), groups(0.9, 1.8, 1.8, 1.8), False,
         "mean MAE 1.650 >= champion 1.575"),
        (groups(0.8, 1.7, 1.7, 1.7), groups(0.9, 1.8, 1.8, 1.8), True, "< champion"),
        (groups(1.0, 1.8, 1.8, 1.8), None, False, "1-6 h MAE 1.000 >= best naive 1.000"),
        (Scores((0.5,) * 23 + (2.5,), 100), None, False, "+24 h MAE 2.500 >= best naive 2.000"),
        (groups(1.5, 2.5, 2.5, 2.5), None, False, "mean MAE 2.250 >= best naive 1.750"),
    ],
    ids=["beats-everything", "champion-better", "beats-both", "tie-is-no-win", "last-worse",
         "mean-worse"],
)
def test_gate(candidate, champion, promote, phrase):
    decision = decide_promotion(candidate, NAIVE, champion)
    assert decision.promote is promote
    assert phrase in decision.reason


def test_every_failed_group_is_named():
    decision = decide_promotion(groups(1.2, 2.1, 1.0, 2.2), NAIVE, None)
    assert "1-6 h MAE" in decision.reason and "7-12 h MAE" in decision.reason
    assert "19-24 h MAE" in decision.reason and "13-18 h" not in decision.reason


def test_minimum_improvement_is_required_against_each_rival():
    close = groups(0.95, 1.9, 1.9, 1.9)
    assert decide_promotion(close, NAIVE, None).promote
    assert not decide_promotion(close, NAIVE, None, min_improvement=0.1).promote
    assert decide_promotion(groups(0.8, 1.7, 1.7, 1.7), NAIVE, None, min_improvement=0.1).promote


def test_scores_from_different_windows_are_refused():
    with pytest.raises(ValueError, match="same holdout windows"):
        decide_promotion(groups(1, 1, 1, 1, windows=10), NAIVE, None)


def test_on_a_tie_the_simpler_family_is_promoted():
    """A network whose training never beat its base forecasts as the ridge does, up to
    float32 rounding: within 0.1 % of the best mean MAE counts as a tie."""
    naive = Scores((2.0,) * 24, 100)
    ridge, network = Scores((1.0,) * 24, 100), Scores((0.9999,) * 24, 100)
    winner, why, decisions = choose_champion({"gru": network, "blend": ridge, "ridge": ridge},
                                             naive, None)
    assert winner == "blend" and list(decisions) == ["gru", "blend", "ridge"]
    assert why == "blend is as good (within 0.1%) and simpler"
    better = Scores((0.99,) * 24, 100)  # 1 % better is not a tie
    assert choose_champion({"gru": better, "ridge": ridge}, naive, None)[:2] == (
        "gru", "gru has the lowest mean MAE")
    loser = Scores((0.952,) * 23 + (2.1,), 100)  # tied on the mean, but fails at +24 h
    assert choose_champion({"blend": loser, "gru": network}, naive, None)[0] == "gru"


def test_the_ensemble_is_promoted_when_it_passes_within_the_margin_of_the_best():
    naive = Scores((2.0,) * 24, 100)
    best = Scores((1.0,) * 24, 100)
    near, far = Scores((1.0 + ENSEMBLE_MARGIN * 0.9,) * 24, 100), Scores((1.1,) * 24, 100)
    winner, why, _ = choose_champion({"ridge": best, "gru": best, "ensemble": near}, naive, None)
    assert winner == "ensemble" and f"within {ENSEMBLE_MARGIN:.0%} of the lowest" in why
    assert choose_champion({"ridge": best, "ensemble": far}, naive, None)[0] == "ridge"
    # it must still pass the gate itself: the lowest mean, but it loses at +24 h
    failing = Scores((0.95,) * 23 + (2.1,), 100)
    assert choose_champion({"ridge": best, "ensemble": failing}, naive, None)[0] == "ridge"
    assert choose_champion({"ensemble": best, "ridge": best}, naive, None)[:2] == (
        "ensemble", "ensemble has the lowest mean MAE")


def fold_errors(rng, ratios: list[list[float]], windows: int = 168) -> tuple[list, list]:
    """Residuals (windows, 24) of a candidate and of best naive in each fold, the
    candidate's mean absolute error in each 6-hour group `ratio` times best naive's (per
    fold)."""
    candidate, naive = [], []
    for fold in ratios:
        base = np.abs(rng.normal(2.0, 0.3, (windows, 24))) * rng.choice([-1, 1], (windows, 24))
        scale = np.repeat(fold, 6)
        candidate.append(base * scale * rng.uniform(0.97, 1.03, (windows, 24)))
        naive.append(base)
    return candidate, naive


def test_a_group_won_on_the_pooled_mean_but_lost_in_a_fold_of_three_is_left_to_best_naive():
    rng = np.random.default_rng(1)
    candidate, naive = fold_errors(rng, [[0.6, 0.7, 0.8, 0.85], [0.6, 1.08, 0.8, 0.85],
                                         [0.6, 0.7, 0.8, 0.85]])
    plan = plan_composition(candidate, naive, 6, 24)
    assert plan.evidence[1].fold_ratios[1] > 1  # lost in the middle fold
    pooled = (np.abs(np.concatenate(candidate)[:, 6:12]).mean()
              / np.abs(np.concatenate(naive)[:, 6:12]).mean())
    assert pooled < 0.9  # it won 7-12 h on the pooled mean
    assert plan.naive_groups == {1}
    assert list(plan.weights[6:12]) == [0] * 6 and np.all(plan.weights[:6] > 0.9)
    assert "7-12 h 0." in plan.summary and "/1.08/" in plan.summary
    assert plan.summary.endswith("best naive at 7-12 h")


def test_a_group_whose_win_fails_the_paired_test_is_left_to_best_naive():
    """A small edge that wins every fold on the mean, but the per-window differences swing
    with the weather (a spell better, a spell worse): with their autocorrelation allowed for,
    the paired test does not back it."""
    swing = 0.6 * np.sin(2 * np.pi * np.arange(48) / 48)[:, None]  # one spell per fold
    naive = [np.full((48, 24), 2.0) for _ in range(3)]
    candidate = [n - 0.03 + swing for n in naive]
    difference = np.concatenate([np.abs(c) - np.abs(n) for c, n in zip(candidate, naive)])
    assert all(d.mean() < 0 for d in np.split(difference, 3))
    assert not paired_test(difference[:, 0], 24).significant
    assert 0 in plan_composition(candidate, naive, 6, 24).naive_groups


def test_one_lost_fold_in_six_is_tolerated_but_not_two():
    rng = np.random.default_rng(4)
    good, lost = [0.7, 0.7, 0.8, 0.8], [1.05, 1.05, 1.05, 1.05]
    candidate, naive = fold_errors(rng, [good] * 5 + [lost])
    assert plan_composition(candidate, naive, 6, 24).naive_groups == set()
    candidate, naive = fold_errors(rng, [good] * 4 + [lost] * 2)
    assert plan_composition(candidate, naive, 6, 24).naive_groups == {0, 1, 2, 3}


def test_a_candidate_trusted_in_no_group_is_rejected_with_the_evidence():
    rng = np.random.default_rng(3)
    candidate, naive = fold_errors(rng, [[0.7, 0.7, 0.8, 0.8], [1.1, 1.1, 1.2, 1.2],
                                         [0.7, 0.7, 0.8, 0.8]])
    plan = plan_composition(candidate, naive, 6, 24)
    assert plan.naive_groups == {0, 1, 2, 3}
    assert "folds 0.7" in plan.summary and "/1.1" in plan.summary
    naive_scores = Scores(tuple(np.abs(np.concatenate(naive)).mean(axis=0)), 504)
    decision = decide_promotion(naive_scores, naive_scores, None,
                                naive_groups=plan.naive_groups)
    assert not decision.promote
    assert "no horizon group beat best naive consistently" in decision.reason


def test_a_composed_candidate_passes_with_best_naive_in_the_groups_it_lost():
    naive = groups(1.0, 2.0, 2.0, 2.0)
    composed = groups(0.5, 2.0, 2.0, 2.0)  # best naive's own forecast after 6 h
    assert not decide_promotion(composed, naive, None).promote
    decision = decide_promotion(composed, naive, None, naive_groups=frozenset({1, 2, 3}))
    assert decision.promote
    assert "1 of 4 horizon groups beat best naive" in decision.reason
    assert "+24 h MAE 2.000 = best naive" in decision.reason
    # against a champion: better on the mean; at +24 h both are best naive's, equal is fine
    assert decide_promotion(composed, naive, groups(0.6, 2.0, 2.0, 2.0),
                            naive_groups=frozenset({1, 2, 3})).promote


def test_the_candidate_weight_against_best_naive_is_fitted_where_both_carry_information():
    """Two forecasts with independent errors of equal size: the best combination is their
    average, and it beats both."""
    rng = np.random.default_rng(5)
    naive = [rng.normal(0, 1, (2000, 24)) for _ in range(3)]
    candidate = [rng.normal(0, 1, (2000, 24)) for _ in range(3)]
    weights = combination_weights(candidate, naive, 24)
    assert np.all(np.abs(weights - 0.5) < 0.05)
    plan = plan_composition(candidate, naive, 6, 24)
    assert plan.naive_groups == set() and all(e.ratio < 0.75 for e in plan.evidence)
    assert "weight 0.5" in plan.weighting


def test_a_candidate_weight_without_evidence_is_shrunk_to_best_naive():
    """A candidate that is best naive plus noise: the fitted weight is noise around 0, most
    often with |t| below 1, and then shrunk to exactly best naive."""
    rng = np.random.default_rng(6)
    naive = [rng.normal(0, 1, (300, 24)) for _ in range(3)]
    candidate = [n - rng.normal(0, 1, n.shape) for n in naive]
    weights = combination_weights(candidate, naive, 24)
    assert np.mean(weights == 0) > 0.5 and np.all(weights < 0.15)


def test_each_fold_is_scored_with_weights_fitted_on_the_other_folds():
    rng = np.random.default_rng(7)
    naive = [rng.normal(0, 1, (500, 24)) for _ in range(4)]
    candidate = [rng.normal(0, 1, (500, 24)) for _ in range(4)]
    plan = plan_composition(candidate, naive, 6, 24)
    np.testing.assert_allclose(plan.fold_weights[2], combination_weights(
        [candidate[k] for k in (0, 1, 3)], [naive[k] for k in (0, 1, 3)], 24))


def test_a_candidate_whose_weight_is_not_clearly_below_one_keeps_its_own_forecast():
    """Best naive's errors are the candidate's plus noise of their own: nothing is gained by
    mixing, and the estimate (near 1, either side) is not taken for evidence of it."""
    rng = np.random.default_rng(8)
    candidate = [rng.normal(0, 1, (500, 24)) for _ in range(3)]
    naive = [c + rng.normal(0, 1, c.shape) for c in candidate]
    assert np.all(combination_weights(candidate, naive, 24) == 1)
    plan = plan_composition(candidate, naive, 6, 24)
    assert not plan.composed and plan.naive_groups == set()


def ar1_series(rng, reps: int, windows: int, rho: float) -> np.ndarray:
    """`reps` stationary AR(1) series of `windows` values with mean 0: no real difference."""
    shocks = rng.standard_normal((reps, windows))
    series = np.empty_like(shocks)
    series[:, 0] = shocks[:, 0] / np.sqrt(1 - rho * rho)
    for t in range(1, windows):
        series[:, t] = rho * series[:, t - 1] + shocks[:, t]
    return series


@pytest.mark.parametrize("windows", [5, 20, 48, 168])
def test_the_paired_test_trusts_no_difference_at_most_at_its_nominal_rate(windows):
    """On loss differences with no real difference, at the sample sizes the gate meets and
    with autocorrelated errors (AR(1) up to 0.95), the test trusts the candidate at most
    5 % of the time, give or take its Monte-Carlo error (two standard errors)."""
    rng, reps = np.random.default_rng(windows), 2000
    allowed = 0.05 + 2 * np.sqrt(0.05 * 0.95 / reps)
    for rho in (0.0, 0.5, 0.9, 0.95):
        series = ar1_series(rng, reps, windows, rho)
        rate = np.mean([paired_test(d, 24).significant for d in series])
        assert rate <= allowed, (windows, rho, rate)


def test_no_spread_and_too_few_windows_are_no_evidence():
    assert paired_test(np.full(3, -0.1), 24) == paired_test(np.full(3, -0.1), 24)
    assert not paired_test(np.full(30, -0.1), 24).significant  # constant: no spread
    assert np.isfinite(paired_test(np.full(30, -0.1), 24).statistic)
    assert not paired_test(np.array([-0.1, -0.12]), 24).significant
    gains = [np.full((1, 24), 1.9), np.full((1, 24), 1.9), np.full((1, 24), 1.9)]
    naive = [np.full((1, 24), 2.0)] * 3  # a tiny constant gain over one-window folds
    assert plan_composition(gains, naive, 6, 24, min_windows=24).naive_groups == {0, 1, 2, 3}


def test_each_fold_is_scored_with_the_groups_the_other_folds_trust():
    """The group choice is cross-fitted like the weights: a group won widely in one fold
    and narrowly, with the weather swinging, in the others is trusted on all folds, but the
    wide fold is scored as best naive there (the others alone do not back it), while each
    narrow fold is scored with the group (the others, the wide one among them, back it)."""
    rng = np.random.default_rng(7)
    candidate, naive = [], []
    for fold in range(3):
        base = np.abs(rng.normal(2.0, 0.3, (168, 24))) * rng.choice([-1, 1], (168, 24))
        swing = 0.1 * np.sin(2 * np.pi * np.arange(168) / 56)[:, None]
        naive.append(base)
        candidate.append(base * 0.5 if fold == 0 else
                         base * (0.995 + swing * rng.uniform(0.5, 1.5, (168, 24))))
    plan = plan_composition(candidate, naive, 6, 24)
    assert 0 not in plan.naive_groups and np.all(plan.weights[:6] > 0)
    assert np.all(plan.fold_weights[0][:6] == 0)
    assert np.all(plan.fold_weights[1][:6] > 0) and np.all(plan.fold_weights[2][:6] > 0)
