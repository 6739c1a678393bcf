"""The network model: one model fitted on the windows of several stations, each in its own
units, that forecasts a station it never saw and is saved as plain files and `.keras`."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.config import ForecastParams
from forecasting.features import station_windows
from forecasting.models.families import load_model
from forecasting.models.naive import Persistence
from forecasting.models.pooled import PooledForecaster, at_most, station_scale
from forecasting.scoring.backtest import predict_windows
from forecasting.station.schema import JENA
from forecasting.station.simulate import simulated_observations
from forecasting.windows import pooled

PARAMS = ForecastParams(lookback_hours=48, horizon_hours=24, epochs=2, units=8,
                        batch_size=128, jit_compile=False)
T = JENA.target_channel.column


def windows_of(seed: int, days: int = 30, factor: float = 1.0, offset: float = 0.0):
    """A simulated station; `factor` and `offset` put its target in other units."""
    frame = simulated_observations("2021-03-01", days, seed=seed)
    frame[T] = frame[T] * factor + offset
    return station_windows(frame, JENA, PARAMS)[0]


@pytest.fixture(scope="module")
def stations():
    return {"a": windows_of(1), "b": windows_of(2, factor=3.0), "c": windows_of(3)}


def network_model(family: str, stations: dict, names=("a", "b"), **isolated
                  ) -> PooledForecaster:
    cut = {n: stations[n].times[stations[n].origins[-1]] - np.timedelta64(5, "D")
           for n in names}
    scale = {n: station_scale(stations[n].target, PARAMS.samples_per_day) for n in names}
    train = {n: (stations[n].between(None, cut[n]), scale[n]) for n in names}
    validation = {n: (stations[n].between(cut[n], None), scale[n]) for n in names}
    model = PooledForecaster(family, PARAMS)
    model.fit_network(train, validation, **isolated)
    return model


def test_pooled_windows_never_mix_stations(stations):
    a, b = stations["a"], stations["b"]
    both = pooled([a, b])
    assert len(both) == len(a) + len(b)
    np.testing.assert_array_equal(both.inputs(slice(len(a), None)), b.inputs())
    np.testing.assert_array_equal(both.targets(slice(0, len(a))), a.targets())


def test_the_weekly_fit_draws_at_most_its_window_budget_the_same_every_time(stations):
    both = pooled([stations["a"], stations["b"]])
    drawn = at_most(both, 300, seed=0)
    assert len(drawn) == 300 and np.all(np.diff(drawn.origins) > 0)
    assert set(drawn.origins) <= set(both.origins)
    assert drawn.origins[0] < len(stations["a"].data) <= drawn.origins[-1]  # from both
    np.testing.assert_array_equal(at_most(both, 300, seed=0).origins, drawn.origins)
    assert at_most(both, len(both), seed=0) is both and at_most(both, None, 0) is both


def test_a_station_in_other_units_gets_the_same_forecast_in_its_units(stations):
    model = network_model("pooled_ridge", stations)
    c = stations["c"]
    in_kelvin_tenths = windows_of(3, factor=10.0, offset=2731.5)
    scale = station_scale(c.target, PARAMS.samples_per_day)
    plain = predict_windows(model.bind(scale, c.columns, c.target_index), c)
    other = predict_windows(model.bind(10 * scale, c.columns, c.target_index),
                            in_kelvin_tenths)
    np.testing.assert_allclose(other, plain * 10 + 2731.5, rtol=1e-5, atol=1e-2)


def test_the_network_model_forecasts_a_station_it_never_saw_better_than_persistence(
        stations):
    model = network_model("pooled_ridge", stations)
    c = stations["c"]
    bound = model.bind(station_scale(c.target[:24 * 7], PARAMS.samples_per_day), c.columns,
                       c.target_index)
    targets = c.targets()
    mine = np.abs(predict_windows(bound, c) - targets).mean()
    persistence = np.abs(predict_windows(Persistence().fit(c), c) - targets).mean()
    assert mine < 0.8 * persistence
    assert model.stations == ("a", "b")


def test_an_unbound_network_model_refuses_to_forecast(stations):
    with pytest.raises(ValueError, match="bind the network model to a station"):
        network_model("pooled_ridge", stations).predict(stations["c"].inputs(slice(0, 2)))


def test_the_recurrent_network_model_is_saved_and_loaded_as_the_same_forecaster(
        stations, tmp_path):
    c = stations["c"]
    model = network_model("pooled_gru", stations).bind(2.0, c.columns, c.target_index)
    assert model.training["epochs_run"] >= 1
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "inner" / "model.keras").exists()
    loaded = load_model(tmp_path / "m")
    assert (loaded.family, loaded.scale, loaded.stations) == ("pooled_gru", 2.0, ("a", "b"))
    np.testing.assert_allclose(predict_windows(loaded, c), predict_windows(model, c),
                               rtol=1e-5, atol=1e-4)


def test_a_recurrent_network_model_fitted_in_its_own_process_forecasts_as_it_is_saved(
        stations, tmp_path):
    """The weekly job fits each GRU in a job process (its memory goes back when it ends);
    the forecasts that process makes of the shown windows are those of the saved model
    bound to each shown station's scale."""
    c = stations["c"]
    shown = {"c": (c, 2.0), "c at 5": (c, 5.0)}
    model = PooledForecaster("pooled_gru", PARAMS)
    cut = {n: stations[n].times[stations[n].origins[-1]] - np.timedelta64(5, "D")
           for n in ("a", "b")}
    forecasts = model.fit_network(
        {n: (stations[n].between(None, cut[n]), 1.5) for n in cut},
        {n: (stations[n].between(cut[n], None), 1.5) for n in cut},
        workdir=tmp_path / "job", shown=shown)
    assert model.training["epochs_run"] >= 1 and (tmp_path / "job" / "gru").is_dir()
    model.save(tmp_path / "m")
    for name, (windows, scale) in shown.items():
        loaded = load_model(tmp_path / "m").bind(scale, c.columns, c.target_index)
        assert forecasts[name].shape == (len(windows), PARAMS.horizon_steps)
        np.testing.assert_allclose(forecasts[name], predict_windows(loaded, windows),
                                   rtol=1e-4, atol=1e-3)


def test_the_network_model_joins_a_stations_ensemble_only_if_scored_at_all_its_folds(
        stations):
    """The widened ensemble is the mean of its members' forecasts at every fold it was
    scored at; a network model missing at one of them leaves the ensemble as it was."""
    from forecasting.candidates import widen_ensemble
    from forecasting.models.ensemble import Ensemble
    from forecasting.models.linear import RidgeForecaster
    from forecasting.scoring.backtest import FoldFit, backtest

    w = stations["c"]

    def fit(fold, networks):
        ridge = RidgeForecaster(PARAMS).fit(fold.train)
        naive = Persistence().fit(fold.train)
        return FoldFit({"ridge": ridge, "best_naive": naive,
                        "ensemble": Ensemble(PARAMS, [ridge])},
                       {f: predict_windows(m, fold.test) for f, m in
                        (("ridge", ridge), ("best_naive", naive), ("ensemble", ridge))})

    model = network_model("pooled_ridge", stations).bind(1.0, w.columns, w.target_index)
    for missing, joined in ((None, ["pooled_ridge"]), (0, [])):
        result = backtest(w, fit, folds=2, test_days=3, validation_days=3)
        result.add("pooled_ridge", {k: predict_windows(model, fold.test)
                                    for k, fold in enumerate(result.folds) if k != missing},
                   model)
        before = result.residuals("ensemble")
        assert widen_ensemble(result, ["pooled_ridge"]) == joined
        if joined:
            assert [m.family for m in result.models["ensemble"].members] == \
                ["ridge", "pooled_ridge"]
            np.testing.assert_allclose(result.residuals("ensemble"), (
                result.residuals("ridge") + result.residuals("pooled_ridge")) / 2, atol=1e-4)
            inputs = result.folds[-1].test.inputs()
            np.testing.assert_allclose(predict_windows(result.models["ensemble"],
                                                       result.folds[-1].test),
                                       (model.predict(inputs) + result.models["ridge"]
                                        .predict(inputs)) / 2, atol=1e-4)
        else:
            np.testing.assert_array_equal(result.residuals("ensemble"), before)
            assert len(result.models["ensemble"].members) == 1
