"""The network model: one model learned from the windows of every station of a network.

A station's own models learn from at most its own history; the stations of a network share
the physics of the daily cycle and of passing weather, so one model fitted on all of them
learns more than any of them can alone, and forecasts a station it has never seen from
that station's own recent window.

- **Inputs every station has.** The target and the clock only, whatever each station's
  schema holds beside them; a window of the network model's own lookback is read from the
  end of a station's (which may be longer).
- **Each climate in its own units.** Each station's target is divided by its `scale` (how
  much it changes over a day: the spread of its 24-hour changes over the history it has), so
  one model fits a mild coast and a desert; forecasts are multiplied back.
- **The seeds' families inside.** `pooled_ridge` is the ridge on the pooled windows (without
  levels or the time of year: pooled levels are no one climate's); `pooled_gru` a GRU
  learning a correction to that ridge, as the stations' own networks do.

A station uses it bound to its scale and its columns (`bind`): then it is a `Forecaster`
like the others, saved as plain files (the inner model's arrays or `.keras` in
`inner/`) with the scale and columns in `model.json`. A station too new for models of its
own gets it combined with best naive at the weights of `cold_start`
(`forecasting.scoring.cold_start`), through `for_new_station`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.config import POOLED, ForecastParams
from forecasting.features import TIME_FEATURES
from forecasting.models.families import load_model, read_meta, write_meta
from forecasting.models.ensemble import Composed
from forecasting.models.isolated import fit_networks
from forecasting.models.linear import RidgeForecaster
from forecasting.models.naive import BestNaive
from forecasting.scoring.backtest import predict_windows
from forecasting.windows import Windows, pooled

INNER_DIR = "inner"
MIN_SCALE = 0.1  # a station whose target hardly changes is not divided by almost nothing


def station_scale(target: np.ndarray, period: int) -> float:
    """How much a station's target changes over a day: the standard deviation of its
    `period`-step changes (NaN-safe), at least MIN_SCALE; with under two days, of its
    one-step changes times the square root of `period` (a random walk's day)."""
    target = np.asarray(target, np.float64)
    if len(target) > 2 * period:
        changes = target[period:] - target[:-period]
    else:
        changes = np.diff(target) * np.sqrt(period)
    spread = np.nanstd(changes) if np.isfinite(changes).sum() > 1 else np.nan
    return float(max(spread, MIN_SCALE)) if np.isfinite(spread) else 1.0


def network_inputs(windows: Windows, lookback: int, scale: float) -> Windows:
    """A station's windows as the network model reads them: its target (divided by `scale`)
    and the clock, `lookback` samples."""
    if not set(TIME_FEATURES) <= set(windows.columns):
        raise ValueError("the network model needs the clock features (time_features = true)")
    if windows.lookback < lookback:
        raise ValueError(f"windows of {windows.lookback} samples are shorter than the network "
                         f"model's lookback of {lookback}")
    keep = [windows.target_index] + [windows.columns.index(c) for c in TIME_FEATURES]
    data = windows.data[:, keep].copy()
    data[:, 0] /= scale
    origins = windows.origins[windows.origins >= lookback - 1]
    return replace(windows, data=data, target=windows.target / np.float32(scale),
                   origins=origins, lookback=lookback, target_index=0,
                   columns=(windows.columns[windows.target_index], *TIME_FEATURES))


class PooledForecaster:
    """One model for a network's stations; `bind` makes it one station's forecaster."""

    def __init__(self, family: str, params: ForecastParams) -> None:
        if family not in POOLED:
            raise ValueError(f"unknown family {family!r}; choose from {list(POOLED)}")
        self.name = self.family = family
        self.params = params  # the network model's: its lookback, epochs, ...
        self.inner = None
        self.scale: float | None = None  # bound: the station's
        self.columns: tuple[str, ...] = ()  # bound: the station's window columns
        self.target_index = -1  # bound: where the target sits among them
        self.stations: tuple[str, ...] = ()  # those it was fitted on
        self.training: dict = {}
        # For a new station: its weight against best naive per horizon step, and why.
        self.cold_start: dict = {}

    def fit_network(self, train: dict[str, tuple[Windows, float]],
                    validation: dict[str, tuple[Windows, float]],
                    max_windows: int | None = None, workdir: Path | None = None,
                    threads: int = 1, shown: dict[str, tuple[Windows, float]] | None = None
                    ) -> dict[str, np.ndarray]:
        """Fit on the windows of every station (name -> (windows, scale)), at most
        `max_windows` of them (and a quarter of that for validation), drawn at random; with
        `workdir`, a GRU is fitted in a process of its own there (`isolated`: each fit's
        TensorFlow memory goes back to the system when it ends, so a weekly job of many
        fits stays the size of one). Returns the forecasts, in each station's units, of the
        windows `shown` (name -> (windows, scale to bind)), made in the same process."""
        lookback, seed = self.params.lookback_steps, self.params.seed
        sets = network_series({"train": train, "validation": validation,
                               "shown": shown or {}}, lookback)
        pooled_train = at_most(sets["train"], max_windows, seed)
        pooled_validation = at_most(sets["validation"],
                                    max_windows and max(1, max_windows // 4), seed)
        ridge = RidgeForecaster(self.params).fit(pooled_train, pooled_validation,
                                                 seasons=False)
        self.inner, self.stations, scaled = ridge, tuple(train), None
        if self.family == "pooled_gru":
            relative = np.array([True] + [False] * len(TIME_FEATURES))
            if workdir is None:
                from forecasting.models.networks import NetworkForecaster

                self.inner = NetworkForecaster("gru", self.params, relative, ridge).fit(
                    pooled_train, pooled_validation)
            else:
                ((self.inner, scaled),) = fit_networks(
                    Path(workdir), ["gru"], self.params, relative, ridge, pooled_train,
                    pooled_validation, sets["shown"], threads).values()
            self.training = self.inner.training
        if scaled is None:
            scaled = predict_windows(self.inner, sets["shown"])
        scaled = np.asarray(scaled, np.float64)
        forecasts, start = {}, 0
        for name, (w, scale) in (shown or {}).items():
            count = int((w.origins >= lookback - 1).sum())
            forecasts[name] = scaled[start:start + count] * scale
            start += count
        return forecasts

    def fit(self, train: Windows, validation: Windows) -> PooledForecaster:
        """The `Forecaster` contract: fitted on one station alone, and bound to it."""
        period = self.params.samples_per_day
        scale = station_scale(train.target[: int(train.origins.max()) + 1], period)
        self.fit_network({"": (train, scale)}, {"": (validation, scale)})
        return self.bind(scale, train.columns, train.target_index)

    def bind(self, scale: float, columns: tuple[str, ...], target_index: int
             ) -> PooledForecaster:
        """This model as one station's forecaster: windows of `columns` (the target at
        `target_index`), the target divided by `scale`."""
        bound = PooledForecaster(self.family, self.params)
        bound.inner, bound.stations, bound.training = self.inner, self.stations, self.training
        bound.cold_start = self.cold_start
        bound.scale, bound.columns = float(scale), tuple(columns)
        bound.target_index = int(target_index)
        return bound

    def for_new_station(self, scale: float, columns: tuple[str, ...], target_index: int
                        ) -> Composed:
        """The forecaster of a station too new for its own models: bound to it and combined
        with best naive at the `cold_start` weights (0 everywhere without them)."""
        weights = self.cold_start.get("weights") or [0.0] * self.params.horizon_steps
        naive = BestNaive.restore([False] * self.params.horizon_steps, target_index,
                                  self.params.lookback_steps, self.params.samples_per_day)
        return Composed(self.bind(scale, columns, target_index), naive, np.asarray(weights))

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Forecast paths from a bound station's windows (n, at least lookback, columns)."""
        if self.scale is None:
            raise ValueError("bind the network model to a station before forecasting")
        keep = [self.target_index] + [self.columns.index(c) for c in TIME_FEATURES]
        x = np.asarray(inputs, np.float32)[:, -self.params.lookback_steps:, keep].copy()
        x[:, :, 0] /= self.scale
        return np.asarray(self.inner.predict(x), np.float64) * self.scale

    def save(self, directory: Path) -> Path:
        write_meta(directory, {"family": self.family,
                               "params": self.params.model_dump(mode="json"),
                               "scale": self.scale, "columns": list(self.columns),
                               "target_index": self.target_index,
                               "stations": list(self.stations), "training": self.training,
                               "cold_start": self.cold_start})
        self.inner.save(Path(directory) / INNER_DIR)
        return Path(directory)

    @classmethod
    def load(cls, directory: Path) -> PooledForecaster:
        meta = read_meta(directory)
        model = cls(meta["family"], ForecastParams(**meta["params"]))
        model.inner = load_model(Path(directory) / INNER_DIR)
        model.stations, model.training = tuple(meta["stations"]), meta.get("training", {})
        model.cold_start = meta.get("cold_start", {})
        if meta["scale"] is not None:
            return model.bind(meta["scale"], tuple(meta["columns"]), meta["target_index"])
        return model


def network_series(sets: dict[str, dict[str, tuple[Windows, float]]], lookback: int
                   ) -> dict[str, Windows]:
    """Sets of stations' windows (set -> name -> (windows, scale)) as the network model
    reads them, on one series: a station's data scaled and copied once for every set that
    shares it at that scale (a station's training and validation windows), so a job
    process reads one file."""
    segments: dict[tuple[int, float], Windows] = {}
    members: dict[str, list[tuple[tuple[int, float], np.ndarray]]] = {}
    for key, stations in sets.items():
        members[key] = []
        for w, scale in stations.values():
            segment = (id(w.data), float(scale))
            if segment not in segments:
                segments[segment] = network_inputs(w, lookback, scale)
            members[key].append((segment, w.origins[w.origins >= lookback - 1]))
    if not segments:
        raise ValueError("no station's windows for the network model")
    series = pooled(list(segments.values()))
    starts = dict(zip(segments, np.cumsum([0] + [len(w.data) for w in segments.values()])))
    return {key: replace(series, origins=np.concatenate(
        [origins + starts[segment] for segment, origins in found] or [np.zeros(0, np.int64)]))
        for key, found in members.items()}


def at_most(windows: Windows, count: int | None, seed: int) -> Windows:
    """`count` of the windows drawn at random (seeded, kept in time order), or all of them:
    a budget keeps the weekly fit's time and memory the same however many stations the
    network has."""
    if count is None or len(windows) <= count:
        return windows
    keep = np.zeros(len(windows), bool)
    keep[np.random.default_rng(seed).choice(len(windows), count, replace=False)] = True
    return windows.select(keep)


def network_windows(windows: dict[str, Windows], params: ForecastParams, until: pd.Timestamp,
                    days: float, skip: tuple[str, ...] = ()
                    ) -> tuple[dict[str, tuple[Windows, float]], dict[str, tuple[Windows, float]]]:
    """(training, validation) windows and scale of every station but those in `skip`: the
    `days` before `until`, the last `validation_days` of them for validation; each station's
    scale from its training days."""
    validation_start = until - pd.Timedelta(days=params.validation_days)
    train, validation = {}, {}
    for name, w in windows.items():
        if name in skip:
            continue
        scale = scale_between(w, until - pd.Timedelta(days=days), validation_start,
                              params.samples_per_day)
        train[name] = (w.between(until - pd.Timedelta(days=days), validation_start), scale)
        validation[name] = (w.between(validation_start, until), scale)
    return train, validation


def scale_between(windows: Windows, start: pd.Timestamp, end: pd.Timestamp, period: int
                  ) -> float:
    """`station_scale` of a station's target between two times."""
    keep = (windows.times >= start) & (windows.times < end)
    return station_scale(windows.target[keep], period)

