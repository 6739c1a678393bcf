"""The network families: one small functional builder per family, and `NetworkForecaster`,
which fits one with early stopping, saves it as `.keras` (safe mode) and loads it.

Every family reads each window relative to its own last values (reversible instance
normalisation) and learns a correction to a strong statistical base forecast (the linear
blend or the ridge model of `forecasting.models.linear`), which it takes as its second input. The
correction layer starts at zero, so an untrained network *is* that base, and training can
only move it away where that lowers the validation error. This keeps a network trained on
a short rolling window honest when the season moves under it, and leaves the daily cycle,
which a few months of data teach a network poorly, to the base.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from forecasting.models.quiet import tensorflow_noise_filtered

with tensorflow_noise_filtered():
    import keras
    import tensorflow as tf
    from keras import layers, ops

from forecasting.config import ForecastParams
from forecasting.models.families import read_meta, write_meta
from forecasting.models.linear import LINEAR, LinearForecaster
from forecasting.scoring.backtest import predict_windows
from forecasting.windows import Windows

@dataclass(frozen=True)
class Normalization:
    """Statistics fitted on the training slice only; saved inside and beside the model."""

    scale: tuple[float, ...]  # per input feature
    relative: tuple[bool, ...]  # per input feature: subtract the window's last value?
    target_index: int
    target_scale: float

    @classmethod
    def fit(cls, train_data: np.ndarray, relative: np.ndarray, target_index: int) -> Normalization:
        """Per-feature standard deviation of the training rows (NaN-safe, never zero)."""
        std = np.nanstd(train_data.astype(np.float64), axis=0)
        std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
        return cls(tuple(float(s) for s in std), tuple(bool(r) for r in relative),
                   int(target_index), float(std[target_index]))

    def to_dict(self) -> dict:
        return asdict(self)


@keras.saving.register_keras_serializable(package="sensorcast")
class RelativeToLast(layers.Layer):
    """x -> (x - x_last * relative) / scale, per window."""

    def __init__(self, scale, relative, **kwargs):
        super().__init__(**kwargs)
        self.scale = [float(s) for s in scale]
        self.relative = [float(r) for r in relative]

    def call(self, x):
        last = x[:, -1:, :]
        return (x - last * ops.convert_to_tensor(self.relative, dtype=x.dtype)) / \
            ops.convert_to_tensor(self.scale, dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "relative": self.relative}


@keras.saving.register_keras_serializable(package="sensorcast")
class AddCorrection(layers.Layer):
    """(correction, base path) -> base + correction * target_scale, in target units."""

    def __init__(self, target_scale, **kwargs):
        super().__init__(**kwargs)
        self.target_scale = float(target_scale)

    def call(self, inputs):
        correction, base = inputs
        return base + correction * self.target_scale

    def get_config(self):
        return {**super().get_config(), "target_scale": self.target_scale}


@keras.saving.register_keras_serializable(package="sensorcast")
class BaseChange(layers.Layer):
    """(base path, window) -> the base's change from the last target value, scaled."""

    def __init__(self, target_index, target_scale, **kwargs):
        super().__init__(**kwargs)
        self.target_index = int(target_index)
        self.target_scale = float(target_scale)

    def call(self, inputs):
        base, window = inputs
        return (base - window[:, -1, self.target_index][:, None]) / self.target_scale

    def get_config(self):
        return {**super().get_config(), "target_index": self.target_index,
                "target_scale": self.target_scale}


def _forecaster(name: str, input_shape: tuple[int, int], horizon: int, norm: Normalization,
                core: Callable) -> keras.Model:
    """Shared frame: relative inputs -> core, beside the base's own change ->
    zero-initialised correction -> base + correction."""
    window = keras.Input(shape=input_shape, name="window")
    base = keras.Input(shape=(horizon,), name="base")
    x = RelativeToLast(norm.scale, norm.relative, name="relative_to_last")(window)
    change = BaseChange(norm.target_index, norm.target_scale, name="base_change")([base, window])
    features = layers.Concatenate(name="features")([core(x), change])
    correction = layers.Dense(horizon, kernel_initializer="zeros", name="correction")(features)
    path = AddCorrection(norm.target_scale, name="forecast")([correction, base])
    return keras.Model([window, base], path, name=name)


def _gru(units: int, **kwargs) -> layers.GRU:
    """The original GRU formulation (reset gate before the matrix product, as in Keras 2):
    on CPU under XLA it trains 10-40 % faster than `reset_after=True`, which only cuDNN needs."""
    return layers.GRU(units, reset_after=False, **kwargs)


def build_gru(input_shape, horizon, norm, units=32) -> keras.Model:
    return _forecaster("gru", input_shape, horizon, norm, _gru(units))


def build_gru_dropout(input_shape, horizon, norm, units=32, dropout=0.2,
                      recurrent_dropout=0.2) -> keras.Model:
    core = _gru(units, dropout=dropout, recurrent_dropout=recurrent_dropout)
    return _forecaster("gru_dropout", input_shape, horizon, norm, core)


def build_stacked_gru(input_shape, horizon, norm, units=32, dropout=0.1,
                      recurrent_dropout=0.5) -> keras.Model:
    first = _gru(units, dropout=dropout, recurrent_dropout=recurrent_dropout,
                 return_sequences=True)
    second = _gru(2 * units, dropout=dropout, recurrent_dropout=recurrent_dropout)
    return _forecaster("stacked_gru", input_shape, horizon, norm, lambda x: second(first(x)))


def build_bidirectional_gru(input_shape, horizon, norm, units=32) -> keras.Model:
    core = layers.Bidirectional(_gru(units))
    return _forecaster("bidirectional_gru", input_shape, horizon, norm, core)


BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "gru": build_gru,
    "gru_dropout": build_gru_dropout,
    "stacked_gru": build_stacked_gru,
    "bidirectional_gru": build_bidirectional_gru,
}


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


class GiveUp(keras.callbacks.Callback):
    """Stop after `epochs` epochs when none of them beat the base on validation: such a
    network keeps its base anyway, and its remaining epochs would only cost time."""

    def __init__(self, base_loss: float, epochs: int) -> None:
        super().__init__()
        self.base_loss, self.epochs, self.best = base_loss, epochs, float("inf")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.best = min(self.best, (logs or {}).get("val_loss", float("inf")))
        if epoch + 1 >= self.epochs and self.best >= self.base_loss:
            self.model.stop_training = True


def same_shape(one: keras.Model, other: keras.Model) -> bool:
    """Whether `one`'s weights fit `other` (same layers, same shapes)."""
    mine, theirs = one.get_weights(), other.get_weights()
    return len(mine) == len(theirs) and all(a.shape == b.shape for a, b in zip(mine, theirs))


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

    def fit(self, train: Windows, validation: Windows, start: NetworkForecaster | None = None,
            start_label: str = "") -> NetworkForecaster:
        """Train on `train` (its base, unless given, is fitted on the same windows). With
        `start`, a network of the same family and shape fitted on earlier data (named
        `start_label` in the record), fine-tune its weights for at most `warm_epochs`
        instead of training from zero (nor more than `epochs`). A network that never beats
        its base on validation keeps the base; one that has not beaten it after
        `give_up_epochs` stops there."""
        p = self.params
        if self.base is None:
            self.base = LINEAR[p.network_base](p).fit(train, validation)
        keras.utils.set_random_seed(p.seed)
        train_rows = train.data[: int(train.origins.max()) + train.horizon + 1]
        norm = Normalization.fit(train_rows, self.relative, train.target_index)
        self.model = BUILDERS[self.family](
            (train.lookback, train.data.shape[1]), train.horizon, norm, units=p.units)
        warm = start is not None and same_shape(start.model, self.model)
        # Fine-tuning takes smaller steps: the full rate would first undo what it starts from.
        rate = p.learning_rate / 10 if warm else p.learning_rate
        self.model.compile(optimizer=keras.optimizers.Adam(rate), loss="mae",
                           jit_compile=p.jit_compile)
        val_data = window_dataset(validation, predict_windows(self.base, validation),
                                  p.batch_size)
        base_weights = self.model.get_weights()  # a zero correction: the base itself
        base_loss = self.model.evaluate(val_data, verbose=0)
        if warm:
            self.model.set_weights(start.model.get_weights())
            start_weights, start_loss = start.model.get_weights(), \
                self.model.evaluate(val_data, verbose=0)
        epochs = min(p.warm_epochs, p.epochs) if warm else p.epochs
        history = self.model.fit(
            window_dataset(train, predict_windows(self.base, train), p.batch_size,
                           shuffle=True, seed=p.seed),
            validation_data=val_data,
            epochs=epochs,
            callbacks=[keras.callbacks.EarlyStopping(patience=p.patience,
                                                     restore_best_weights=True),
                       GiveUp(base_loss, p.give_up_epochs)],
            shuffle=False,  # the dataset shuffles itself
            verbose=0,
        )
        self.epochs_run = len(history.history["loss"])
        losses = history.history["val_loss"]
        if warm and start_loss <= min(losses):
            self.model.set_weights(start_weights)  # fine-tuning did not improve on it
        best = min([*losses, start_loss] if warm else losses)
        kept_base = best >= base_loss
        if kept_base:
            self.model.set_weights(base_weights)  # training never beat the base
        data_end = str(validation.times[validation.origins[-1] + validation.horizon])
        self.training = {"epochs_run": self.epochs_run, "epochs_max": epochs,
                         "best_epoch": int(np.argmin(losses)) + 1,
                         "best_val_mae": float(best), "base_val_mae": float(base_loss),
                         "first_epoch_mae": float(history.history["loss"][0]),
                         "stopped_early": self.epochs_run < epochs, "kept_base": kept_base,
                         "gave_up": kept_base and self.epochs_run <= p.give_up_epochs < epochs,
                         "warm_start": start_label if warm else None,
                         # when the chain of fine-tunings began (from zero): a refresh is due
                         # `network_refresh_days` after it
                         "trained_from_zero_to": (start.training.get("trained_from_zero_to",
                                                                     data_end)
                                                  if warm else data_end)}
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
        norm = {"scale": self.model.get_layer("relative_to_last").scale,
                "relative": self.relative.tolist()}
        write_meta(directory, {"family": self.family,
                               "params": self.params.model_dump(mode="json"),
                               "columns": list(self.columns), "normalization": norm,
                               "epochs_run": self.epochs_run, "training": self.training})
        self.model.save(Path(directory) / MODEL_FILE)
        self.base.save(Path(directory) / BASE_DIR)
        return Path(directory)

    @classmethod
    def load(cls, directory: Path) -> NetworkForecaster:
        """Load with Keras safe mode (no arbitrary code from the file)."""
        directory = Path(directory)
        meta = read_meta(directory)
        model = keras.saving.load_model(directory / MODEL_FILE, safe_mode=True)
        forecaster = cls(meta["family"], ForecastParams(**meta["params"]),
                         np.array(meta["normalization"]["relative"], bool),
                         LinearForecaster.load(directory / BASE_DIR))
        forecaster.model = model
        forecaster.columns = tuple(meta["columns"])
        forecaster.epochs_run = meta["epochs_run"]
        forecaster.training = meta.get("training", {})
        return forecaster
