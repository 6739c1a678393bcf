"""Windows over a sampled series: the last `lookback` samples in, the next `horizon` targets out.

Windows are never materialised for the whole series: a `Windows` holds the sampled data once
plus the positions of usable window ends ("origins"), and gathers inputs by index arithmetic
only for the rows asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd


class NotEnoughData(ValueError):
    """Too few complete windows to do what was asked; says how many there are and need."""


@dataclass(frozen=True)
class Windows:
    data: np.ndarray  # (samples, features) float32, NaN where missing
    target: np.ndarray  # (samples,) float32 target channel, physical units
    times: pd.DatetimeIndex  # (samples,) sample times, UTC
    origins: np.ndarray  # int64: index of the last input sample of each usable window
    lookback: int
    horizon: int
    target_index: int  # where the target channel sits among the input features
    columns: tuple[str, ...]  # input feature names

    def __len__(self) -> int:
        return len(self.origins)

    @property
    def input_offsets(self) -> np.ndarray:
        return np.arange(-self.lookback + 1, 1)

    @property
    def target_offsets(self) -> np.ndarray:
        return np.arange(1, self.horizon + 1)

    def inputs(self, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
        """(n, lookback, features) float32 for the selected windows.

        Each window is one contiguous block of `data`, so indexing a strided view of all
        windows copies whole blocks (several times faster than gathering single rows).
        """
        view = np.lib.stride_tricks.sliding_window_view(self.data, self.lookback, axis=0)
        return view.transpose(0, 2, 1)[self.origins[rows] - self.lookback + 1]

    def targets(self, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
        """(n, horizon) float32: the target at +1 .. +horizon steps after each origin."""
        view = np.lib.stride_tricks.sliding_window_view(self.target, self.horizon)
        return view[self.origins[rows] + 1]

    def batches(self, size: int = 4096):
        """(inputs, targets) for consecutive blocks of `size` windows, to bound memory."""
        for start in range(0, len(self), size):
            rows = slice(start, start + size)
            yield self.inputs(rows), self.targets(rows)

    def origin_times(self) -> pd.DatetimeIndex:
        return self.times[self.origins]

    def select(self, keep: np.ndarray) -> Windows:
        """The same series with fewer windows (boolean mask over origins)."""
        return replace(self, origins=self.origins[keep])

    def at_hours(self, hours: frozenset[int] | None) -> Windows:
        """The windows whose origin falls in `hours` of the day (UTC); all of them for None."""
        if hours is None:
            return self
        return self.select(np.isin(self.origin_times().hour, sorted(hours)))

    def preferring_hours(self, hours: frozenset[int] | None) -> Windows:
        """`at_hours(hours)`, or every window when none is from those hours."""
        there = self.at_hours(hours)
        return there if len(there) else self

    def between(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> Windows:
        """Windows whose inputs end at or after `start` and whose targets end before `end`."""
        keep = np.ones(len(self.origins), bool)
        if start is not None:
            keep &= self.times[self.origins] >= start
        if end is not None:
            last_target = np.minimum(self.origins + self.horizon, len(self.times) - 1)
            keep &= self.times[last_target] < end
        return self.select(keep)


def pooled(windows: list[Windows]) -> Windows:
    """The windows of several series (same columns, lookback and horizon) as one: their
    series laid end to end, each window still inside its own series."""
    first = windows[0]
    if any((w.columns, w.lookback, w.horizon) != (first.columns, first.lookback, first.horizon)
           for w in windows):
        raise ValueError("pooled windows need the same columns, lookback and horizon")
    starts = np.cumsum([0] + [len(w.data) for w in windows[:-1]])
    times = pd.DatetimeIndex(np.concatenate([w.times.values for w in windows]))
    if first.times.tz is not None:  # `values` are UTC
        times = times.tz_localize("UTC").tz_convert(first.times.tz)
    return Windows(np.concatenate([w.data for w in windows]),
                   np.concatenate([w.target for w in windows]), times,
                   np.concatenate([w.origins + start for w, start in zip(windows, starts)]),
                   first.lookback, first.horizon, first.target_index, first.columns)


def make_windows(features: pd.DataFrame, target: str, lookback: int, horizon: int,
                 target_missing: np.ndarray | None = None) -> Windows:
    """Every window whose inputs have no NaN and whose targets are all present.

    Targets are present where `target_missing` is False; without it, a target row counts
    only when its whole feature row is present.
    """
    data = features.to_numpy(np.float32)
    target_index = features.columns.get_loc(target)
    values = data[:, target_index]
    bad = np.isnan(data).any(axis=1)
    bad_target = bad if target_missing is None else np.asarray(target_missing, bool)
    seen = np.concatenate([[0], np.cumsum(bad)])
    seen_target = np.concatenate([[0], np.cumsum(bad_target)])
    last = len(values) - horizon - 1  # last origin with a full target path
    origins = np.arange(lookback - 1, max(last + 1, lookback - 1), dtype=np.int64)
    clean = (seen[origins + 1] - seen[origins - lookback + 1] == 0) & \
        (seen_target[origins + horizon + 1] - seen_target[origins + 1] == 0)
    return Windows(data, values, features.index, origins[clean], lookback, horizon,
                   target_index, tuple(features.columns))


def latest_input(features: pd.DataFrame, lookback: int) -> np.ndarray | None:
    """The newest complete input window (1, lookback, features), or None if it has holes."""
    data = features.to_numpy(np.float32)[-lookback:]
    if len(data) < lookback or np.isnan(data).any():
        return None
    return data[None]
