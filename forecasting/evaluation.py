"""Scoring any predictor (baseline or network) on the same windows, in target units."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from forecasting.windows import NotEnoughData, Windows

PREDICT_ROWS = 4096  # windows gathered at a time, to bound memory


class Forecaster(Protocol):
    name: str

    def fit(self, train: Windows, validation: Windows) -> Forecaster: ...

    def predict(self, inputs: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Scores:
    """Mean absolute error for each horizon step (+1 .. +H), over `windows` windows."""

    mae: tuple[float, ...]
    windows: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.mae))

    @property
    def last(self) -> float:
        """MAE at the final horizon (+24 h by default): the seeds' headline number."""
        return self.mae[-1]


def mean_absolute_error(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """MAE per column (horizon step)."""
    return np.abs(predicted.astype(np.float64) - actual).mean(axis=0)


def score(predictor: Forecaster, windows: Windows) -> Scores:
    if not len(windows):
        raise NotEnoughData("no windows to score")
    total = np.zeros(windows.horizon)
    for start in range(0, len(windows), PREDICT_ROWS):
        rows = slice(start, start + PREDICT_ROWS)
        predicted = predictor.predict(windows.inputs(rows))
        total += np.abs(predicted.astype(np.float64) - windows.targets(rows)).sum(axis=0)
    return Scores(tuple(float(v) for v in total / len(windows)), len(windows))


@dataclass(frozen=True)
class Fold:
    cutoff: pd.Timestamp
    scores: Scores


def backtest(windows: Windows, make: Callable[[], Forecaster], folds: int = 3,
             test_days: float = 14, validation_days: float = 14) -> list[Fold]:
    """Rolling-origin evaluation: for each cut-off, fit on everything before it, test after.

    The last `folds` blocks of `test_days` are the test periods; each model is fitted on
    windows whose targets end before its cut-off minus `validation_days`, with those
    days as its validation set.
    """
    end = windows.times[-1]
    results = []
    for k in range(folds, 0, -1):
        cutoff = end - pd.Timedelta(days=test_days * k)
        validation_start = cutoff - pd.Timedelta(days=validation_days)
        train = windows.between(None, validation_start)
        validation = windows.between(validation_start, cutoff)
        test = windows.between(cutoff, cutoff + pd.Timedelta(days=test_days))
        if not (len(train) and len(validation) and len(test)):
            raise NotEnoughData(
                f"cut-off {cutoff}: {len(train)} train, {len(validation)} validation and "
                f"{len(test)} test windows; every part needs at least one"
            )
        results.append(Fold(cutoff, score(make().fit(train, validation), test)))
    return results
