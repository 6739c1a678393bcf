"""Shared fixtures: a store on SQLite and on a real PostgreSQL server, station files, one
Prefect test harness, and a real `prefect server start` (with its UI and automations)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from forecasting.station.schema import JENA
from forecasting.station.simulate import write_station_csv
from registry.ingestion import ingest_file
from registry.store import open_store

SHARED = Path(__file__).resolve().parents[2] / "shared"
JENA_SAMPLE = SHARED / "jena_sample.csv"
JENA_HEADER = (
    '"Date Time","p (mbar)","T (degC)","Tpot (K)","Tdew (degC)","rh (%)","VPmax (mbar)",'
    '"VPact (mbar)","VPdef (mbar)","sh (g/kg)","H2OC (mmol/mol)","rho (g/m**3)","wv (m/s)",'
    '"max. wv (m/s)","wd (deg)"'
)
NAME = "jena/t_degc_24h"  # registry name of the Jena station's 24 h temperature forecast
# An hourly two-channel station in UTC: another schema than Jena's.
HOURLY_TOML = """
name = "hilltop"
timestamp_column = "time"
timestamp_format = "%Y-%m-%d %H:%M"
timezone = "UTC"
cadence_minutes = 60
target = "air_temp"

[[channels]]
source = "air_temp"
unit = "degC"
min = -60
max = 50

[[channels]]
source = "pressure"
column = "pressure_hpa"
unit = "hPa"
min = 850
max = 1100
"""

SMALL = {"SENSORCAST_FORECAST__LOOKBACK_HOURS": "48", "SENSORCAST_FORECAST__BATCH_SIZE": "128",
         "SENSORCAST_FORECAST__WINDOW_DAYS": "150", "SENSORCAST_FORECAST__PATIENCE": "2",
         "SENSORCAST_FORECAST__FOLDS": "4", "SENSORCAST_FORECAST__NETWORK_FOLDS": "2",
         # two folds' network processes at once: one thread each, so both cores work
         "SENSORCAST_FORECAST__PARALLEL_FOLDS": "2",  # linear families on 4 folds, networks on 2
         # every hour scored: a few tiny folds hold too little evidence from the issue hours
         "SENSORCAST_FORECAST__ISSUE_HOURS": "[]",
         # XLA compiles each tiny network for seconds and then saves nothing on it; the
         # product keeps it on, and test_models trains a network with it
         "SENSORCAST_FORECAST__JIT_COMPILE": "false"}


@contextmanager
def small_settings():
    """A 2-day lookback and small batches, set through the environment as a user would."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in SMALL.items():
            mp.setenv(key, value)
        yield


def retrain_small(**kwargs) -> list[dict]:
    """The retrain flow under the SMALL settings: the Jena station's leaderboard."""
    from flows.retrain import retrain

    with small_settings():
        return retrain(**kwargs)["jena"]


def station(tmp: Path, frame):
    """A store in `tmp` holding the frame, ingested from a station file."""
    write_station_csv(tmp / "feed.csv", frame)
    store = open_store(f"sqlite:///{tmp / 'sensorcast.db'}", JENA)
    ingest_file(store, tmp / "feed.csv", 50_000)
    return store


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A real PostgreSQL server for the session (Debian's package; `.ci/run` installs it),
    on a Unix socket in a private folder; skipped, saying why, where it is not installed."""
    initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob(
        "*/bin/initdb"))), None)
    if initdb is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="sensorcast-pg-"))
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, bin_dir = folder / "data", Path(initdb).resolve().parent
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "sensorcast", "--auth=trust",
                    "--no-sync"], check=True, capture_output=True)
    options = f"-k {folder} -c listen_addresses='' -c fsync=off"
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                    "-l", str(folder / "server.log"), "start"], check=True, capture_output=True)
    yield f"postgresql+psycopg://sensorcast@/{{database}}?host={folder}"
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                    "stop"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server, request):
    """A fresh, empty database on the session's PostgreSQL server."""
    from sqlalchemy import create_engine, text

    name = "t" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    admin = create_engine(postgres_server.format(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return postgres_server.format(database=name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """The same test on a SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sensorcast.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(database_url):
    s = open_store(database_url, JENA)
    yield s
    s.close()


@pytest.fixture
def write_csv(tmp_path):
    """Write lines (header first) to a new CSV file and return its path."""
    counter = iter(range(10_000))

    def write(lines: list[str], name: str | None = None, encoding: str = "utf-8") -> Path:
        path = tmp_path / (name or f"station-{next(counter)}.csv")
        path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
        return path

    return write


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """The real Prefect engine on its own temporary database, shared by the whole session."""
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(url: str, body: dict | None = None):
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """`prefect server start` on a free port, its UI pointed at its own API, shared by the
    session. Its scheduler is off: the deployments' own schedules (every 10 minutes for the
    feed) would otherwise put runs in a worker's way; triggers and automations stay on."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-server")),
           "PREFECT_UI_API_URL": f"{base}/api", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}
    server = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server",
                               "start", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                api(f"{base}/api/health")
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the Prefect server did not start in 180 s")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=60)


def flow_run_logs(flow_run_id, wait_for: str) -> list[tuple[int, str]]:
    """(level, message) of a flow run's logs as the Prefect API (and so the UI) holds them,
    once one containing `wait_for` has arrived (logs are sent in batches)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    deadline, logs = time.monotonic() + 30, []
    while not any(wait_for in m for _, m in logs) and time.monotonic() < deadline:
        time.sleep(0.5)
        with get_client(sync_client=True) as client:
            logs = [(log.level, log.message) for log in client.read_logs(log_filter=run)]
    return logs


def tiny_blend():
    """A fitted linear blend on a clean daily sine (no TensorFlow): a real model to store."""
    import numpy as np
    import pandas as pd

    from forecasting.config import ForecastParams
    from forecasting.models.linear import LinearBlend
    from forecasting.windows import Windows

    hours = 24 * 10
    series = np.sin(np.arange(hours) * 2 * np.pi / 24).astype(np.float32)
    windows = Windows(series[:, None], series,
                      pd.date_range("2021-01-01", periods=hours, freq="h", tz="UTC"),
                      np.arange(47, hours - 4), 48, 3, 0, ("t_degc",))
    return LinearBlend(ForecastParams(lookback_hours=48, horizon_hours=3)).fit(windows)
