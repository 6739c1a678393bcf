"""Training a candidate on a rolling window: split, fit with early stopping, save, load."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from forecasting.config import ForecastParams
from forecasting.features import build_features
from forecasting.models import BUILDERS, Normalization
from forecasting.schema import StationSchema
from forecasting.windows import NotEnoughData, Windows, make_windows

MODEL_FILE = "model.keras"
META_FILE = "model.json"


def model_name(station: StationSchema, params: ForecastParams) -> str:
    """Registry name of the forecast: target column and horizon, e.g. `t_degc_24h`."""
    return f"{station.target_channel.column}_{params.horizon_hours}h"


def library_versions() -> dict[str, str]:
    return {"keras": keras.__version__, "tensorflow": tf.__version__,
            "numpy": np.__version__, "pandas": pd.__version__}


def set_tensorflow_threads(threads: int) -> bool:
    """Run each TensorFlow op on `threads` threads in this process (0: leave TensorFlow's
    default); True when in effect.

    A GRU step multiplies matrices too small to share out: on 2 cores, a second thread per op
    made GRU(32) training no faster at best and half as fast in random stretches, and a whole
    retrain of the four families took 43-45 s on one thread against 47-53 s on two. TensorFlow
    fixes the number at its first op, so this must run before; afterwards it changes nothing.
    """
    if threads == 0:  # TensorFlow's own choice, whatever it was started with
        return True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow is already running with another setting
        return False
    return True


def recent(frame: pd.DataFrame, days: float, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """The last `days` of observations up to `end` (default: the newest row)."""
    if frame.empty:
        return frame
    end = frame.index[-1] if end is None else end
    return frame[(frame.index > end - pd.Timedelta(days=days)) & (frame.index <= end)]


def station_windows(frame: pd.DataFrame, station: StationSchema,
                    params: ForecastParams) -> tuple[Windows, np.ndarray]:
    """Features and every complete window of a frame of observations."""
    for name, minutes in (("lookback_hours", params.lookback_hours * 60),
                          ("horizon_hours", params.horizon_hours * 60)):
        if minutes % params.step_minutes or params.step_minutes % station.cadence_minutes:
            raise ValueError(f"{name} and the station cadence must be whole multiples of "
                             f"step_minutes={params.step_minutes}")
    features, relative, target_missing = build_features(frame, station, params)
    windows = make_windows(
        features,
        station.target_channel.column,
        params.lookback_steps,
        params.horizon_steps,
        target_missing,
    )
    return windows, relative


@dataclass(frozen=True)
class Split:
    train: Windows
    validation: Windows
    holdout: Windows


def split_windows(windows: Windows, validation_fraction: float,
                  holdout_fraction: float) -> Split:
    """Chronological train / validation / holdout; no target crosses into a later part."""
    if not len(windows):
        raise NotEnoughData(
            f"no complete window: need {windows.lookback + windows.horizon} consecutive "
            f"samples without long gaps, have {len(windows.times)} samples"
        )
    first = windows.origin_times()[0]
    last = windows.times[windows.origins[-1] + windows.horizon]
    span = last - first
    holdout_start = last - span * holdout_fraction
    validation_start = holdout_start - span * validation_fraction
    split = Split(
        windows.between(None, validation_start),
        windows.between(validation_start, holdout_start),
        windows.between(holdout_start, None),
    )
    counts = {k: len(getattr(split, k)) for k in ("train", "validation", "holdout")}
    if min(counts.values()) == 0:
        raise NotEnoughData(
            f"too little data for a train/validation/holdout split: {counts} windows "
            f"from {len(windows)} complete windows ({first} .. {last})"
        )
    return split


def window_dataset(windows: Windows, batch_size: int, shuffle: bool = False,
                   seed: int = 0) -> tf.data.Dataset:
    """Batches gathered by index from one in-memory copy of the series (no per-sample loop)."""
    data = tf.constant(windows.data)
    target = tf.constant(windows.target)
    input_offsets = tf.constant(windows.input_offsets, tf.int64)
    target_offsets = tf.constant(windows.target_offsets, tf.int64)
    dataset = tf.data.Dataset.from_tensor_slices(windows.origins)
    if shuffle:
        dataset = dataset.shuffle(len(windows.origins), seed=seed, reshuffle_each_iteration=True)

    def gather(origins):
        return (tf.gather(data, origins[:, None] + input_offsets),
                tf.gather(target, origins[:, None] + target_offsets))

    # Shuffled (training) batches all have the same shape, so XLA compiles the step once
    # rather than again for each epoch's short last batch; the dropped windows differ by epoch.
    drop = shuffle and len(windows.origins) >= batch_size
    # One gather per batch is ~0.1 ms; parallel map threads would only compete with training.
    return dataset.batch(batch_size, drop_remainder=drop).map(gather) \
        .prefetch(tf.data.AUTOTUNE)


class NetworkForecaster:
    """A candidate family trained with early stopping; never worse on validation than
    the persistence it starts from."""

    def __init__(self, family: str, params: ForecastParams, relative: np.ndarray) -> None:
        if family not in BUILDERS:
            raise ValueError(f"unknown family {family!r}; choose from {sorted(BUILDERS)}")
        self.name = self.family = family
        self.params = params
        self.relative = np.asarray(relative, bool)
        self.model: keras.Model | None = None
        self.epochs_run = 0
        self.columns: tuple[str, ...] = ()

    def fit(self, train: Windows, validation: Windows) -> NetworkForecaster:
        p = self.params
        keras.utils.set_random_seed(p.seed)
        train_rows = train.data[: int(train.origins.max()) + train.horizon + 1]
        norm = Normalization.fit(train_rows, self.relative, train.target_index)
        self.model = BUILDERS[self.family](
            (train.lookback, train.data.shape[1]), train.horizon, norm, units=p.units)
        self.model.compile(optimizer=keras.optimizers.Adam(p.learning_rate), loss="mae",
                           jit_compile=p.jit_compile)
        val_data = window_dataset(validation, p.batch_size)
        start_weights = self.model.get_weights()
        start_loss = self.model.evaluate(val_data, verbose=0)
        history = self.model.fit(
            window_dataset(train, p.batch_size, shuffle=True, seed=p.seed),
            validation_data=val_data,
            epochs=p.epochs,
            callbacks=[keras.callbacks.EarlyStopping(
                patience=p.patience, restore_best_weights=True)],
            shuffle=False,  # the dataset shuffles itself
            verbose=0,
        )
        self.epochs_run = len(history.history["loss"])
        if min(history.history["val_loss"]) >= start_loss:
            self.model.set_weights(start_weights)  # training never beat persistence
        self.columns = train.columns
        return self

    def predict(self, inputs: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Batches through one traced function (`model.predict` retraces on every call)."""
        inputs = np.asarray(inputs, np.float32)
        return np.concatenate([self.model.predict_on_batch(inputs[i:i + batch_size])
                               for i in range(0, len(inputs), batch_size)])

    def save(self, directory: Path) -> Path:
        """`model.keras` plus `model.json` (family, parameters, feature names, normalization)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MODEL_FILE
        self.model.save(path)
        norm = {"scale": self.model.get_layer("relative_to_last").scale,
                "relative": self.relative.tolist()}
        meta = {"family": self.family, "params": self.params.model_dump(mode="json"),
                "columns": list(self.columns), "normalization": norm,
                "epochs_run": self.epochs_run}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, directory: Path) -> NetworkForecaster:
        """Load with Keras safe mode (no arbitrary code from the file)."""
        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        forecaster = cls(meta["family"], ForecastParams(**meta["params"]),
                         np.array(meta["normalization"]["relative"], bool))
        forecaster.model = keras.saving.load_model(directory / MODEL_FILE, safe_mode=True)
        forecaster.columns = tuple(meta["columns"])
        forecaster.epochs_run = meta["epochs_run"]
        return forecaster
