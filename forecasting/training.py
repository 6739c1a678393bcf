"""Training a network candidate: windows, batches, fit with early stopping, save, load."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from forecasting.config import ForecastParams
from forecasting.evaluation import predict_windows
from forecasting.linear import LINEAR, META_FILE, LinearForecaster, load_linear
from forecasting.models import BUILDERS, Normalization
from forecasting.windows import Windows

MODEL_FILE = "model.keras"
BASE_DIR = "base"


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


def window_dataset(windows: Windows, base: np.ndarray, batch_size: int, shuffle: bool = False,
                   seed: int = 0) -> tf.data.Dataset:
    """((window, base path), target) batches gathered by index from one in-memory copy of
    the series (no per-sample loop); `base` holds the base forecast of each window."""
    data = tf.constant(windows.data)
    target = tf.constant(windows.target)
    input_offsets = tf.constant(windows.input_offsets, tf.int64)
    target_offsets = tf.constant(windows.target_offsets, tf.int64)
    dataset = tf.data.Dataset.from_tensor_slices((windows.origins, base.astype(np.float32)))
    if shuffle:
        dataset = dataset.shuffle(len(windows.origins), seed=seed, reshuffle_each_iteration=True)

    def gather(origins, base_rows):
        return ((tf.gather(data, origins[:, None] + input_offsets), base_rows),
                tf.gather(target, origins[:, None] + target_offsets))

    # Shuffled (training) batches all have the same shape, so XLA compiles the step once
    # rather than again for each epoch's short last batch; the dropped windows differ by epoch.
    drop = shuffle and len(windows.origins) >= batch_size
    # One gather per batch is ~0.1 ms; parallel map threads would only compete with training.
    return dataset.batch(batch_size, drop_remainder=drop).map(gather) \
        .prefetch(tf.data.AUTOTUNE)


class NetworkForecaster:
    """A candidate family that learns, with early stopping, a correction to a linear base
    forecast; never worse on validation than the base it starts from."""

    def __init__(self, family: str, params: ForecastParams, relative: np.ndarray,
                 base: LinearForecaster | None = None) -> None:
        if family not in BUILDERS:
            raise ValueError(f"unknown family {family!r}; choose from {sorted(BUILDERS)}")
        self.name = self.family = family
        self.params = params
        self.relative = np.asarray(relative, bool)
        self.base = base
        self.model: keras.Model | None = None
        self.epochs_run = 0
        self.training: dict = {}  # how the fit went, in words for the run's logs
        self.columns: tuple[str, ...] = ()

    def fit(self, train: Windows, validation: Windows) -> NetworkForecaster:
        """Train on `train` (its base, unless given, is fitted on the same windows)."""
        p = self.params
        if self.base is None:
            self.base = LINEAR[p.network_base](p).fit(train, validation)
        keras.utils.set_random_seed(p.seed)
        train_rows = train.data[: int(train.origins.max()) + train.horizon + 1]
        norm = Normalization.fit(train_rows, self.relative, train.target_index)
        self.model = BUILDERS[self.family](
            (train.lookback, train.data.shape[1]), train.horizon, norm, units=p.units)
        self.model.compile(optimizer=keras.optimizers.Adam(p.learning_rate), loss="mae",
                           jit_compile=p.jit_compile)
        val_data = window_dataset(validation, predict_windows(self.base, validation),
                                  p.batch_size)
        start_weights = self.model.get_weights()
        start_loss = self.model.evaluate(val_data, verbose=0)
        history = self.model.fit(
            window_dataset(train, predict_windows(self.base, train), p.batch_size,
                           shuffle=True, seed=p.seed),
            validation_data=val_data,
            epochs=p.epochs,
            callbacks=[keras.callbacks.EarlyStopping(
                patience=p.patience, restore_best_weights=True)],
            shuffle=False,  # the dataset shuffles itself
            verbose=0,
        )
        self.epochs_run = len(history.history["loss"])
        losses = history.history["val_loss"]
        kept_base = min(losses) >= start_loss
        if kept_base:
            self.model.set_weights(start_weights)  # training never beat the base
        self.training = {"epochs_run": self.epochs_run, "epochs_max": p.epochs,
                         "best_epoch": int(np.argmin(losses)) + 1,
                         "best_val_mae": float(min(losses)), "base_val_mae": float(start_loss),
                         "stopped_early": self.epochs_run < p.epochs, "kept_base": kept_base}
        self.columns = train.columns
        return self

    def predict(self, inputs: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Batches through one traced function (`model.predict` retraces on every call)."""
        inputs = np.asarray(inputs, np.float32)
        base = np.asarray(self.base.predict(inputs), np.float32)
        return np.concatenate([
            self.model.predict_on_batch([inputs[i:i + batch_size], base[i:i + batch_size]])
            for i in range(0, len(inputs), batch_size)])

    def save(self, directory: Path) -> Path:
        """`model.keras`, `model.json` (family, parameters, feature names, normalization)
        and the base model's plain arrays in `base/`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MODEL_FILE
        self.model.save(path)
        self.base.save(directory / BASE_DIR)
        norm = {"scale": self.model.get_layer("relative_to_last").scale,
                "relative": self.relative.tolist()}
        meta = {"family": self.family, "params": self.params.model_dump(mode="json"),
                "columns": list(self.columns), "normalization": norm,
                "epochs_run": self.epochs_run, "training": self.training}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, directory: Path) -> NetworkForecaster:
        """Load with Keras safe mode (no arbitrary code from the file)."""
        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        model = keras.saving.load_model(directory / MODEL_FILE, safe_mode=True)
        forecaster = cls(meta["family"], ForecastParams(**meta["params"]),
                         np.array(meta["normalization"]["relative"], bool),
                         load_linear(directory / BASE_DIR))
        forecaster.model = model
        forecaster.columns = tuple(meta["columns"])
        forecaster.epochs_run = meta["epochs_run"]
        forecaster.training = meta.get("training", {})
        return forecaster
