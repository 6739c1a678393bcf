"""Every candidate family trains, saves, reloads and predicts identically."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from forecasting.baselines import Persistence
from forecasting.config import FAMILIES, ForecastParams
from forecasting.models import BUILDERS, Normalization
from forecasting.schema import JENA
from forecasting.simulate import simulated_observations
from forecasting.training import NetworkForecaster, split_windows, station_windows
from forecasting.windows import NotEnoughData

TINY = ForecastParams(lookback_hours=24, horizon_hours=6, epochs=1, units=4, batch_size=64)


@pytest.fixture(scope="module")
def tiny_split():
    windows, relative = station_windows(simulated_observations("2021-02-01", 20, seed=4), JENA,
                                        TINY)
    return split_windows(windows, 0.2, 0.2), relative


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_saves_and_reloads_identically(family, tiny_split, tmp_path):
    split, relative = tiny_split
    model = NetworkForecaster(family, TINY, relative).fit(split.train, split.validation)
    # One epoch on tiny data rarely beats persistence, and then the output layer stays zero:
    # give it weights so that the predictions depend on every saved layer.
    delta = model.model.get_layer("delta")
    kernel, bias = delta.get_weights()
    delta.set_weights([np.random.default_rng(0).normal(0, 0.5, kernel.shape), bias])
    inputs = split.holdout.inputs()
    before = model.predict(inputs)
    assert np.ptp(before, axis=1).max() > 0.01  # not the flat persistence path
    assert before.shape == (len(split.holdout), 6)
    model.save(tmp_path / family)
    after = NetworkForecaster.load(tmp_path / family).predict(inputs)
    np.testing.assert_array_equal(before, after)


def test_training_is_repeatable_for_a_seed_and_differs_for_another():
    """Dropout included: the same seed gives the same trained network, bit for bit."""
    params = ForecastParams(lookback_hours=24, horizon_hours=24, epochs=3, units=8,
                            batch_size=64, learning_rate=1e-2)
    windows, relative = station_windows(simulated_observations("2021-02-01", 30, seed=4), JENA,
                                        params)
    split = split_windows(windows, 0.2, 0.2)

    def trained(seed: int) -> np.ndarray:
        forecaster = NetworkForecaster("gru_dropout", params.model_copy(update={"seed": seed}),
                                       relative).fit(split.train, split.validation)
        return forecaster.predict(split.holdout.inputs())

    first = trained(0)
    assert np.ptp(first, axis=1).max() > 0.1  # trained away from persistence (flat paths)
    np.testing.assert_array_equal(trained(0), first)
    assert np.abs(trained(1) - first).max() > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_untrained_network_is_exactly_persistence(family, tiny_split):
    split, relative = tiny_split
    train = split.train
    norm = Normalization.fit(train.data, relative, train.target_index)
    model = BUILDERS[family]((train.lookback, train.data.shape[1]), train.horizon, norm, units=4)
    inputs = split.holdout.inputs()
    np.testing.assert_allclose(model.predict(inputs, verbose=0),
                               Persistence().fit(train).predict(inputs), atol=1e-4)


def test_normalization_uses_training_rows_only():
    data = np.array([[1.0, 10], [3, 10], [5, 10], [1000, -1000]], np.float32)
    norm = Normalization.fit(data[:3], np.array([True, True]), target_index=0)
    assert norm.scale == pytest.approx((np.std([1, 3, 5]), 1.0))  # zero spread -> 1
    assert norm.target_scale == pytest.approx(np.std([1, 3, 5]))


def test_too_little_data_is_a_clear_error():
    windows, _ = station_windows(simulated_observations("2021-02-01", 2, seed=1), JENA,
                                 ForecastParams())
    with pytest.raises(NotEnoughData, match="no complete window: need 264"):
        split_windows(windows, 0.15, 0.15)


THREADS = """
import tensorflow as tf
from forecasting.training import set_tensorflow_threads
before = set_tensorflow_threads(1)
tf.reduce_sum(tf.ones(3))  # TensorFlow starts here
print(before, set_tensorflow_threads(2), set_tensorflow_threads(1), set_tensorflow_threads(0),
      tf.config.threading.get_intra_op_parallelism_threads())
"""


def test_thread_setting_holds_from_the_first_op_and_cannot_change_after():
    result = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["True", "False", "True", "True", "1"]
