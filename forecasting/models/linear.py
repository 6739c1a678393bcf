"""Linear forecasters, fitted in about a second and saved as plain arrays (npz + JSON).

`LinearBlend` is what a forecaster does by hand, weighted by least squares per horizon: the
last value, the value 24 h before the target hour, the mean of the last 24 h and the clock of
the target hour. `RidgeForecaster` is a direct multi-horizon ridge regression on lagged
channels and clock features. Both are strong statistical bases for the networks, which
learn a correction on top of one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.models.naive import seasonal_positions
from forecasting.config import ForecastParams
from forecasting.models.families import read_meta, write_meta
from forecasting.features import TIME_FEATURES
from forecasting.windows import Windows

ARRAYS_FILE = "model.npz"
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
RIDGE_LAG_HOURS = (0, 1, 2, 3, 6, 12, 18, 24)  # other channels; the target gets every hour
BATCH = 4096


class LinearForecaster:
    """Shared frame: parameters, feature names, saving the arrays and their description."""

    family = ""

    def __init__(self, params: ForecastParams) -> None:
        self.name = self.family
        self.params = params
        self.period = params.samples_per_day
        self.columns: tuple[str, ...] = ()
        self.target_index = -1
        self.arrays: dict[str, np.ndarray] = {}

    def _bind(self, windows: Windows) -> None:
        if windows.lookback < self.period or windows.horizon > self.period:
            raise ValueError(f"{self.family} needs a lookback of at least a day and a horizon "
                             f"of at most a day (got {windows.lookback} and {windows.horizon} "
                             f"samples)")
        self.columns, self.target_index = windows.columns, windows.target_index

    def save(self, directory: Path) -> Path:
        """`model.npz` (the fitted arrays) and `model.json` (family, parameters, columns)."""
        write_meta(directory, {"family": self.family, "params": self.params.model_dump(
            mode="json"), "columns": list(self.columns), "target_index": self.target_index})
        np.savez(Path(directory) / ARRAYS_FILE, **self.arrays)
        return Path(directory)

    @classmethod
    def load(cls, directory: Path) -> LinearForecaster:
        """From its JSON description and plain arrays (no pickle), as the family it names."""
        meta = read_meta(directory)
        with np.load(Path(directory) / ARRAYS_FILE, allow_pickle=False) as arrays:
            return LINEAR[meta["family"]].from_files(meta, dict(arrays))

    @classmethod
    def from_files(cls, meta: dict, arrays: dict[str, np.ndarray]) -> LinearForecaster:
        model = cls(ForecastParams(**meta["params"]))
        model.columns, model.target_index = tuple(meta["columns"]), int(meta["target_index"])
        model.arrays = {k: np.asarray(v, np.float64) for k, v in arrays.items()}
        return model


class LinearBlend(LinearForecaster):
    """y(h) = last + a_h (value 24 h before the target - last) + b_h (mean of the last 24 h
    - last) + the clock of the target hour, one least-squares fit per horizon step.

    The weights of the three values sum to one and there is no intercept, so the blend
    follows the level of the weather: fitted on summer, a free intercept and free weights
    carry summer's level into autumn (on the simulator that made +24 h twice as bad as
    persistence after a 120-day window). The clock weights give the daily cycle's shape.
    """

    family = "blend"

    def features(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(last value (n, 1), predictors of the change from it (n, horizon, k))."""
        target = inputs[:, :, self.target_index].astype(np.float64)
        lookback, horizon = target.shape[1], self.params.horizon_steps
        last = target[:, -1:]
        seasonal = target[:, seasonal_positions(lookback, horizon, self.period)] - last
        day_mean = np.repeat(target[:, -self.period:].mean(axis=1, keepdims=True) - last,
                             horizon, axis=1)
        parts = [seasonal, day_mean]
        # The clock at the target hour is a rotation of the clock at the issue time, so a
        # per-horizon weight on the issue time's sin/cos gives the target hour's.
        for name in ("day_sin", "day_cos"):
            if name in self.columns:
                column = inputs[:, -1, self.columns.index(name)].astype(np.float64)
                parts.append(np.repeat(column[:, None], horizon, axis=1))
        return last, np.stack(parts, axis=-1)

    def fit(self, train: Windows, validation: Windows | None = None) -> LinearBlend:
        """Least squares per horizon through the normal equations, accumulated in batches
        (a tiny ridge term keeps a constant column solvable)."""
        self._bind(train)
        gram = xty = None
        for inputs, targets in train.batches(BATCH):
            last, x = self.features(inputs)
            g = np.einsum("nhk,nhj->hkj", x, x)
            v = np.einsum("nhk,nh->hk", x, targets.astype(np.float64) - last)
            gram, xty = (g, v) if gram is None else (gram + g, xty + v)
        eye = np.eye(gram.shape[-1]) * (1e-8 * np.trace(gram, axis1=1, axis2=2) + 1e-12)[
            :, None, None]
        self.arrays = {"coef": np.linalg.solve(gram + eye, xty[..., None])[..., 0]}
        return self

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        last, x = self.features(inputs)
        return last + np.einsum("nhk,hk->nh", x, self.arrays["coef"])


class RidgeForecaster(LinearForecaster):
    """Direct multi-horizon ridge on the target's last 48 hours, the other channels at a few
    lags, the clock, and the window's daily profile: for each target hour, the mean of the
    target at that hour of day over every whole day in the window (`daily_profile`). It
    predicts the change from the last value, from changes within the window, so the penalty
    shrinks towards persistence and a model fitted in one season does not carry that
    season's level into the next. The profile is the recent climate of each hour: it
    follows the daily cycle's size as the season changes and tells how far the weather now
    is from it, which a day ahead mostly decays (on three real hourly stations it cut the
    mean error by 3.5-4.5 % and the +24 h error by 4-5 %; see the README). Levels and the
    time of year (and its product with the time of day, so the daily cycle can change with
    the season) are used only when the training windows span a year: less than that cannot
    tell a season from a trend, and after a 120-day summer window they made the autumn
    worse than persistence. The penalty is chosen on the validation windows."""

    family = "ridge"

    def features(self, inputs: np.ndarray) -> np.ndarray:
        """(n, k) predictors for each window."""
        n, lookback = inputs.shape[:2]
        steps_per_hour = 60 / self.params.step_minutes
        clock = [i for i, c in enumerate(self.columns) if c in TIME_FEATURES]
        day = [i for i in clock if self.columns[i].startswith("day_")]
        channels = [i for i in range(len(self.columns)) if i not in clock]
        others = [i for i in channels if i != self.target_index]
        last = inputs[:, -1:, :]
        target_lags = np.arange(1, min(2 * self.period, lookback))
        lags = np.unique([min(int(h * steps_per_hour), lookback - 1)
                          for h in RIDGE_LAG_HOURS if h])
        parts = [inputs[:, lookback - 1 - target_lags, self.target_index]
                 - last[:, :, self.target_index],
                 (inputs[:, lookback - 1 - lags][:, :, others] - last[:, :, others])
                 .reshape(n, -1),
                 inputs[:, -1, day]]
        if self.arrays.get("profile", 0):  # absent from models saved before it existed
            parts.append(daily_profile(inputs[:, :, self.target_index], self.period,
                                       self.params.horizon_steps)
                         - last[:, :, self.target_index])
        if self.arrays.get("climate", 0):
            now = inputs[:, -1, clock]
            products = (now[:, :2, None] * now[:, None, 2:]).reshape(n, -1)
            parts += [inputs[:, -1, channels], now, products]
        return np.concatenate(parts, axis=1).astype(np.float64)

    def _sums(self, windows: Windows) -> Sums:
        """The least-squares sums of the windows' predictors and targets (the change from
        the last value), a batch at a time."""
        sums = Sums()
        for inputs, targets in windows.batches(BATCH):
            sums = sums + Sums.of(self.features(inputs), (
                targets - inputs[:, -1:, self.target_index]).astype(np.float64))
        return sums

    def fit(self, train: Windows, validation: Windows | None = None,
            seasons: bool = True) -> RidgeForecaster:
        """Without `seasons`, never levels or the time of year (windows of several stations
        pooled: their levels are no one climate's). Fitted from sums (`Sums`), so its memory
        does not grow with the number of windows (the weekly network fit draws 100,000)."""
        self._bind(train)
        times = train.origin_times()
        year = int(seasons and len(times) > 0 and times[-1] - times[0] >= pd.Timedelta(days=365))
        self.arrays = {"climate": np.array(year), "profile": np.array(1)}
        sums = self._sums(train)
        mean = sums.x / sums.n
        scale = np.sqrt(np.maximum(np.diagonal(sums.xx) / sums.n - mean ** 2, 0.0))
        scale = np.where(scale > 1e-9, scale, 1.0)
        alpha = RIDGE_ALPHAS[2]
        if validation is not None and len(validation):
            fits = [sums.ridge(mean, scale, a) for a in RIDGE_ALPHAS]
            errors = np.zeros(len(RIDGE_ALPHAS))
            for inputs, targets in validation.batches(BATCH):
                z = (self.features(inputs) - mean) / scale
                change = targets - inputs[:, -1:, self.target_index]
                errors += [np.abs(z @ coef.T + intercept - change).sum()
                           for coef, intercept in fits]
            alpha = RIDGE_ALPHAS[int(np.argmin(errors))]
            sums = sums + self._sums(validation)
        coef, intercept = sums.ridge(mean, scale, alpha)
        self.arrays.update(coef=coef, intercept=intercept, mean=mean, scale=scale,
                           alpha=np.array(alpha))
        return self

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        a = self.arrays
        delta = ((self.features(inputs) - a["mean"]) / a["scale"]) @ a["coef"].T + a["intercept"]
        return inputs[:, -1:, self.target_index] + delta


def daily_profile(target: np.ndarray, period: int, horizon: int) -> np.ndarray:
    """(n, horizon): for each target step, the mean of `target` (n, lookback) at the same
    time of day over every whole day in the window (days 1 .. lookback // period back)."""
    lookback = target.shape[1]
    days = range(1, lookback // period + 1)
    return np.mean([target[:, seasonal_positions(lookback, horizon, period * d)]
                    for d in days], axis=0)


@dataclass(frozen=True)
class Sums:
    """Sums over the rows of a least-squares problem (predictors x (n, k), targets y
    (n, h)), added a batch at a time: what a ridge fit needs, in memory of k² rather than
    of the rows."""

    n: int = 0
    x: np.ndarray | float = 0.0  # (k,)
    y: np.ndarray | float = 0.0  # (h,)
    xx: np.ndarray | float = 0.0  # (k, k)
    xy: np.ndarray | float = 0.0  # (k, h)

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> Sums:
        return cls(len(x), x.sum(axis=0), y.sum(axis=0), x.T @ x, x.T @ y)

    def __add__(self, other: Sums) -> Sums:
        return Sums(self.n + other.n, self.x + other.x, self.y + other.y, self.xx + other.xx,
                    self.xy + other.xy)

    def ridge(self, mean: np.ndarray, scale: np.ndarray, alpha: float
              ) -> tuple[np.ndarray, np.ndarray]:
        """(coef (h, k), intercept (h,)) of the ridge on z = (x − mean) / scale with an
        intercept (unpenalised): scikit-learn's `Ridge(alpha)` on the same rows, from sums."""
        zbar = (self.x / self.n - mean) / scale
        ybar = self.y / self.n
        zz = (self.xx - np.outer(self.x, mean) - np.outer(mean, self.x)
              + self.n * np.outer(mean, mean)) / np.outer(scale, scale)
        zy = (self.xy - np.outer(mean, self.y)) / scale[:, None]
        coef = np.linalg.solve(zz - self.n * np.outer(zbar, zbar) + alpha * np.eye(len(mean)),
                               zy - self.n * np.outer(zbar, ybar)).T
        return coef, ybar - coef @ zbar


LINEAR = {cls.family: cls for cls in (LinearBlend, RidgeForecaster)}
