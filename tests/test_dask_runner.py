"""Stations on a real Dask cluster (prefect-dask's DaskTaskRunner on a LocalCluster of
worker processes, `task_runner = "dask"`): every station's ingest, retrain and forecast
runs on a worker and gives the thread runner's results; one station's failure stays its
own, even when its worker is killed, and the next run retries it."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest

from forecasting.station.simulate import simulate_network, write_network
from tests.conftest import small_settings


def kill_a_busy_worker(client, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first worker seen running a station's task (its nanny starts another)."""
    pids = client.run(os.getpid)
    while not stop.wait(0.05):
        busy = [address for address, keys in client.processing().items() if keys]
        if busy:
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(pids[busy[0]])
            return


def sql(folder, query: str) -> list[tuple]:
    with sqlite3.connect(folder / "sensorcast.db") as connection:
        return connection.execute(query).fetchall()


def test_one_failure_stays_one_on_a_dask_cluster_and_the_next_run_retries_it(
        prefect_harness, tmp_path):
    from distributed import Client, LocalCluster

    from flows.forecast import forecast
    from flows.ingest import ingest
    from flows.retrain import retrain

    network = simulate_network("2021-01-01", 40, 3, seed=9)
    name, climate, frame = network[2]  # a new station: too little history to retrain
    network[2] = (name, climate, frame[frame.index >= frame.index[-1] - timedelta(days=2)])
    listed = write_network(tmp_path / "dask", network)
    junk = tmp_path / "dask" / "incoming" / "station-001" / "junk.csv"
    junk.write_text("this is not,a station file\n1,2\n")
    threads = tmp_path / "threads"
    shutil.copytree(tmp_path / "dask", threads, ignore=shutil.ignore_patterns("junk.csv"))
    common = {"data_dir": str(tmp_path / "dask"), "stations_file": str(listed)}
    with small_settings(), pytest.MonkeyPatch.context() as mp, \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        mp.setenv("SENSORCAST_FORECAST__FAMILIES", '["blend", "ridge"]')
        ingest(data_dir=str(threads), stations_file=str(threads / "stations.toml"))
        on_threads = retrain(data_dir=str(threads),
                             stations_file=str(threads / "stations.toml"), return_state=True)
        mp.setenv("SENSORCAST_TASK_RUNNER", "dask")
        mp.setenv("SENSORCAST_DASK_ADDRESS", cluster.scheduler_address)

        ingested = ingest(**common, return_state=True)
        assert ingested.is_failed() and "station-001" in ingested.message
        assert "junk.csv" in ingested.message and "station-002" not in ingested.message
        assert dict(sql(tmp_path / "dask", "SELECT station, count(*) FROM observations "
                                           "GROUP BY station")) == {
            "station-001": 40 * 144, "station-002": 40 * 144, "station-003": 2 * 144 + 1}

        stop, killed = threading.Event(), []
        killer = threading.Thread(target=kill_a_busy_worker, args=(client, stop, killed))
        killer.start()
        retrained = retrain(**common, triggered_by="test", return_state=True)
        stop.set()
        killer.join()
        assert killed, "no worker was seen running a station"
        assert retrained.is_failed() and "failed for 1 of 3" in retrained.message
        assert "station-003: not retraining" in retrained.message
        assert sorted(sql(tmp_path / "dask", "SELECT DISTINCT station FROM model_versions")
                      ) == [("station-001",), ("station-002",)]

        issued = forecast(**common, at=datetime(2021, 2, 9, 23, tzinfo=UTC),
                          return_state=True)
        assert issued.is_completed()
        assert sorted(station for station, _ in sql(
            tmp_path / "dask", "SELECT DISTINCT station, model_name FROM latest_forecast")) \
            == ["station-001", "station-002", "station-003"]

        junk.unlink()  # the cause fixed, the next run goes through
        assert ingest(**common, return_state=True).is_completed()
    assert on_threads.is_failed() and "station-003: not retraining" in on_threads.message
    # The same models either way, to the last bits a BLAS sums in another order (a Dask
    # worker's one thread against the flow process's own): 1.7853494299642572 and ..257.
    query = "SELECT station, family, holdout_mean FROM model_versions ORDER BY 1, 2"
    on_threads_rows, on_dask_rows = sql(threads, query), sql(tmp_path / "dask", query)
    assert [r[:2] for r in on_threads_rows] == [r[:2] for r in on_dask_rows]
    assert [r[2] for r in on_threads_rows] == pytest.approx([r[2] for r in on_dask_rows],
                                                            rel=1e-12)
