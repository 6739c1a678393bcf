"""Every candidate family trains, saves, reloads (safe mode, plain arrays) and predicts
identically; an untrained network is exactly its linear base."""

from __future__ import annotations

import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest

from forecasting.models.naive import BestNaive
from forecasting.candidates import distinct_members, fit_candidates
from forecasting.models.ensemble import Composed, Ensemble
from forecasting.models.families import family_class, holds_network, load_model
from forecasting.config import COMPOSED, FAMILIES, NETWORKS, ForecastParams
from forecasting.scoring.backtest import predict_windows, rolling_folds
from forecasting.models.linear import LINEAR, ARRAYS_FILE
from forecasting.models.networks import BUILDERS, Normalization
from forecasting.station.schema import JENA
from forecasting.station.simulate import simulated_observations
from forecasting.features import station_windows
from forecasting.models.isolated import JobFailed, SavedNetwork, fit_networks, predict_saved
from forecasting.models.networks import NetworkForecaster
from forecasting.windows import NotEnoughData
from registry.artifacts import (ArtifactError, artifact_digest, load_verified, member_reference,
                                version_dir)

TINY = ForecastParams(lookback_hours=24, horizon_hours=6, epochs=1, units=4, batch_size=64,
                      validation_days=3, jit_compile=False)  # XLA: seconds per tiny model
SINGLE = [f for f in FAMILIES if f != "ensemble"]


@pytest.fixture(scope="module")
def tiny_fit(tmp_path_factory):
    windows, relative = station_windows(simulated_observations("2021-02-01", 20, seed=4), JENA,
                                        TINY)
    fold = rolling_folds(windows, 1, 3, 3)[0]
    return fold, relative, fit_candidates(fold, TINY, relative, tmp_path_factory.mktemp("fit"))


@pytest.fixture(scope="module")
def tiny(tiny_fit):
    """The fitted candidates as live models in this process (networks loaded from the files
    their fitting process saved)."""
    fold, relative, fit = tiny_fit
    models = {name: load_model(m.directory) if isinstance(m, SavedNetwork) else m
              for name, m in fit.models.items()}
    models["ensemble"] = Ensemble(TINY, [models[f] for f in SINGLE])
    return fold, relative, models


def test_networks_are_fitted_in_a_process_of_their_own_which_predicted_as_saved(
        tiny_fit, tiny):
    fold, _, fit = tiny_fit
    models = tiny[2]
    for family in NETWORKS:
        assert isinstance(fit.models[family], SavedNetwork)
        np.testing.assert_allclose(fit.predictions[family],
                                   models[family].predict(fold.test.inputs()), atol=1e-5)
    members = distinct_members(fit.models, TINY.families, TINY)
    np.testing.assert_allclose(
        fit.predictions["ensemble"], np.mean([fit.predictions[f] for f in members], axis=0))


NO_TENSORFLOW = """
import sys, tempfile
from forecasting.candidates import fit_candidates
from forecasting.config import ForecastParams
from forecasting.scoring.backtest import predict_windows, rolling_folds
from forecasting.features import station_windows
from forecasting.station.schema import JENA
from forecasting.station.simulate import simulated_observations
params = ForecastParams(lookback_hours=24, horizon_hours=6, epochs=1, units=4,
                        validation_days=3, families=("ridge", "gru", "ensemble"),
                        jit_compile=False)
windows, relative = station_windows(simulated_observations("2021-02-01", 12, seed=4), JENA,
                                    params)
with tempfile.TemporaryDirectory() as work:
    fit = fit_candidates(rolling_folds(windows, 1, 2, 3)[0], params, relative, work)
print(sorted(fit.predictions), "tensorflow" in sys.modules)
"""


def test_fitting_a_network_never_loads_tensorflow_into_the_calling_process():
    """TensorFlow's 0.65 GB and each fit's compiled code go back with the fitting process,
    so a retrain's memory does not grow with the networks it trains."""
    result = subprocess.run([sys.executable, "-c", NO_TENSORFLOW], capture_output=True,
                            text=True, check=True)
    assert result.stdout.split("] ")[-1].strip() == "False"
    assert "'gru'" in result.stdout and "'ensemble'" in result.stdout


def test_loading_the_networks_prints_no_tensorflow_start_up_notices():
    result = subprocess.run([sys.executable, "-c", "import forecasting.models.networks"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_a_saved_model_is_predicted_in_a_process_of_its_own_only_when_it_holds_a_network(
        tiny_fit, tiny, tmp_path):
    """Scoring a linear champion at each retrain needs no TensorFlow process (seconds and
    0.65 GB); a network does."""
    fold, _, models = tiny
    models["ridge"].save(tmp_path / "ridge")
    here = predict_saved(tmp_path / "ridge-job", tmp_path / "ridge", {"test": fold.test}, 1)
    assert not (tmp_path / "ridge-job").exists()  # no job written, no process started
    np.testing.assert_array_equal(here["test"], predict_windows(models["ridge"], fold.test))
    assert not holds_network(tmp_path / "ridge")
    assert holds_network(tiny_fit[2].models["gru"].directory)


def test_a_failing_fit_process_reports_its_error(tiny_fit, tmp_path):
    fold, relative, fit = tiny_fit
    broken = np.ones(len(relative) + 3, bool)  # does not match the features
    with pytest.raises(JobFailed, match="fit job .* ended with exit code 1:\n(.|\n)*Error"):
        fit_networks(tmp_path / "job", ["gru"], TINY, broken, fit.models["ridge"], fold.train,
                     fold.validation, fold.test, threads=1)


def _stored(model, root, version: int):
    """Saved as version `version` of model `t` in the store at `root`: (path inside the
    store, as the registry records it, and sha256)."""
    path = version_dir(root, "t", version)
    model.save(path)
    return path.relative_to(root), artifact_digest(path)


def _with_weights(model):
    """One epoch on tiny data rarely beats the base, and then the correction stays zero:
    give it weights so that the predictions depend on every saved layer."""
    if isinstance(model, NetworkForecaster):
        layer = model.model.get_layer("correction")
        kernel, bias = layer.get_weights()
        layer.set_weights([np.random.default_rng(0).normal(0, 0.5, kernel.shape), bias])
    return model


@pytest.mark.parametrize("family", SINGLE)
def test_family_trains_saves_and_reloads_identically(family, tiny, tmp_path):
    fold, _, models = tiny
    model = _with_weights(models[family])
    inputs = fold.test.inputs()
    before = model.predict(inputs)
    assert before.shape == (len(fold.test), 6)
    assert np.ptp(before, axis=1).max() > 0.01  # not a flat persistence path
    model.save(tmp_path / family)
    if family in LINEAR:
        assert (tmp_path / family / ARRAYS_FILE).exists()  # plain arrays, no pickle
    np.testing.assert_array_equal(load_model(tmp_path / family).predict(inputs), before)


@pytest.mark.parametrize("family", [*FAMILIES, COMPOSED])
def test_every_family_meets_the_forecaster_contract(family, tiny, tmp_path):
    """family, params, fit, predict, save(directory) -> directory, and the class's own
    load(directory), which `load_model` dispatches to from the saved `model.json` (an
    ensemble's and a composed forecast's members laid out beside it, as the registry
    does)."""
    fold, _, models = tiny
    inputs = fold.test.inputs()
    if family == COMPOSED:
        model = Composed(models["ridge"], BestNaive(TINY.samples_per_day).fit(fold.train),
                         np.linspace(1, 0, TINY.horizon_steps))
    elif family == "ensemble":  # not the module's shared one: references are set on it
        model = Ensemble(TINY, models["ensemble"].members)
    else:
        model = models[family]
    members = getattr(model, "members", [])
    if members:
        model.references = [{} for _ in members]
    assert model.family == family and isinstance(model.params, ForecastParams)
    if family not in NETWORKS:  # (a network's fit is tested on its own; it would change
        assert model.fit(fold.train, fold.validation) is model  # the module's shared one)
    assert callable(model.fit) and callable(family_class(family).load)
    directory = tmp_path / family
    assert model.save(directory) == directory
    for k, member in enumerate(members):
        member.save(directory / f"member{k}")
    assert isinstance(model, family_class(family))
    loaded = family_class(family).load(directory)
    assert type(loaded) is type(model) and loaded.family == family
    np.testing.assert_allclose(load_model(directory).predict(inputs), model.predict(inputs),
                               rtol=1e-6, atol=1e-6)


def test_ensemble_is_the_mean_of_its_members_and_reloads_only_if_every_member_verifies(
        tiny, tmp_path, monkeypatch):
    fold, _, models = tiny
    ensemble = models["ensemble"]
    inputs = fold.test.inputs()
    members = [_with_weights(m) for m in ensemble.members]
    assert [m.family for m in members] == SINGLE
    np.testing.assert_allclose(ensemble.predict(inputs),
                               np.mean([m.predict(inputs) for m in members], axis=0))
    monkeypatch.chdir(tmp_path)
    root = Path("artifacts")  # relative, as the default data_dir ("data") gives it
    for version, member in enumerate(members, start=1):
        path, sha = _stored(member, root, version)
        ensemble.references.append(member_reference("t", version, str(path), sha, root))
    path, sha = _stored(ensemble, root, len(members) + 1)
    reloaded = load_verified(path, sha, "t v8", root)
    np.testing.assert_allclose(reloaded.predict(inputs), ensemble.predict(inputs), rtol=1e-6)

    arrays = version_dir(root, "t", 2) / ARRAYS_FILE  # the ridge member
    data = bytearray(arrays.read_bytes())
    data[len(data) // 2] ^= 0xFF
    arrays.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="t v8 member t v2: .*refusing a changed file"):
        load_verified(path, sha, "t v8", root)


def test_composed_forecast_combines_its_member_with_best_naive_at_the_weights_and_reloads_only_if_its_member_verifies(  # noqa: E501
        tiny, tmp_path):
    fold, _, models = tiny
    ridge, inputs = models["ridge"], fold.test.inputs()
    naive = BestNaive(TINY.samples_per_day).fit(fold.train)
    weights = np.array([1, 1, 0.5, 0, 0, 0])  # the candidate lost +4 h .. +6 h
    composed = Composed(ridge, naive, weights)
    forecast = composed.predict(inputs)
    np.testing.assert_allclose(forecast[:, 3:], naive.predict(inputs)[:, 3:])
    np.testing.assert_allclose(forecast[:, :2], ridge.predict(inputs)[:, :2])
    np.testing.assert_allclose(forecast[:, 2], (ridge.predict(inputs)[:, 2]
                                                + naive.predict(inputs)[:, 2]) / 2)
    assert not np.allclose(forecast[:, 3:], ridge.predict(inputs)[:, 3:])
    root = tmp_path / "artifacts"
    path, sha = _stored(ridge, root, 1)
    composed.references.append(member_reference("t", 1, str(path), sha, root))
    path, sha = _stored(composed, root, 2)
    np.testing.assert_allclose(load_verified(path, sha, "t v2", root).predict(inputs), forecast)
    arrays = version_dir(root, "t", 1) / ARRAYS_FILE
    arrays.write_bytes(arrays.read_bytes()[:-1] + b"x")
    with pytest.raises(ArtifactError, match="t v2 member t v1: .*refusing a changed file"):
        load_verified(path, sha, "t v2", root)


def test_a_composed_forecast_saved_as_a_choice_per_step_still_loads(tiny):
    """The first layout chose best naive's forecast or the member's at each step."""
    fold, _, models = tiny
    naive = BestNaive(TINY.samples_per_day).fit(fold.train)
    meta = {"params": TINY.model_dump(mode="json"), "members": [{}],
            "naive_steps": [False, False, False, True, True, True],
            "use_seasonal": np.asarray(naive.use_seasonal).tolist(),
            "target_index": naive.persistence.target_index}
    composed = Composed.from_meta(meta, [models["ridge"]])
    assert composed.weights.tolist() == [1, 1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match=r"weight in \[0, 1\] for each of the 6"):
        Composed(models["ridge"], naive, np.array([1, 1, 1.5, 0, 0, 0]))


def test_a_network_that_kept_its_base_is_not_a_second_copy_of_it_in_the_ensemble():
    def network(family: str, kept: bool) -> SavedNetwork:
        return SavedNetwork(family, TINY, (), Path(), 1, {"kept_base": kept})

    models = {"blend": None, "ridge": None, "gru": network("gru", True),
              "gru_dropout": network("gru_dropout", False),
              "stacked_gru": network("stacked_gru", True),
              "bidirectional_gru": network("bidirectional_gru", False)}
    assert distinct_members(models, TINY.families, TINY) == [
        "blend", "ridge", "gru_dropout", "bidirectional_gru"]
    without_base = TINY.model_copy(update={"families": ("blend", *NETWORKS, "ensemble")})
    assert distinct_members(models, without_base.families, without_base) == [
        "blend", "gru", "gru_dropout", "bidirectional_gru"]  # one copy of the ridge


@pytest.mark.parametrize("family", NETWORKS)
def test_untrained_network_is_exactly_its_linear_base(family, tiny):
    fold, relative, models = tiny
    base = models[TINY.network_base]
    train = fold.train
    norm = Normalization.fit(train.data, relative, train.target_index)
    model = BUILDERS[family]((train.lookback, train.data.shape[1]), train.horizon, norm, units=4)
    inputs = fold.test.inputs()
    np.testing.assert_allclose(model.predict([inputs, base.predict(inputs)], verbose=0),
                               base.predict(inputs), atol=1e-4)


def test_training_is_repeatable_for_a_seed_and_differs_for_another():
    """Dropout included: the same seed gives the same trained network, bit for bit, compiled
    by XLA as the product trains it."""
    params = ForecastParams(lookback_hours=24, horizon_hours=24, epochs=3, units=8,
                            batch_size=64, learning_rate=1e-2, network_base="blend",
                            validation_days=5)
    windows, relative = station_windows(simulated_observations("2021-02-01", 30, seed=4), JENA,
                                        params)
    fold = rolling_folds(windows, 1, 5, 5)[0]
    base = LINEAR["blend"](params).fit(fold.train)

    def trained(seed: int) -> np.ndarray:
        forecaster = NetworkForecaster("gru_dropout", params.model_copy(update={"seed": seed}),
                                       relative, base).fit(fold.train, fold.validation)
        return forecaster.predict(fold.test.inputs())

    first = trained(0)
    assert np.abs(first - base.predict(fold.test.inputs())).max() > 0.05  # moved off the base
    np.testing.assert_array_equal(trained(0), first)
    assert np.abs(trained(1) - first).max() > 1e-3


def test_normalization_uses_training_rows_only():
    data = np.array([[1.0, 10], [3, 10], [5, 10], [1000, -1000]], np.float32)
    norm = Normalization.fit(data[:3], np.array([True, True]), target_index=0)
    assert norm.scale == pytest.approx((np.std([1, 3, 5]), 1.0))  # zero spread -> 1
    assert norm.target_scale == pytest.approx(np.std([1, 3, 5]))


def test_too_little_data_is_a_clear_error():
    windows, _ = station_windows(simulated_observations("2021-02-01", 2, seed=1), JENA,
                                 ForecastParams())
    with pytest.raises(NotEnoughData, match="no complete window: need 264"):
        rolling_folds(windows, 3, 7, 14)
    windows, _ = station_windows(simulated_observations("2021-02-01", 25, seed=1), JENA,
                                 ForecastParams())
    with pytest.raises(NotEnoughData, match="too little data for 3 folds of 7 days"):
        rolling_folds(windows, 3, 7, 14)


THREADS = """
import tensorflow as tf
from forecasting.models.networks import set_tensorflow_threads
before = set_tensorflow_threads(1)
tf.reduce_sum(tf.ones(3))  # TensorFlow starts here
print(before, set_tensorflow_threads(2), set_tensorflow_threads(1), set_tensorflow_threads(0),
      tf.config.threading.get_intra_op_parallelism_threads())
"""


def test_thread_setting_holds_from_the_first_op_and_cannot_change_after():
    result = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["True", "False", "True", "True", "1"]


def test_a_warm_started_network_starts_from_the_weights_it_is_given():
    """Fine-tuned from a network already trained on the same kind of data, its first epoch
    is already better on validation than a cold start's first epoch."""
    params = ForecastParams(lookback_hours=24, horizon_hours=24, epochs=6, units=8,
                            batch_size=64, learning_rate=1e-2, network_base="blend",
                            validation_days=5, patience=6, give_up_epochs=6, warm_epochs=1,
                            jit_compile=False)
    windows, relative = station_windows(simulated_observations("2021-02-01", 30, seed=4), JENA,
                                        params)
    fold = rolling_folds(windows, 1, 5, 5)[0]
    base = LINEAR["blend"](params).fit(fold.train)

    def network(**changed) -> NetworkForecaster:
        return NetworkForecaster("gru", params.model_copy(update=changed), relative, base)

    trained = network().fit(fold.train, fold.validation)
    assert not trained.training["kept_base"]
    cold = network(epochs=1).fit(fold.train, fold.validation)
    warm = network().fit(fold.train, fold.validation, trained, "t v1")
    assert warm.training["warm_start"] == "t v1" and warm.training["epochs_max"] == 1
    assert warm.training["first_epoch_mae"] < cold.training["first_epoch_mae"]
    assert warm.training["trained_from_zero_to"] == trained.training["trained_from_zero_to"]
    other = NetworkForecaster("stacked_gru", params, relative, base)  # other shapes: cold
    assert other.fit(fold.train, fold.validation, trained, "t v1").training[
        "warm_start"] is None


def test_a_network_that_cannot_beat_its_base_gives_up_after_its_first_epochs():
    params = ForecastParams(lookback_hours=24, horizon_hours=6, epochs=20, units=4,
                            batch_size=64, learning_rate=10.0, validation_days=3,
                            patience=10, give_up_epochs=2, jit_compile=False)
    windows, relative = station_windows(simulated_observations("2021-02-01", 20, seed=4), JENA,
                                        params)
    fold = rolling_folds(windows, 1, 3, 3)[0]
    network = NetworkForecaster("gru", params, relative).fit(fold.train, fold.validation)
    assert network.training["kept_base"] and network.training["gave_up"]
    assert network.epochs_run == 2
