"""Benchmark: our window pipeline and GRU training vs the seeds' generator style, one run.

(a) time to build one batch of 128 windows (10-day lookback sampled hourly, 14+ channels):
    the seeds' per-sample Python generator vs our vectorized gather (NumPy and tf.data);
(b) training samples/s of GRU(32) (median of 5 timed fits, the two pipelines in turns), and
    validation MAE (degC, +24 h) after the same number
    of training samples: the seeds' style (`model.fit` on a Python generator of float64
    batches of 128, absolute normalised target) vs our pipeline (tf.data float32 gather,
    XLA, relative-to-last GRU correcting the ridge forecast). Both run with the product's
    `tensorflow_threads` (1 thread per op); `--threads 0` gives TensorFlow's default to both.

    .venv/bin/python bench/train.py [--csv jena_climate_2009_2016.csv] [--samples 38400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from forecasting.config import ForecastParams
from flows.settings import Settings
from forecasting.scoring.backtest import predict_windows
from forecasting.features import station_windows
from forecasting.models.linear import LINEAR
from forecasting.models.networks import BUILDERS, Normalization
from forecasting.station.schema import JENA
from forecasting.station.simulate import simulated_observations
from forecasting.models.networks import set_tensorflow_threads, window_dataset

sys.path.insert(0, str(Path(__file__).parent))
from seeds import load_jena_csv, seeds_generator

LOOKBACK, STEP, DELAY, BATCH = 1440, 6, 144, 128


def per_batch(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def interleaved_rates(runs: list[tuple[keras.Model, object, int, int]],
                      rounds: int = 5) -> list[list[float]]:
    """Samples/s of each (model, data, steps, batch) over `rounds` timed `fit` calls, taken
    in turns (A B A B ...) after a warm-up of each.

    A shared machine's speed drifts between fits, so timing one pipeline after the other
    can favour whichever goes first; taking turns gives both the same conditions. The
    warm-up pays the one-off tracing (XLA compiling), outside the timed fits.
    """
    for model, data, _, _ in runs:
        model.fit(data, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
    rates: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for (model, data, steps, batch), rate in zip(runs, rates):
            start = time.perf_counter()
            model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
            rate.append(steps * batch / (time.perf_counter() - start))
    return rates


def load(csv: Path | None, days: int) -> pd.DataFrame:
    if csv is None:
        return simulated_observations("2012-01-01", days, seed=3)
    return load_jena_csv(csv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--samples", type=int, default=38_400, help="training samples each")
    parser.add_argument("--threads", type=int, default=Settings().tensorflow_threads,
                        help="threads per TensorFlow op (0: TensorFlow's default)")
    args = parser.parse_args()
    set_tensorflow_threads(args.threads)
    frame = load(args.csv, args.days)
    target_col = JENA.columns.index(JENA.target_channel.column)

    # The seeds' data: all channels normalised with train-slice statistics, float64.
    raw = frame.interpolate(limit_area="inside").to_numpy(np.float64)
    n_train = int(len(raw) * 0.6)
    n_val = int(len(raw) * 0.8)
    mean, std = raw[:n_train].mean(axis=0), raw[:n_train].std(axis=0)
    data = (raw - mean) / std
    train_gen = seeds_generator(data, LOOKBACK, DELAY, 0, n_train, shuffle=True,
                                target_column=target_col)
    val_gen = seeds_generator(data, LOOKBACK, DELAY, n_train + 1, n_val,
                              target_column=target_col)

    # Ours: hourly samples, derived features, same periods.
    params = ForecastParams()
    windows, relative = station_windows(frame, JENA, params)
    cut_train, cut_val = frame.index[n_train], frame.index[n_val]
    ours_train = windows.between(None, cut_train)
    ours_val = windows.between(cut_train, cut_val)
    base = LINEAR[params.network_base](params).fit(ours_train)  # what the GRU corrects
    train_base = predict_windows(base, ours_train)
    rng = np.random.default_rng(0)

    # (a) one batch of 128 windows
    seeds_s = per_batch(lambda: next(train_gen), 30)
    numpy_s = per_batch(lambda: ours_train.inputs(rng.integers(0, len(ours_train), BATCH)), 200)
    batches = iter(window_dataset(ours_train, train_base, BATCH, shuffle=True).repeat())
    tfdata_s = per_batch(lambda: next(batches), 200)
    print(f"(a) batch of {BATCH} windows: seeds' generator {seeds_s * 1e3:.2f} ms, "
          f"ours NumPy gather {numpy_s * 1e3:.3f} ms ({seeds_s / numpy_s:.0f}x), "
          f"ours tf.data {tfdata_s * 1e3:.3f} ms ({seeds_s / tfdata_s:.0f}x)")

    # (b) training throughput and validation MAE after the same number of samples
    steps = args.samples // BATCH // 5
    keras.utils.set_random_seed(0)
    seeds_model = keras.Sequential([keras.Input((None, data.shape[-1])),
                                    keras.layers.GRU(32), keras.layers.Dense(1)])
    seeds_model.compile(optimizer=keras.optimizers.RMSprop(), loss="mae")

    keras.utils.set_random_seed(0)
    train_rows = ours_train.data[: int(ours_train.origins.max()) + ours_train.horizon + 1]
    norm = Normalization.fit(train_rows, relative, ours_train.target_index)
    ours_model = BUILDERS["gru"]((ours_train.lookback, windows.data.shape[1]),
                                 ours_train.horizon, norm, units=32)
    ours_model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss="mae",
                       jit_compile=params.jit_compile)
    ours_steps = args.samples // params.batch_size // 5
    train_data = window_dataset(ours_train, train_base, params.batch_size,
                                shuffle=True).repeat()
    seeds_rates, ours_rates = interleaved_rates([
        (seeds_model, train_gen, steps, BATCH),
        (ours_model, train_data, ours_steps, params.batch_size)])
    seeds_rate, ours_rate = float(np.median(seeds_rates)), float(np.median(ours_rates))
    val_steps = (n_val - n_train - 1 - LOOKBACK) // BATCH
    seeds_mae = seeds_model.evaluate(val_gen, steps=val_steps, verbose=0) * std[target_col]
    val_inputs = ours_val.inputs()
    predicted = ours_model.predict([val_inputs, base.predict(val_inputs)], batch_size=1024,
                                   verbose=0)
    ours_mae = float(np.abs(predicted[:, -1] - ours_val.targets()[:, -1]).mean())
    naive_mae = float(np.abs(ours_val.inputs()[:, -1, ours_val.target_index]
                             - ours_val.targets()[:, -1]).mean())

    threads = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    print(f"(b) GRU(32) training after {5 * steps * BATCH:,} samples each "
          f"({threads} threads per op), "
          "median of 5 timed fits taken in turns after a warm-up (each fit in brackets):")
    print(f"    seeds' style: {seeds_rate:,.0f} samples/s {_rounded(seeds_rates)}, validation "
          f"MAE +24 h {seeds_mae:.2f} degC")
    print(f"    ours (batch {params.batch_size}, XLA {params.jit_compile}): "
          f"{ours_rate:,.0f} samples/s {_rounded(ours_rates)}, validation MAE +24 h "
          f"{ours_mae:.2f} degC  ({ours_rate / seeds_rate:.1f}x)")
    print(f"    persistence on the same validation windows: {naive_mae:.2f} degC")


def _rounded(rates: list[float]) -> list[int]:
    return [round(r) for r in rates]


if __name__ == "__main__":
    main()
