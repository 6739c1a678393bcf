"""The retrain flow fits the networks only where they can pay: a family whose last versions
all kept their base is skipped (reported with its reason, never registered), and a retrain of
the linear families alone never imports TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, timedelta

import numpy as np

from flows.settings import Settings, params_from
from forecasting.models.networks import BUILDERS, NetworkForecaster, Normalization
from forecasting.station.simulate import simulate_station
from registry.registration import register_version
from registry.versions import NewVersion, list_versions
from tests.conftest import NAME, retrain_small, small_settings, station, tiny_blend


def kept_base_network(params) -> NetworkForecaster:
    """A GRU whose training kept its base, as its saved record says."""
    network = NetworkForecaster("gru", params, np.zeros(19, bool), tiny_blend())
    norm = Normalization(tuple([1.0] * 19), tuple([False] * 19), 1, 1.0)
    network.model = BUILDERS["gru"]((params.lookback_steps, 19), params.horizon_steps, norm,
                                    units=params.units)
    network.columns = tuple(f"c{i}" for i in range(19))
    network.training = {"kept_base": True, "epochs_run": 2, "epochs_max": 20}
    return network


def blend_and_gru(tmp_path):
    """120 simulated days stored, and the settings of a blend and GRU retrain."""
    frame = simulate_station("2019-01-01", 120, seed=3)
    with small_settings():
        params = params_from(Settings(data_dir=tmp_path), ["blend", "gru"])
    return frame, station(tmp_path, frame), params


def register_grus(store, tmp_path, frame, params, days_before_newest: list[int]) -> None:
    """GRUs registered as if trained on data up to those days before the newest row."""
    with store.sessions.begin() as session:
        for days in days_before_newest:
            train_end = (frame.index[-1] - timedelta(days=days)).to_pydatetime()
            train_end = train_end.replace(tzinfo=UTC)
            register_version(session, tmp_path / "artifacts", NewVersion(
                model_name=NAME, family="gru", params=params.model_dump(mode="json"),
                train_start=train_end - timedelta(days=60), train_end=train_end,
                rows=1, holdout_windows=1,
                holdout_mae=(1.0,) * 24, persistence_mae=(2.0,) * 24,
                best_naive_mae=(2.0,) * 24, seasonal_mae=(2.0,) * 24, library_versions={},
                intervals=None), kept_base_network(params))


def test_a_family_that_kept_its_base_three_times_is_skipped_and_not_registered(
        prefect_harness, tmp_path):
    frame, store, params = blend_and_gru(tmp_path)
    # registered over the three days before the newest cut-off (a week before the newest
    # row), each a week after the one before as the cadence asks
    register_grus(store, tmp_path, frame, params.model_copy(
        update={"network_every_days": 0}), [23, 16, 9])
    board = retrain_small(data_dir=str(tmp_path), families=["blend", "gru"])
    skipped = [row for row in board if row["decision"] == "skipped"]
    assert [row["family"] for row in skipped] == ["gru"]
    assert f"{NAME} v3, {NAME} v2, {NAME} v1" in skipped[0]["reason"]
    assert "kept their ridge base" in skipped[0]["reason"]
    with store.sessions() as session:
        families = [v.family for v in list_versions(session, NAME)]
    assert families.count("gru") == 3 and "blend" in families
    store.close()


def test_a_network_fitted_less_than_its_cadence_ago_is_skipped_until_due(
        prefect_harness, tmp_path, monkeypatch):
    """Even with warm starts and the kept-base rule off, which read no network files."""
    monkeypatch.setenv("SENSORCAST_FORECAST__NETWORK_REFRESH_DAYS", "0")
    monkeypatch.setenv("SENSORCAST_FORECAST__SKIP_AFTER_KEPT_BASE", "0")
    frame, store, params = blend_and_gru(tmp_path)
    register_grus(store, tmp_path, frame, params, [10])  # 3 days before the newest cut-off
    board = retrain_small(data_dir=str(tmp_path), families=["blend", "gru"])
    (skipped,) = [row for row in board if row["decision"] == "skipped"]
    assert skipped["family"] == "gru" and skipped["version"] is None
    assert "networks are fitted every 7 days" in skipped["reason"]
    assert f"{NAME} v1 was trained on data up to" in skipped["reason"]
    with store.sessions() as session:
        families = [v.family for v in list_versions(session, NAME)]
    assert families.count("gru") == 1 and "blend" in families
    store.close()


def test_a_retrain_of_the_linear_families_never_imports_tensorflow(prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL

    station(tmp_path, simulate_station("2019-01-01", 60, seed=5)).close()
    script = f"""
import sys
from flows.retrain import retrain
board = retrain(data_dir={str(tmp_path)!r}, families=["blend", "ridge", "ensemble"])
assert board["jena"], board
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"tensorflow", "keras"}}))
"""
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "SENSORCAST_FORECAST__LOOKBACK_HOURS": "48", "SENSORCAST_FORECAST__FOLDS": "4"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
