"""The retrain flow on a real Dask cluster (prefect-dask's DaskTaskRunner, a LocalCluster of
worker processes) gives exactly the thread runner's results: fold fits travel between
processes as plain data and file paths, never as live Keras models."""

from __future__ import annotations

import shutil

import pytest

from forecasting.station.simulate import simulate_station
from tests.conftest import retrain_small, station


def test_a_retrain_on_a_dask_cluster_gives_the_thread_runners_results(prefect_harness,
                                                                       tmp_path):
    station(tmp_path / "threads", simulate_station("2021-01-01", 50, seed=6)).close()
    shutil.copytree(tmp_path / "threads", tmp_path / "dask")
    boards = {}
    for runner in ("threads", "dask"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SENSORCAST_TASK_RUNNER", runner)
            mp.setenv("SENSORCAST_FORECAST__PARALLEL_FOLDS", "2")
            mp.setenv("SENSORCAST_FORECAST__NETWORK_FOLDS", "1")  # one GRU fit is enough
            boards[runner] = retrain_small(data_dir=str(tmp_path / runner),
                                           families=["ridge", "gru"], epochs=1)
    assert [r["family"] for r in boards["dask"]] and boards["dask"] == boards["threads"]
    from prefect_dask import DaskTaskRunner

    from flows.settings import fit_runner
    from forecasting.config import ForecastParams
    from flows.settings import Settings

    assert isinstance(fit_runner(Settings(task_runner="dask"), ForecastParams()),
                      DaskTaskRunner)
    networks = sorted((tmp_path / "dask" / "artifacts").glob("jena/t_degc_24h/v*/model.keras"))
    assert len(networks) == 1  # the GRU was fitted, saved and registered from the workers
