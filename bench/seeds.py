"""The seeds' experiment pieces (Chollet, Deep Learning with Python, ch. 6), for benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.station.schema import JENA


def load_jena_csv(csv: Path) -> pd.DataFrame:
    """A Jena-format file as a frame (SQL column names, local time index), as the seeds read it:
    every row in file order; -9999 sentinels become NaN and are interpolated."""
    frame = pd.read_csv(csv, encoding="latin-1", skipinitialspace=True)
    frame.columns = [c.strip() for c in frame.columns]
    index = pd.to_datetime(frame.pop(JENA.timestamp_column), format=JENA.timestamp_format)
    frame = frame[JENA.sources].set_axis(JENA.columns, axis=1).set_axis(index, axis=0)
    return frame.mask(frame < -9000).interpolate(limit_area="inside")


def seeds_generator(data, lookback, delay, min_index, max_index, shuffle=False,
                    batch_size=128, step=6, target_column=1):
    """Chollet's generator (Deep Learning with Python, ch. 6), as the seeds ran it."""
    if max_index is None:
        max_index = len(data) - delay - 1
    i = min_index + lookback
    while True:
        if shuffle:
            rows = np.random.randint(min_index + lookback, max_index, size=batch_size)
        else:
            if i + batch_size >= max_index:
                i = min_index + lookback
            rows = np.arange(i, min(i + batch_size, max_index))
            i += len(rows)
        samples = np.zeros((len(rows), lookback // step, data.shape[-1]))
        targets = np.zeros((len(rows),))
        for j, row in enumerate(rows):
            indices = range(rows[j] - lookback, rows[j], step)
            samples[j] = data[indices]
            targets[j] = data[rows[j] + delay][target_column]
        yield samples, targets
