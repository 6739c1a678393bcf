"""Naive forecasts and the MAE, checked against hand computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.baselines import Persistence, SeasonalPersistence
from forecasting.evaluation import score
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
