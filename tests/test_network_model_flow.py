"""The network model under the real Prefect engine: one weekly job (on threads or a Dask
cluster) fits it across the stations, registers it with checksums, records its gate from
the stations replayed as new; each station's gate weighs it out of sample, and a station
too new for models of its own is forecast by it from its first days."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forecasting.station.simulate import simulate_network, write_network
from tests.conftest import small_settings

NETWORK_SMALL = {"SENSORCAST_NETWORK_MODEL__LOOKBACK_HOURS": "48",
                 "SENSORCAST_NETWORK_MODEL__HISTORY_DAYS": "30",
                 "SENSORCAST_NETWORK_MODEL__EPOCHS": "1",
                 "SENSORCAST_NETWORK_MODEL__STATION_GROUPS": "2",
                 "SENSORCAST_NETWORK_MODEL__EVIDENCE_DAYS": "10",
                 "SENSORCAST_NETWORK_MODEL__NEW_STATION_DAYS": "3"}
NAME = "@network/t_degc_24h"


def sql(data: Path, query: str) -> list[tuple]:
    with sqlite3.connect(data / "sensorcast.db") as connection:
        return connection.execute(query).fetchall()


@pytest.fixture(scope="module")
def network_fitted(prefect_harness, tmp_path_factory):
    """Four simulated stations; the fourth began 5 days before the others' last day."""
    from flows.ingest import ingest
    from flows.network_model import network_model

    folder = tmp_path_factory.mktemp("network")
    stations = simulate_network("2021-01-01", 45, 4, seed=3)
    name, climate, frame = stations[-1]
    stations[-1] = (name, climate, frame[frame.index >= frame.index[-1].floor("D")
                                         - __import__("pandas").Timedelta(days=5)])
    listed = write_network(folder, stations)
    data = folder / "data"
    at = datetime(2021, 2, 14, 12, tzinfo=UTC)
    with small_settings(), pytest.MonkeyPatch.context() as mp:
        for key, value in NETWORK_SMALL.items():
            mp.setenv(key, value)
        ingest(data_dir=str(data), stations_file=str(listed))
        # a fit before the stations' oldest fold too (every fold is out of sample for it), on
        # a Dask cluster of worker processes: only plain data and files cross
        mp.setenv("SENSORCAST_TASK_RUNNER", "dask")
        network_model(data_dir=str(data), stations_file=str(listed),
                      at=at - timedelta(days=22), triggered_by="test")
        mp.setenv("SENSORCAST_TASK_RUNNER", "threads")
        rows = network_model(data_dir=str(data), stations_file=str(listed), at=at,
                             triggered_by="test")
    return folder, data, listed, at, rows, name


def test_the_weekly_network_model_is_registered_verified_and_gated_on_new_station_replays(
        network_fitted):
    from flows.settings import Settings
    from registry.registration import inconsistencies
    from registry.store import open_store

    folder, data, listed, _, rows, _ = network_fitted
    assert {r["family"] for r in rows} == {"pooled_ridge", "pooled_gru"}
    assert all(r["stations"] == 4 and r["replayed"] >= 3 for r in rows)
    versions = sql(data, "SELECT family, train_end, holdout_mean, best_naive_mean FROM "
                         f"model_versions WHERE model_name = '{NAME}' ORDER BY version")
    assert [v[0] for v in versions] == ["pooled_ridge", "pooled_gru"] * 2
    events = sql(data, "SELECT decision, reason, groups FROM promotion_events WHERE "
                       f"model_name = '{NAME}' ORDER BY id DESC LIMIT 2")
    assert sorted(e[0] for e in events) == ["promoted", "rejected"]
    promoted = next(e for e in events if e[0] == "promoted")
    assert "replayed as new at" in promoted[1] and "1-6 h" in promoted[1]
    assert len(json.loads(promoted[2])["cold_start"]) == 4  # one per 6-hour group
    settings = Settings(data_dir=data, stations_file=listed)
    store = open_store(settings.db_url, settings.stations)
    try:
        with store.sessions() as session:
            assert inconsistencies(session, settings.artifact_dir) == []
    finally:
        store.close()
    saved = [json.loads(p.read_text()) for p in
             (data / "artifacts" / NAME).glob("v*/model.json")]
    assert len(saved) == 4 and all(len(m["cold_start"]["weights"]) == 24 for m in saved)
    assert all(m["scale"] is None for m in saved)  # bound to no station
    # the new station was not there 22 days before
    assert sorted(len(m["stations"]) for m in saved) == [3, 3, 4, 4]


def test_a_station_without_a_champion_of_its_own_is_forecast_by_the_network_model(
        network_fitted):
    from flows.forecast import forecast

    _, data, listed, at, _, new = network_fitted
    with small_settings(), pytest.MonkeyPatch.context() as mp:
        for key, value in NETWORK_SMALL.items():
            mp.setenv(key, value)
        # today's champion: in the test's past the network model was not promoted yet
        forecast(data_dir=str(data), stations_file=str(listed), station=new, at=at,
                 model="current", triggered_by="test")
    issued = sql(data, "SELECT model_name, model_version, value, champion_value, naive_value, "
                       f"weight FROM forecasts WHERE station = '{new}' ORDER BY horizon_hours")
    champion = sql(data, f"SELECT v.version FROM model_aliases a JOIN model_versions v ON "
                         f"v.id = a.version_id WHERE a.model_name = '{NAME}'")
    assert len(issued) == 24
    assert {(r[0], r[1]) for r in issued} == {(NAME, champion[0][0])}
    for _, _, value, network, naive, weight in issued:
        assert 0 <= weight <= 1
        assert value == pytest.approx(naive + weight * (network - naive), abs=0.01)
    assert any(r[5] > 0 for r in issued)  # the replays trusted it somewhere
    from typer.testing import CliRunner

    from flows.cli.app import app

    shown = CliRunner().invoke(app, ["--data-dir", str(data), "--stations-file", str(listed),
                                     "status", "--station", new])
    assert f"none of its own (forecasts are the network model's, {NAME} v" in shown.output


def test_a_stations_gate_weighs_the_network_model_on_the_folds_it_never_saw(network_fitted):
    from flows.retrain import retrain
    from registry.artifacts import load_verified

    _, data, listed, at, _, _ = network_fitted
    with small_settings():
        board = retrain(data_dir=str(data), stations_file=str(listed), station="station-001",
                        families=["ridge", "ensemble"], until=at,
                        triggered_by="test")["station-001"]
    offered = {row["family"]: row for row in board if row["family"].startswith("pooled")}
    assert set(offered) == {"pooled_ridge", "pooled_gru"}
    # ... and joins the station's ensemble, each member referenced by its checksum
    (path, sha256), = sql(data, "SELECT artifact_path, artifact_sha256 FROM model_versions "
                                "WHERE model_name = 'station-001/t_degc_24h' AND family = "
                                "'ensemble'")
    ensemble = load_verified(path, sha256, "ensemble", data / "artifacts")
    assert [m.family for m in ensemble.members] == ["ridge", "pooled_gru", "pooled_ridge"]
    assert all(m.scale > 0 for m in ensemble.members[1:])  # bound to the station
    assert all(row["decision"] in ("promoted", "rejected") for row in offered.values())
    # registered for the station, bound to it: its scale and its columns in model.json
    registered = sql(data, "SELECT family, artifact_path, train_end FROM model_versions "
                           "WHERE model_name = 'station-001/t_degc_24h' AND family LIKE "
                           "'pooled%'")
    network_end = sql(data, "SELECT min(train_end) FROM model_versions WHERE model_name = "
                            f"'{NAME}'")[0][0]
    for family, path, train_end in registered:
        meta = json.loads((data / "artifacts" / path / "model.json").read_text())
        assert meta["scale"] > 0 and "t_degc" in meta["columns"]
        assert train_end >= network_end  # the fold it stands for came after its training


def test_a_network_of_one_station_has_no_network_model_and_nothing_fails(prefect_harness,
                                                                          tmp_path):
    from flows.network_model import network_model

    state = network_model(data_dir=str(tmp_path), triggered_by="test", return_state=True)
    assert state.is_completed() and state.result() == []
    assert sql(tmp_path, "SELECT count(*) FROM model_versions") == [(0,)]


@pytest.mark.parametrize("validation_days", ["14", "2"], ids=["no training windows",
                                                             "no station to replay"])
def test_a_network_too_young_registers_nothing_and_nothing_fails(prefect_harness, tmp_path,
                                                                 validation_days):
    from flows.ingest import ingest
    from flows.network_model import network_model

    listed = write_network(tmp_path, simulate_network("2021-01-01", 12, 3, seed=4))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**NETWORK_SMALL, "SENSORCAST_NETWORK_MODEL__FAMILIES":
                           '["pooled_ridge"]',
                           "SENSORCAST_FORECAST__VALIDATION_DAYS": validation_days}.items():
            mp.setenv(key, value)
        ingest(data_dir=str(tmp_path), stations_file=str(listed))
        state = network_model(data_dir=str(tmp_path), stations_file=str(listed),
                              at=datetime(2021, 1, 12, 12, tzinfo=UTC), triggered_by="test",
                              return_state=True)
    assert state.is_completed() and state.result() == []
    assert sql(tmp_path, "SELECT count(*) FROM model_versions") == [(0,)]
