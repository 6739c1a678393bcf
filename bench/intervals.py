"""Benchmark (not a test): are the prediction intervals honest a month out?

On a simulated year per seed, at cut-offs across the seasons: fit the ridge candidate on a
registration backtest (3 folds of 7 days) of the data before the cut-off, calibrate its
intervals on the folds' errors, then score hourly forecasts over the following 30 days.
Prints the coverage of each interval (mean, lowest and highest over the 24 horizons).

    .venv/bin/python bench/intervals.py [--seeds 21 5] [--days 365]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.candidates import fit_candidates
from forecasting.config import ForecastParams
from forecasting.scoring.backtest import Backtest, predict_windows, rolling_folds
from forecasting.features import station_windows
from forecasting.scoring.intervals import LEVELS, bounds, calibrate
from forecasting.station.schema import JENA
from forecasting.station.simulate import simulate_station
from registry.ingestion import ingest_file
from registry.observations import read_observations
from registry.store import open_store

CUTOFF_DAYS = (40, 80, 110, 150, 200, 250, 300)


def observations(seed: int, days: int, folder: Path) -> pd.DataFrame:
    """A simulated station, through the product's own ingest, as the models read it."""
    from forecasting.station.simulate import write_station_csv

    path = write_station_csv(folder / f"station-{seed}.csv",
                             simulate_station("2021-01-01", days, seed))
    store = open_store(f"sqlite:///{folder / f'station-{seed}.db'}", JENA)
    ingest_file(store, path, 50_000)
    with store.sessions() as session:
        frame = read_observations(session, store.observations)
    store.close()
    return frame


def coverage(forecasts, actual, offsets, level) -> np.ndarray:
    lower, upper = (np.stack(b) for b in zip(*(bounds(f, offsets, level) for f in forecasts)))
    return ((actual >= lower) & (actual <= upper)).mean(axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[21, 5])
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    params = ForecastParams(lookback_hours=48, families=("ridge",))
    hourly = params.hourly_steps
    print(f"{'seed':>4} {'cut-off':>10} {'level':>5}  {'mean  min   max':>16}")
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            frame = observations(seed, args.days, Path(work))
            later, _ = station_windows(frame, JENA, params)
            for days in (d for d in CUTOFF_DAYS if d + 30 < args.days):
                cut = frame.index[0] + pd.Timedelta(days=days)
                windows, relative = station_windows(frame[frame.index <= cut], JENA, params)
                folds = rolling_folds(windows, params.folds, params.fold_days,
                                      params.validation_days, params.backtest_days)
                backtest = Backtest.assemble(folds, [fit_candidates(f, params, relative, work)
                                                     for f in folds])
                offsets = calibrate(backtest.residuals("ridge")[:, hourly])
                month = later.between(cut, cut + pd.Timedelta(days=30))
                forecasts = predict_windows(backtest.models["ridge"], month)[:, hourly]
                actual = month.targets()[:, hourly]
                for level in LEVELS:
                    c = coverage(forecasts, actual, offsets, level)
                    print(f"{seed:>4} {cut:%Y-%m-%d} {level:>4}%  {c.mean():>4.3f} "
                          f"{c.min():.3f} {c.max():.3f}", flush=True)


if __name__ == "__main__":
    main()
