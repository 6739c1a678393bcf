"""A station's retrain runs alone, and a retrain that died (SIGKILL) never blocks the next:
the lease lives in the database, and a holder whose process is gone is taken over."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from forecasting.station.schema import JENA
from forecasting.station.simulate import simulate_station
from registry.leases import LeaseBusy, LeaseRow, held
from registry.store import open_store
from tests.conftest import SMALL, station

NAME = "retrain jena"


@pytest.fixture()
def fed(tmp_path):
    """A data directory whose database holds 90 simulated days of the Jena station."""
    station(tmp_path, simulate_station("2021-01-01", 90, seed=11)).close()
    return tmp_path


def cli(data: Path, *args: str, wait: float = 1800) -> tuple[list[str], dict]:
    """The `sensorcast` command line and its environment (this session's Prefect server)."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, **SMALL, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "SENSORCAST_RETRAIN_WAIT_SECONDS": str(wait)}
    return [str(Path(sys.executable).with_name("sensorcast")), "--data-dir", str(data),
            *args], env


def lease_row(data: Path, database: str = "sensorcast.db") -> tuple | None:
    with sqlite3.connect(data / database) as connection:
        try:
            return connection.execute("select host, pid from leases where name = ?",
                                      (NAME,)).fetchone()
        except sqlite3.OperationalError:  # the table is not there yet
            return None


def test_a_retrain_killed_with_sigkill_does_not_block_the_next_retrain_of_its_station(
        prefect_harness, fed):
    command, env = cli(fed, "retrain", "--family", "blend", "--family", "gru")
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while lease_row(fed) is None and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lease_row(fed) == (socket.gethostname(), child.pid)  # it holds the station
    os.killpg(child.pid, signal.SIGKILL)  # the CLI and its network-fitting process
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert lease_row(fed) == (socket.gethostname(), child.pid)  # left behind by the dead
    command, env = cli(fed, "retrain", "--family", "blend", wait=5)
    started = time.monotonic()
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "Waiting for the retrain" not in again.stdout + again.stderr
    assert "MAE / best naive MAE" in again.stdout and time.monotonic() - started < 120
    assert lease_row(fed) is None  # given back when done


def refused_while_held(data: Path, lease: str, *args: str, wait: float = 1800) -> str:
    """Run a CLI command while this process holds `lease`, as a live run would: it must exit
    2 with one error line and no traceback; returns that line."""
    store = open_store(f"sqlite:///{data / 'sensorcast.db'}", JENA)
    try:
        with held(store.sessions, lease, 0):
            command, env = cli(data, *args, wait=wait)
            refused = subprocess.run(command, env=env, capture_output=True, text=True,
                                     timeout=300)
    finally:
        store.close()
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "Traceback" not in refused.stdout + refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, refused.stderr[-2000:]
    return errors[0]


def test_a_waiting_retrain_gives_up_after_the_set_time_with_one_line_naming_the_holder(
        prefect_harness, fed):
    error = refused_while_held(fed, NAME, "retrain", "--family", "blend", wait=2)
    assert f"retrain jena is held by process {os.getpid()} on {socket.gethostname()}" in \
        error and "gave up after waiting 2 s" in error


def holding(url: str) -> subprocess.Popen:
    """Another process that takes the lease and then just lives (renewing it)."""
    script = ("import sys, time; from registry.leases import held; "
              "from registry.store import open_store; from forecasting.station.schema import JENA; "
              f"s = open_store(sys.argv[1], JENA); h = held(s.sessions, {NAME!r}, 0); "
              "h.__enter__(); print('held', flush=True); time.sleep(120)")
    process = subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_lease_is_taken_from_a_dead_or_frozen_holder_but_not_from_a_live_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = open_store(url, JENA)
    live = holding(url)
    try:
        with pytest.raises(LeaseBusy, match=f"held by process {live.pid} on .*gave up"):
            with held(store.sessions, NAME, 0.5, poll_seconds=0.1):
                pass
        live.send_signal(signal.SIGSTOP)  # frozen: it stops renewing
        time.sleep(1.5)
        with held(store.sessions, NAME, 5, ttl=1, poll_seconds=0.1):
            assert lease_row(tmp_path, "db.sqlite")[1] == os.getpid()
    finally:
        live.kill()
        live.wait()
    killed = holding(url)
    killed.kill()
    killed.wait()
    assert lease_row(tmp_path, "db.sqlite")[1] == killed.pid
    started = time.monotonic()
    with held(store.sessions, NAME, 5):  # its holder is gone: taken at once
        assert time.monotonic() - started < 1
    assert lease_row(tmp_path, "db.sqlite") is None
    store.close()


def test_a_backtest_started_again_while_it_runs_is_refused_in_one_line(prefect_harness, fed):
    """It used to join the running one and crash with an IntegrityError; here the test holds
    the backtest's lease, as the first run of the same specification would."""
    error = refused_while_held(fed, "backtest 1", "backtest", "--start", "2021-03-10T00:00",
                               "--end", "2021-03-20T00:00", "--retrain-every", "5d",
                               "--family", "blend")
    assert "already running (backtest 1)" in error
    assert f"held by process {os.getpid()}" in error


def versions(data: Path) -> list[str]:
    with sqlite3.connect(data / "sensorcast.db") as connection:
        return [f"{family} v{version}" for family, version in connection.execute(
            "select family, version from model_versions order by version")]


def test_a_retrain_frozen_past_its_lease_is_taken_over_and_registers_nothing(
        prefect_harness, fed):
    """Retrain 1 is frozen (SIGSTOP) as soon as it holds the lease; retrain 2 takes it over only
    once the ttl has passed since its last renewal, and registers; retrain 1, resumed, finds
    its lease gone and stops with one line."""
    ttl = 5
    env_ttl = {"SENSORCAST_LEASE_TTL_SECONDS": str(ttl)}
    command, env = cli(fed, "retrain", "--family", "blend")
    first = subprocess.Popen(command, env={**env, **env_ttl}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while lease_row(fed) is None and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # before it could fit and register
    frozen = time.monotonic()
    try:
        assert lease_row(fed)[1] == first.pid
        command, env = cli(fed, "retrain", "--family", "blend")
        second = subprocess.Popen(command, env={**env, **env_ttl}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        while lease_row(fed)[1] == first.pid and second.poll() is None:
            time.sleep(0.05)
        assert time.monotonic() - frozen >= ttl - 1  # the database's clock counts seconds
        out, err = second.communicate(timeout=300)
        assert second.returncode == 0, out[-2000:] + err[-2000:]
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    registered = [v for v in versions(fed) if v.startswith("blend")]
    assert len(registered) == 1, versions(fed)  # one retrain's candidate, not two
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "lost the lease" in errors[0], err[-2000:]
    assert "nothing was registered" in errors[0] and first.returncode != 0


def test_a_live_holder_in_another_pid_namespace_with_the_same_host_name_keeps_its_lease(
        tmp_path):
    """Containers on host networking share the host name, not process numbers: a holder
    whose process number means nothing here is freed by its ttl alone."""
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", JENA)
    now = datetime.now(UTC)
    with store.sessions.begin() as session:
        session.add(LeaseRow(name=NAME, host=socket.gethostname(),
                             machine="another-boot pid:[4026530000]", pid=1,
                             process_started=1.0, taken_at=now, renewed_at=now))
    with pytest.raises(LeaseBusy, match="held by process 1 on"):
        with held(store.sessions, NAME, 1, ttl=60, poll_seconds=0.1):
            pass
    started = time.monotonic()
    with held(store.sessions, NAME, 10, ttl=2, poll_seconds=0.1):  # its ttl passes
        assert time.monotonic() - started >= 0.9
        assert lease_row(tmp_path, "db.sqlite")[1] == os.getpid()
    store.close()


def test_lease_times_are_the_databases_so_a_host_whose_clock_runs_ahead_takes_nothing_early(
        tmp_path, monkeypatch):
    """A host whose clock runs an hour ahead neither stamps its renewals an hour ahead nor
    takes over a live holder on another host that renewed a moment ago."""
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", JENA)
    with held(store.sessions, "other", 1):  # renewed by the database's clock just now
        with store.sessions.begin() as session:
            session.execute(update(LeaseRow).values(host="elsewhere", pid=1))

        class Ahead(datetime):
            @classmethod
            def now(cls, tz=None):
                return datetime.now(tz) + timedelta(hours=1)

        monkeypatch.setattr("registry.leases.datetime", Ahead)
        with pytest.raises(LeaseBusy, match="held by process 1 on elsewhere"):
            with held(store.sessions, "other", 0.5, ttl=60, poll_seconds=0.1):
                pass
        with held(store.sessions, NAME, 1):
            with store.sessions() as session:
                stamped = session.get(LeaseRow, NAME).renewed_at
            assert abs(stamped - datetime.now(UTC)) < timedelta(seconds=5)
    store.close()
