"""Candidate networks: one small functional builder per family.

Every family reads each window relative to its own last values (reversible instance
normalisation) and learns a correction to a strong statistical base forecast (the linear
blend or the ridge model of `forecasting.linear`), which it takes as its second input. The
correction layer starts at zero, so an untrained network *is* that base, and training can
only move it away where that lowers the validation error. This keeps a network trained on
a short rolling window honest when the season moves under it, and leaves the daily cycle,
which a few months of data teach a network poorly, to the base.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import keras
import numpy as np
from keras import layers, ops


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
