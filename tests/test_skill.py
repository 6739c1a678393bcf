"""Skill on the simulated feed: networks learn a correction to persistence, and only that.

Modest sizes (3-day lookback, a few epochs) keep these under a minute each; they can fail.
"""

from __future__ import annotations

import pandas as pd
import pytest

from forecasting.baselines import Persistence
from forecasting.config import FAMILIES, ForecastParams
from forecasting.evaluation import backtest, score
from forecasting.schema import JENA
from forecasting.simulate import simulated_observations
from forecasting.training import NetworkForecaster, split_windows, station_windows

QUICK = ForecastParams(lookback_hours=72, epochs=8, patience=2, batch_size=128)


def test_gru_beats_persistence_at_24h_on_the_holdout():
    windows, relative = station_windows(simulated_observations("2019-01-01", 240, seed=11),
                                        JENA, QUICK)
    split = split_windows(windows, 0.15, 0.15)
    gru = score(NetworkForecaster("gru", QUICK, relative).fit(split.train, split.validation),
                split.holdout)
    naive = score(Persistence().fit(split.train), split.holdout)
    assert gru.last < 0.97 * naive.last
    assert gru.mean < naive.mean


@pytest.fixture(scope="module")
def spring_after_winter():
    """120 days from January for training, the following month for testing."""
    frame = simulated_observations("2018-01-01", 150, seed=21)
    windows, relative = station_windows(frame, JENA, QUICK)
    cutoff = windows.times[0] + pd.Timedelta(days=120)
    train_all = windows.between(None, cutoff)
    split = split_windows(train_all, 0.15, 0.01)
    return split, windows.between(cutoff, None), relative


@pytest.mark.parametrize("family", FAMILIES)
def test_candidate_is_not_worse_than_persistence_when_the_season_moves(
        family, spring_after_winter):
    split, following_month, relative = spring_after_winter
    model = NetworkForecaster(family, QUICK, relative).fit(split.train, split.validation)
    network = score(model, following_month)
    naive = score(Persistence().fit(split.train), following_month)
    assert network.last <= 1.05 * naive.last
    assert network.mean <= 1.05 * naive.mean


def test_backtest_scores_baseline_and_network_on_the_same_folds():
    windows, relative = station_windows(simulated_observations("2019-03-01", 100, seed=5),
                                        JENA, ForecastParams(lookback_hours=48, epochs=1,
                                                             units=4))
    naive = backtest(windows, Persistence, folds=3, test_days=7, validation_days=7)
    network = backtest(windows, lambda: NetworkForecaster("gru", ForecastParams(
        lookback_hours=48, epochs=1, units=4), relative), folds=3, test_days=7,
        validation_days=7)
    assert [f.cutoff for f in naive] == [f.cutoff for f in network]
    assert [f.scores.windows for f in naive] == [f.scores.windows for f in network]
    assert all(f.scores.windows > 100 for f in naive)
