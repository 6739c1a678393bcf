"""Naive forecasts with the same fit/predict protocol as the networks."""

from __future__ import annotations

import numpy as np

from forecasting.windows import Windows


class Persistence:
    """Every hour ahead = the last observed value (the promotion gate's yardstick)."""

    name = "persistence"

    def fit(self, train: Windows, validation: Windows | None = None) -> Persistence:
        return self.for_target(train.target_index, train.horizon)

    def for_target(self, target_index: int, horizon: int) -> Persistence:
        """Ready to predict without training windows (persistence learns nothing)."""
        self.target_index = target_index
        self.horizon = horizon
        return self

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        last = inputs[:, -1, self.target_index]
        return np.repeat(last[:, None], self.horizon, axis=1)


class SeasonalPersistence:
    """Each hour ahead = the value at the same time the day before."""

    name = "seasonal_persistence"

    def __init__(self, samples_per_day: int = 24) -> None:
        self.period = samples_per_day

    def fit(self, train: Windows, validation: Windows | None = None) -> SeasonalPersistence:
        if train.lookback < self.period or train.horizon > self.period:
            raise ValueError(
                f"seasonal persistence needs lookback >= {self.period} and horizon <= "
                f"{self.period} samples (got {train.lookback}, {train.horizon})"
            )
        self.target_index = train.target_index
        self.horizon = train.horizon
        return self

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        lookback = inputs.shape[1]
        positions = lookback - 1 - self.period + np.arange(1, self.horizon + 1)
        return inputs[:, positions, self.target_index]
