"""Naive forecasts with the same fit/predict protocol as the networks.

On real weather the daily cycle makes plain persistence weak at 6-18 h ahead, where the
value 24 h earlier is the better guess; `BestNaive` takes, per horizon, whichever of the two
did better on the training slice. It is the yardstick of the promotion gate.
"""

from __future__ import annotations

import numpy as np

from forecasting.scoring.backtest import score
from forecasting.windows import Windows


class Persistence:
    """Every hour ahead = the last observed value."""

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
    """Each hour ahead = the value 24 h before that target hour."""

    name = "seasonal_persistence"

    def __init__(self, samples_per_day: int = 24) -> None:
        self.period = samples_per_day

    def fit(self, train: Windows, validation: Windows | None = None) -> SeasonalPersistence:
        return self.for_target(train.target_index, train.horizon, train.lookback)

    def for_target(self, target_index: int, horizon: int, lookback: int) -> SeasonalPersistence:
        if lookback < self.period or horizon > self.period:
            raise ValueError(
                f"seasonal persistence needs lookback >= {self.period} and horizon <= "
                f"{self.period} samples (got {lookback}, {horizon})")
        self.target_index = target_index
        self.horizon = horizon
        return self

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return inputs[:, seasonal_positions(inputs.shape[1], self.horizon, self.period),
                      self.target_index]


def seasonal_positions(lookback: int, horizon: int, period: int) -> np.ndarray:
    """Index in the input window of the sample one `period` before each target step."""
    return lookback - 1 - period + np.arange(1, horizon + 1)


class BestNaive:
    """Per horizon, persistence or seasonal persistence: whichever had the lower MAE on the
    training windows (ties go to persistence)."""

    name = "best_naive"

    def __init__(self, samples_per_day: int = 24) -> None:
        self.samples_per_day = samples_per_day

    def fit(self, train: Windows, validation: Windows | None = None) -> BestNaive:
        self.persistence = Persistence().fit(train)
        self.seasonal = SeasonalPersistence(self.samples_per_day).fit(train)
        errors = [score(m, train).mae for m in (self.persistence, self.seasonal)]
        self.use_seasonal = np.array(errors[1]) < np.array(errors[0])
        return self

    @classmethod
    def restore(cls, use_seasonal: list[bool], target_index: int, lookback: int,
                samples_per_day: int) -> BestNaive:
        """A fitted choice, as saved (`use_seasonal` per horizon step)."""
        naive = cls(samples_per_day)
        naive.use_seasonal = np.asarray(use_seasonal, bool)
        naive.persistence = Persistence().for_target(target_index, len(naive.use_seasonal))
        naive.seasonal = SeasonalPersistence(samples_per_day).for_target(
            target_index, len(naive.use_seasonal), lookback)
        return naive

    @classmethod
    def at_hours(cls, train: Windows, samples_per_day: int, hours: frozenset[int] | None
                 ) -> BestNaive:
        """Chosen on the windows from `hours` of the day (on all when none is, or `hours`
        is None): where a forecast is issued, since the better naive forecast of a horizon
        depends on that hour (from 03 UTC, persistence's 7-12 h forecast is twice as far
        off as yesterday's value; from the afternoon the two are close)."""
        return cls(samples_per_day).fit(train.preferring_hours(hours))

    def choice(self) -> list[str]:
        """The naive forecast used at each horizon step."""
        return [self.seasonal.name if s else self.persistence.name for s in self.use_seasonal]

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.where(self.use_seasonal, self.seasonal.predict(inputs),
                        self.persistence.predict(inputs))
