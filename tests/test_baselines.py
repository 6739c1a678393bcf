"""Naive forecasts, the linear blend, the ridge's daily profile and the MAE, checked against
hand computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.models.naive import BestNaive, Persistence, SeasonalPersistence
from forecasting.config import ForecastParams
from forecasting.scoring.backtest import score
from forecasting.models.linear import (ARRAYS_FILE, LinearBlend, LinearForecaster,
                                       RidgeForecaster, daily_profile)
from forecasting.windows import make_windows


def series(values) -> pd.DataFrame:
    index = pd.date_range("2022-03-01", periods=len(values), freq="h")
    return pd.DataFrame({"temp": np.asarray(values, float), "other": 0.0}, index=index)


def test_persistence_mae_equals_hand_computation():
    # 0, 1, 4, 9, 16, 25, 36: lookback 2, horizon 2 -> origins at 1..4
    windows = make_windows(series([0, 1, 4, 9, 16, 25, 36]), "temp", lookback=2, horizon=2)
    scores = score(Persistence().fit(windows), windows)
    # origin 1 (value 1): errors |4-1|=3, |9-1|=8;  origin 2 (4): 5, 12
    # origin 3 (9): 7, 16;  origin 4 (16): 9, 20
    assert scores.mae == pytest.approx(((3 + 5 + 7 + 9) / 4, (8 + 12 + 16 + 20) / 4))
    assert scores.mean == pytest.approx((6 + 14) / 2)
    assert scores.last == pytest.approx(14)
    assert scores.windows == 4


def test_seasonal_persistence_repeats_yesterday():
    day = np.sin(np.arange(24) / 24 * 2 * np.pi)
    windows = make_windows(series(np.tile(day, 4)), "temp", lookback=24, horizon=24)
    model = SeasonalPersistence(samples_per_day=24).fit(windows)
    assert score(model, windows).mean == pytest.approx(0, abs=1e-6)
    assert score(Persistence().fit(windows), windows).mean > 0.5


def test_seasonal_persistence_needs_a_day_of_lookback():
    windows = make_windows(series(range(60)), "temp", lookback=12, horizon=6)
    with pytest.raises(ValueError, match="lookback >= 24"):
        SeasonalPersistence(samples_per_day=24).fit(windows)


def test_best_naive_takes_per_horizon_the_naive_forecast_that_did_better_on_training():
    """A daily cycle plus a random walk: seasonal wins at mid-horizons, persistence at +1 h."""
    hours = np.arange(24 * 8)
    walk = np.cumsum(np.random.default_rng(1).normal(0, 0.5, len(hours)))
    values = 5 * np.sin(2 * np.pi * hours / 24) + walk
    windows = make_windows(series(values), "temp", lookback=24, horizon=24)
    model = BestNaive(samples_per_day=24).fit(windows)
    inputs, targets = windows.inputs(), windows.targets()
    persistence = np.abs(Persistence().fit(windows).predict(inputs) - targets).mean(axis=0)
    seasonal = np.abs(SeasonalPersistence(24).fit(windows).predict(inputs) - targets).mean(0)
    expected = np.where(seasonal < persistence, "seasonal_persistence", "persistence")
    assert model.choice() == expected.tolist()
    assert model.choice()[0] == "persistence" and model.choice()[11] == "seasonal_persistence"
    best = np.where(seasonal < persistence, seasonal, persistence)
    np.testing.assert_allclose(score(model, windows).mae, best, rtol=1e-6)


def test_linear_blend_is_the_least_squares_fit_per_horizon_computed_by_hand():
    rng = np.random.default_rng(0)
    hours = np.arange(24 * 20)
    index = pd.date_range("2022-03-01", periods=len(hours), freq="h")
    temp = 10 + 4 * np.sin(2 * np.pi * hours / 24) + np.cumsum(rng.normal(0, 0.3, len(hours)))
    seconds = index.as_unit("s").asi8
    frame = pd.DataFrame({"temp": temp, "day_sin": np.sin(2 * np.pi * seconds / 86400),
                          "day_cos": np.cos(2 * np.pi * seconds / 86400)}, index=index)
    params = ForecastParams(lookback_hours=24, horizon_hours=3)
    windows = make_windows(frame, "temp", lookback=24, horizon=3)
    blend = LinearBlend(params).fit(windows)
    inputs = windows.inputs()
    t = inputs[:, :, 0].astype(float)
    last, mean = t[:, -1], t.mean(axis=1)
    # by hand: least squares of (target - last) on (value a day before - last, mean - last,
    # day_sin, day_cos), separately for each horizon
    for h in range(3):
        day_before = t[:, h]  # the value 24 h before the target sits at position h
        x = np.column_stack([day_before - last, mean - last, inputs[:, -1, 1],
                             inputs[:, -1, 2]])
        y = windows.targets()[:, h] - last
        weights, *_ = np.linalg.lstsq(x, y, rcond=None)
        np.testing.assert_allclose(blend.arrays["coef"][h], weights, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(blend.predict(inputs)[:, h], last + x @ weights, atol=1e-4)


def test_daily_profile_is_the_mean_at_the_target_hour_over_every_whole_day_in_the_window():
    # a window of 3 days + 2 hours (lookback 74, period 24): 3 whole days back for each target
    target = np.arange(2 * 74, dtype=float).reshape(2, 74) ** 1.5
    profile = daily_profile(target, period=24, horizon=5)
    for h in range(1, 6):  # the target is h steps after the last sample (position 73)
        by_hand = np.mean([target[:, 73 + h - 24 * d] for d in (1, 2, 3)], axis=0)
        np.testing.assert_allclose(profile[:, h - 1], by_hand)


def test_a_ridge_saved_before_the_daily_profile_still_predicts_with_its_own_features(tmp_path):
    """Registered ridge versions (and networks' bases) from before the profile load and
    predict as they were fitted: the profile is used only where its flag was saved."""
    hours = np.arange(24 * 30)
    values = 8 + 5 * np.sin(2 * np.pi * hours / 24) + np.cumsum(
        np.random.default_rng(3).normal(0, 0.3, len(hours)))
    params = ForecastParams(lookback_hours=48, horizon_hours=6)
    windows = make_windows(series(values), "temp", lookback=48, horizon=6)
    inputs = windows.inputs()
    with_profile = RidgeForecaster(params).fit(windows)
    before = RidgeForecaster(params)  # what the fit did before: no profile columns
    before._bind(windows)
    before.arrays = {"climate": np.array(0)}
    x_before = before.features(inputs)
    assert with_profile.features(inputs).shape[1] == x_before.shape[1] + 6
    before.arrays.update(coef=np.ones((6, x_before.shape[1])), intercept=np.zeros(6),
                         mean=np.zeros(x_before.shape[1]), scale=np.ones(x_before.shape[1]))
    before.save(tmp_path / "old")
    assert "profile" not in np.load(tmp_path / "old" / ARRAYS_FILE).files
    np.testing.assert_allclose(LinearForecaster.load(tmp_path / "old").predict(inputs),
                               np.repeat(inputs[:, -1:, 0] + x_before.sum(axis=1, keepdims=True),
                                         6, axis=1))


def test_best_naive_is_chosen_at_the_hours_the_forecast_is_issued_from():
    """A day-time bump of steady size on a level that jumps once a day: over the whole
    day the value an hour ago is the better +5 h forecast, but from 01-05 UTC (before the
    bump) yesterday's value is, and the product issues from there."""
    rng = np.random.default_rng(3)
    times = pd.date_range("2021-01-01", periods=60 * 24, freq="h")
    level = np.repeat(np.cumsum(rng.normal(0, 3, 61)), 24)[20:20 + len(times)]  # jumps at 04
    bump = np.where((times.hour >= 6) & (times.hour < 18), 4.0, 0.0)
    frame = pd.DataFrame({"T": level + bump + rng.normal(0, 0.1, len(times))}, index=times)
    windows = make_windows(frame, "T", 24, 24)
    params = ForecastParams(issue_hours=(3,))
    from forecasting.candidates import naive_baselines

    issued = naive_baselines(windows, params)["best_naive"]
    by_hand = naive_baselines(windows, params, every_hour=True)["best_naive"]
    assert issued.choice()[4] == "seasonal_persistence"
    assert by_hand.choice()[4] == "persistence"
    at_issue = windows.at_hours(params.scored_hours)
    assert score(issued, at_issue).mae[4] < 0.8 * score(by_hand, at_issue).mae[4]
