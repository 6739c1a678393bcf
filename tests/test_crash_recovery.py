"""Ingest killed with SIGKILL at random points: re-running it ends with exactly the file's
rows, no duplicates, no half chunk, and the run records say what happened."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from forecasting.station.schema import JENA
from forecasting.station.simulate import Faults, simulate_station, write_station_csv
from registry.ingestion import ingest_file
from registry.store import open_store

CHUNK_ROWS = 1000
INGEST = """
import sys
from forecasting.station.schema import JENA
from registry.ingestion import ingest_file
from registry.store import open_store
store = open_store(sys.argv[1], JENA)
print("ready", flush=True)
ingest_file(store, sys.argv[2], int(sys.argv[3]))
"""


def table_rows(db: Path, query: str) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(query).fetchall()


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    """A year of 10-minute rows with duplicates, garbled lines and sentinels, and the
    database an uninterrupted ingest makes of it."""
    root = tmp_path_factory.mktemp("crash")
    path = root / "year.csv"
    write_station_csv(path, simulate_station("2015-01-01", 365, seed=11),
                      Faults(gaps=0.01, duplicates=0.01, sentinels=0.002, garbled=0.002), seed=11)
    reference = root / "reference.db"
    store = open_store(f"sqlite:///{reference}", JENA)
    ingest_file(store, path, CHUNK_ROWS)
    store.close()
    return path, reference


@pytest.mark.parametrize("trial", range(4))
def test_ingest_killed_mid_file_recovers_exactly_on_rerun(feed, tmp_path, trial):
    path, reference = feed
    db = tmp_path / "sensorcast.db"
    url = f"sqlite:///{db}"
    child = subprocess.Popen([sys.executable, "-c", INGEST, url, str(path), str(CHUNK_ROWS)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    delay = np.random.default_rng(trial).uniform(0.02, 0.4)  # the whole file takes ~0.5 s
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()

    assert table_rows(db, "pragma integrity_check") == [("ok",)]
    stored = table_rows(db, "select count(*) from observations")[0][0]
    runs_after_kill = table_rows(db, "select status, rows_read, rows_inserted from ingest_runs")
    # Rows and the run's counters commit together, one whole chunk at a time.
    assert stored == sum(r[2] for r in runs_after_kill)
    assert all(r[1] % CHUNK_ROWS == 0 for r in runs_after_kill if r[0] == "running")
    killed_mid_file = runs_after_kill == [] or runs_after_kill[0][0] == "running"

    store = open_store(url, JENA)
    summary = ingest_file(store, path, CHUNK_ROWS)
    store.close()

    for query in ("select * from observations order by observed_at",
                  "select line_number, raw, reason from quarantined_rows order by line_number"):
        assert table_rows(db, query) == table_rows(reference, query)
    runs = table_rows(db, "select id, status, rows_read, message from ingest_runs order by id")
    if killed_mid_file and runs_after_kill:
        assert summary.status == "complete"
        (first_id, first_status, first_read, first_message), last = runs[0], runs[-1]
        assert first_status == "interrupted"
        assert first_read % CHUNK_ROWS == 0  # counters moved with whole chunks
        assert f"run {last[0]} completed the file" in first_message
        assert last[1] == "complete" and f"interrupted run(s) {first_id}" in last[3]
    elif not killed_mid_file:  # the kill came after the file was complete
        assert summary.status == "skipped"


def test_a_full_disk_during_ingest_is_one_line_and_a_rerun_is_exact(tmp_path):
    """The database's file system fills up mid-file: the CLI says so in one line, the
    database stays intact, and once there is room the same command stores exactly what an
    uninterrupted ingest stores."""
    import os

    from forecasting.station.simulate import simulate_station, write_station_csv

    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(small)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.strip()}")
    try:
        feed = write_station_csv(tmp_path / "feed.csv", simulate_station("2021-01-01", 60,
                                                                         seed=5))
        sensorcast = str(Path(sys.executable).parent / "sensorcast")
        env = {**os.environ, "SENSORCAST_CHUNK_ROWS": "1000"}

        def ingest(data):
            return subprocess.run([sensorcast, "--data-dir", str(data), "ingest", str(feed)],
                                  capture_output=True, text=True, env=env)

        full = ingest(small)
        assert full.returncode == 2, full.stdout + full.stderr
        assert full.stderr.startswith("error: the database refused: database or disk is full")
        assert "Traceback" not in full.stderr
        with sqlite3.connect(small / "sensorcast.db") as connection:
            assert connection.execute("pragma integrity_check").fetchone() == ("ok",)
            stored = connection.execute("select count(*) from observations").fetchone()[0]
        assert 0 < stored < 60 * 144  # the chunks committed before the disk filled up
        subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        again = ingest(small)
        assert again.returncode == 0, again.stderr
        assert ingest(tmp_path / "reference").returncode == 0
        query = "select * from observations order by observed_at"
        with sqlite3.connect(small / "sensorcast.db") as resumed, \
                sqlite3.connect(tmp_path / "reference" / "sensorcast.db") as reference:
            assert resumed.execute(query).fetchall() == reference.execute(query).fetchall()
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True)
