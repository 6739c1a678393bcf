"""Skill on the simulated feed, out of sample: train on the months before a cut-off, score the
month after it against the best naive forecast. Modest sizes (3-day lookback, 16 units, a
few epochs) keep these under a minute each; they can fail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.models.naive import BestNaive
from forecasting.candidates import fit_candidates
from forecasting.config import NETWORKS, ForecastParams
from forecasting.scoring.backtest import FoldFit, FoldSplit, backtest, predict_windows, score
from forecasting.scoring.gate import gate_backtest
from forecasting.station.schema import JENA
from forecasting.station.simulate import simulated_observations
from forecasting.features import station_windows

QUICK = ForecastParams(lookback_hours=72, epochs=3, patience=2, batch_size=128, units=16,
                       jit_compile=False)  # XLA compiles for longer than it saves here


@pytest.fixture(scope="module")
def spring_after_winter(tmp_path_factory):
    """120 days from January for training, the following month for testing; every family
    and the naive forecasts fitted on the same training windows."""
    frame = simulated_observations("2018-01-01", 150, seed=21)
    windows, relative = station_windows(frame, JENA, QUICK)
    cutoff = windows.times[0] + pd.Timedelta(days=120)
    before = windows.between(None, cutoff)
    validation_start = cutoff - pd.Timedelta(days=QUICK.validation_days)
    fold = FoldSplit(cutoff, before.between(None, validation_start),
                     before.between(validation_start, cutoff), windows.between(cutoff, None))
    return fold, fit_candidates(fold, QUICK, relative, tmp_path_factory.mktemp("fit")).models


def test_ridge_and_ensemble_beat_the_best_naive_forecast_in_every_6_hour_group(
        spring_after_winter):
    fold, models = spring_after_winter
    naive = score(models["best_naive"], fold.test)
    for family in ("ridge", "ensemble"):
        mine = score(models[family], fold.test)
        assert mine.mean < 0.9 * naive.mean, family
        assert all(m < n for m, n in zip(mine.groups(6), naive.groups(6))), family
        assert mine.last < score(models["persistence"], fold.test).last, family


@pytest.mark.parametrize("family", ["blend", *NETWORKS])
def test_candidate_is_not_worse_than_best_naive_when_the_season_moves(
        family, spring_after_winter):
    fold, models = spring_after_winter
    mine = score(models[family], fold.test)
    naive = score(models["best_naive"], fold.test)
    assert mine.mean <= 1.02 * naive.mean
    assert mine.last <= 1.05 * score(models["persistence"], fold.test).last


def test_best_naive_is_seasonal_at_midday_horizons_and_persistence_at_the_first():
    windows, _ = station_windows(simulated_observations("2018-01-01", 60, seed=21), JENA, QUICK)
    choice = BestNaive(QUICK.samples_per_day).fit(windows).choice()
    assert choice[0] == "persistence"
    assert set(choice[6:18]) == {"seasonal_persistence"}


def test_backtest_scores_every_model_on_the_same_folds_with_data_before_each_cutoff(tmp_path):
    params = QUICK.model_copy(update={"families": ("blend", "ridge")})
    windows, relative = station_windows(simulated_observations("2019-03-01", 100, seed=5),
                                        JENA, params)
    seen = []

    def fit(fold, networks):
        assert fold.train.times[fold.train.origins[-1] + fold.train.horizon] < fold.cutoff
        assert fold.test.origin_times()[0] >= fold.cutoff
        seen.append(fold.cutoff)
        return fit_candidates(fold, params, relative, tmp_path)

    result = backtest(windows, fit, folds=3, test_days=7, validation_days=7)
    assert seen == [f.cutoff for f in result.folds] and len(seen) == 3
    assert seen[1] - seen[0] == pd.Timedelta(days=7)
    counts = {name: [s.windows for s in scores] for name, scores in result.fold_scores.items()}
    assert set(counts) == {"persistence", "seasonal_persistence", "best_naive", "blend",
                           "ridge"}
    assert len({tuple(c) for c in counts.values()}) == 1  # the same windows for everyone
    assert all(n > 100 for n in counts["ridge"])


def test_the_gate_judges_a_candidate_where_the_forecast_is_issued(tmp_path):
    """A candidate that beats best naive from every hour of the day but the scheduled issue
    hour and its neighbours, where it loses, is trusted in no group when the backtest scores
    the issue hours (as the retrain does), and in every group when it scores all hours."""
    params = QUICK.model_copy(update={"families": ("ridge",), "issue_hours": (3,)})
    windows, _ = station_windows(simulated_observations("2019-03-01", 80, seed=5), JENA, params)

    def fit(fold, networks):
        truth = fold.test.targets().astype(np.float64)
        naive = BestNaive(params.samples_per_day).fit(fold.train)
        theirs = predict_windows(naive, fold.test)
        near = np.isin(fold.test.origin_times().hour, sorted(params.scored_hours))[:, None]
        mine = truth + np.where(near, 1.3, 0.3) * (theirs - truth)
        return FoldFit({"ridge": naive, "best_naive": naive},
                       {"ridge": mine, "best_naive": theirs})

    verdicts = {}
    for hours in (params.scored_hours, None):
        result = backtest(windows, fit, params.folds, params.fold_days, params.validation_days,
                          params.backtest_days, hours=hours)
        assert all(set(f.test.origin_times().hour) <= (hours or set(range(24)))
                   for f in result.folds)
        verdicts[hours] = gate_backtest(result, params.families, params)
    assert params.scored_hours == {0, 1, 2, 3, 4, 5, 6}
    assert verdicts[params.scored_hours].plans["ridge"].naive_groups == {0, 1, 2, 3}
    assert verdicts[params.scored_hours].winner is None
    assert verdicts[None].plans["ridge"].naive_groups == frozenset()
    assert verdicts[None].winner == "ridge"
