"""Scoring any predictor (baseline or network) on the same windows, in target units, and the
one rolling-origin backtest that the gate, the benchmarks and the tests all use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from forecasting.windows import NotEnoughData, Windows

PREDICT_ROWS = 4096  # windows gathered at a time, to bound memory


class Predictor(Protocol):
    """What scoring needs of a model, a naive forecast included: fit and predict (the saved
    families meet the whole `forecasting.models.families.Predictor` contract)."""

    name: str

    def fit(self, train: Windows, validation: Windows) -> Predictor: ...

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

    def groups(self, steps: int) -> tuple[float, ...]:
        """Mean MAE of each consecutive group of `steps` horizons (1-6 h, 7-12 h, ...)."""
        mae = np.asarray(self.mae)
        return tuple(float(mae[i:i + steps].mean()) for i in range(0, len(mae), steps))

    @classmethod
    def combine(cls, parts: list[Scores]) -> Scores:
        """The scores of the union of disjoint window sets (weighted by their windows)."""
        total = sum(p.windows for p in parts)
        mae = sum(np.asarray(p.mae) * p.windows for p in parts) / total
        return cls(tuple(float(v) for v in mae), total)

    @classmethod
    def of(cls, predictions: np.ndarray, windows: Windows) -> Scores:
        """MAE of `predictions` (n, horizon) against the windows' targets."""
        if not len(windows):
            raise NotEnoughData("no windows to score")
        errors = np.abs(np.asarray(predictions, np.float64) - windows.targets())
        return cls(tuple(float(v) for v in errors.mean(axis=0)), len(windows))


def predict_windows(model: Predictor, windows: Windows) -> np.ndarray:
    """(n, horizon) predictions of any forecaster for every window, in batches."""
    if not len(windows):
        return np.zeros((0, windows.horizon), np.float32)
    return np.concatenate([model.predict(inputs) for inputs, _ in windows.batches(PREDICT_ROWS)])


def score(predictor: Predictor, windows: Windows) -> Scores:
    return Scores.of(predict_windows(predictor, windows), windows)


@dataclass(frozen=True)
class FoldSplit:
    """One rolling origin: fit on `train` (early stopping on `validation`), score on `test`."""

    cutoff: pd.Timestamp
    train: Windows
    validation: Windows
    test: Windows


def rolling_folds(windows: Windows, folds: int, test_days: float, validation_days: float,
                  spread_days: float = 0, at_least: int | None = None,
                  hours: frozenset[int] | None = None) -> list[FoldSplit]:
    """`folds` blocks of `test_days`, oldest first, the newest ending at the newest target.
    With `spread_days` they are spread evenly over that many days before it (as far as the
    data allows, keeping at least `validation_days` of training before the oldest), so the
    gate sees more than one stretch of weather; without, they are the last blocks. Each
    fold's models see only windows whose targets end before its cut-off; the
    `validation_days` before the cut-off are their validation set. A history too short for
    `folds` gets as many as it holds, down to `at_least` (default: all of them). With
    `hours`, a fold scores only the forecasts from those hours of the day (UTC): where the
    product issues them (`ForecastParams.scored_hours`); the models still learn from every
    hour."""
    fewest = min(at_least or folds, folds)
    for count in range(folds, fewest, -1):
        try:
            return _folds(windows, count, test_days, validation_days, spread_days, hours)
        except NotEnoughData:
            continue
    return _folds(windows, fewest, test_days, validation_days, spread_days, hours)


def _folds(windows: Windows, folds: int, test_days: float, validation_days: float,
           spread_days: float, hours: frozenset[int] | None) -> list[FoldSplit]:
    if not len(windows):
        raise NotEnoughData(
            f"no complete window: need {windows.lookback + windows.horizon} consecutive "
            f"samples without long gaps, have {len(windows.times)} samples")
    end = windows.times[windows.origins[-1] + windows.horizon] + pd.Timedelta(seconds=1)
    newest = end - pd.Timedelta(days=test_days)
    contiguous = pd.Timedelta(days=test_days * (folds - 1))
    earliest = windows.origin_times()[0] + pd.Timedelta(days=2 * validation_days)
    oldest = max(newest - pd.Timedelta(days=spread_days), min(earliest, newest - contiguous))
    oldest = min(oldest, newest - contiguous)
    steps = (newest - oldest) / max(folds - 1, 1)
    splits = []
    for k in range(folds - 1, -1, -1):
        cutoff = newest - steps * k
        validation_start = cutoff - pd.Timedelta(days=validation_days)
        split = FoldSplit(cutoff, windows.between(None, validation_start),
                          windows.between(validation_start, cutoff),
                          windows.between(cutoff, cutoff + pd.Timedelta(days=test_days))
                          .at_hours(hours))
        counts = {k: len(getattr(split, k)) for k in ("train", "validation", "test")}
        if min(counts.values()) == 0:
            raise NotEnoughData(
                f"too little data for {folds} folds of {test_days:g} days after "
                f"{validation_days:g} validation days: the fold from {cutoff:%Y-%m-%d %H:%M} "
                f"has {counts} windows, from {len(windows)} complete windows "
                f"({windows.origin_times()[0]:%Y-%m-%d} .. {end:%Y-%m-%d})")
        splits.append(split)
    return splits


@dataclass(frozen=True)
class FoldFit:
    """What fitting at one cut-off gives: the models, and their predictions for the fold's
    test windows (made where each model was fitted, so no network is loaded to score it)."""

    models: dict[str, Predictor]
    predictions: dict[str, np.ndarray]


@dataclass(frozen=True)
class Backtest:
    """Every model's scores on the test windows of each fold it was fitted at (the linear
    models and naive forecasts at every fold, the networks at the newest), and the newest
    fold's models."""

    folds: list[FoldSplit]
    fold_scores: dict[str, list[Scores | None]] = field(default_factory=dict)
    fold_residuals: dict[str, list[np.ndarray | None]] = field(default_factory=dict)
    models: dict[str, Predictor] = field(default_factory=dict)

    def folds_of(self, name: str) -> list[int]:
        """The folds (numbered from the oldest) at which `name` was fitted and scored."""
        return [k for k, s in enumerate(self.fold_scores[name]) if s is not None]

    def scores(self, name: str, folds: list[int] | None = None) -> Scores:
        """Over every fold it was scored at, or over the folds numbered `folds`."""
        parts = self.fold_scores[name]
        return Scores.combine([parts[k] for k in (self.folds_of(name) if folds is None
                                                  else folds)])

    def residuals(self, name: str, folds: list[int] | None = None) -> np.ndarray:
        """(windows, horizon) actual − prediction on the test windows of every fold it was
        scored at (or of `folds`): errors made on data the model did not train on, which
        calibrate its prediction intervals."""
        parts = self.fold_residuals[name]
        return np.concatenate([parts[k] for k in (self.folds_of(name) if folds is None
                                                  else folds)])

    def residual_hours(self, name: str) -> np.ndarray:
        """The hour of day (UTC) each row of `residuals(name)` was forecast from."""
        return np.concatenate([self.folds[k].test.origin_times().hour.to_numpy()
                               for k in self.folds_of(name)])

    def compose(self, name: str, member: str, weights: dict[int, np.ndarray]) -> None:
        """Add `name`: at each fold in `weights`, best naive's forecast plus the fold's weight
        (per horizon step) times `member`'s difference from it (no refit needed: the
        combination's residuals are the same combination of the two models' residuals)."""
        naive = self.fold_residuals["best_naive"]
        self.fold_residuals[name] = [
            naive[k] + weights[k] * (mine - naive[k]) if k in weights else None
            for k, mine in enumerate(self.fold_residuals[member])]
        self.fold_scores[name] = [
            None if r is None else Scores(tuple(float(v) for v in np.abs(r).mean(axis=0)),
                                          len(r)) for r in self.fold_residuals[name]]

    def test_sets(self, folds: list[int] | None = None) -> dict[str, Windows]:
        """The folds' test windows by name, for a model scored elsewhere (a champion)."""
        return {f"fold{k}": fold.test for k, fold in enumerate(self.folds)
                if folds is None or k in folds}

    def score_fixed(self, predictions: dict[str, np.ndarray]) -> dict[int, Scores]:
        """A model that is not refitted (a champion), from its predictions for `test_sets`
        (all of them, or those it was given): its scores by fold number."""
        sets = self.test_sets()
        return {int(name.removeprefix("fold")): Scores.of(predictions[name], sets[name])
                for name in predictions}

    def add(self, name: str, predictions: dict[int, np.ndarray], model: Predictor) -> None:
        """A candidate fitted elsewhere (the network model, fitted across the stations on
        data before each fold's cut-off): its predictions for the test windows of the folds
        numbered in `predictions`, and its model at the newest of them."""
        self.fold_scores[name] = [None] * len(self.folds)
        self.fold_residuals[name] = [None] * len(self.folds)
        for k, values in predictions.items():
            test = self.folds[k].test
            self.fold_scores[name][k] = Scores.of(values, test)
            self.fold_residuals[name][k] = test.targets() - np.asarray(values, np.float64)
        self.models[name] = model

    @classmethod
    def assemble(cls, folds: list[FoldSplit], fits: list[FoldFit]) -> Backtest:
        """Score the models fitted at each fold (in fold order) on that fold's test windows."""
        result = cls(folds)
        for k, (fold, fit) in enumerate(zip(folds, fits, strict=True)):
            for name, predictions in fit.predictions.items():
                result.fold_scores.setdefault(name, [None] * len(folds))[k] = Scores.of(
                    predictions, fold.test)
                result.fold_residuals.setdefault(name, [None] * len(folds))[k] = (
                    fold.test.targets() - np.asarray(predictions, np.float64))
        result.models.update(fits[-1].models)
        return result


def backtest(windows: Windows, fit_fold: Callable[[FoldSplit, bool], FoldFit],
             folds: int = 3, test_days: float = 7, validation_days: float = 14,
             spread_days: float = 0, newest: int | None = None,
             hours: frozenset[int] | None = None) -> Backtest:
    """Rolling-origin evaluation: at each cut-off, `fit_fold(fold, newest)` fits the models
    on what came before it only, and each is scored on the following `test_days` (their
    forecasts from `hours` of the day only, if given); `newest` is true for the newest
    `newest` folds (all by default), where the costly models are fitted too."""
    splits = rolling_folds(windows, folds, test_days, validation_days, spread_days, newest,
                           hours)
    first_newest = len(splits) - (len(splits) if newest is None else newest)
    return Backtest.assemble(splits, [fit_fold(fold, k >= first_newest)
                                      for k, fold in enumerate(splits)])


def verified_skill(skill: pd.DataFrame) -> pd.DataFrame:
    """MAE by horizon of verified forecasts (rows of a `forecast_skill`-shaped view) beside
    persistence's and seasonal persistence's from the same issues, scored only where all
    three exist; `vs_best_naive` divides by the better of the two naive MAEs at each
    horizon (a hindsight choice, so a ratio below 1 is a real win)."""
    errors = ["abs_error", "persistence_abs_error", "seasonal_persistence_abs_error"]
    complete = skill.dropna(subset=errors)
    table = complete.groupby("horizon_hours").agg(
        issues=("issued_at", "nunique"), mae=("abs_error", "mean"),
        persistence=("persistence_abs_error", "mean"),
        seasonal_persistence=("seasonal_persistence_abs_error", "mean"))
    table["vs_best_naive"] = table.mae / table[["persistence", "seasonal_persistence"]].min(
        axis=1)
    return table
