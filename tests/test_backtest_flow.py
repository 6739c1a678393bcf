"""The backtest flow under the real Prefect engine on real SQLite files: leak-free, apart
from live state, and resumable after a SIGKILL to exactly the rows of an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from forecasting.station.schema import JENA
from forecasting.station.simulate import simulate_station
from registry.backtests import plan
from registry.forecasts import ForecastRow, read_view
from registry.store import open_store
from registry.versions import champion
from tests.conftest import NAME, SMALL, retrain_small, station

# Short folds, so that 36 simulated days hold three retrain points; one fold at a time, as
# rows are compared exactly (two linear fits at once may round their last bits differently).
BACKTEST_SETTINGS = {**SMALL, "SENSORCAST_FORECAST__FOLDS": "2",
                     "SENSORCAST_FORECAST__PARALLEL_FOLDS": "1",
                     "SENSORCAST_FORECAST__FOLD_DAYS": "3",
                     "SENSORCAST_FORECAST__VALIDATION_DAYS": "4"}
START, MIDDLE, END = (datetime(2021, 1, d, 12, tzinfo=UTC) for d in (20, 25, 30))
FAMILIES = ["blend", "ridge", "ensemble"]
KWARGS = {"start": START, "end": END, "retrain_every_hours": 5 * 24, "families": FAMILIES}


def run_backtest(data: Path, settings: dict | None = None, **kwargs):
    from flows.backtest import backtest

    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**BACKTEST_SETTINGS, **(settings or {})}.items():
            mp.setenv(key, value)
        return backtest(data_dir=str(data), **{**KWARGS, **kwargs})


def sqlite_rows(data: Path, query: str) -> list[tuple]:
    with sqlite3.connect(data / "sensorcast.db") as connection:
        return connection.execute(query).fetchall()


def backtest_rows(data: Path) -> dict[str, list[tuple]]:
    """Everything a backtest writes, without ids, wall-clock times and file hashes."""
    return {
        "forecasts": sqlite_rows(data, "select backtest_id, issued_at, target_time, "
                                 "horizon_hours, value, model_name, model_version, "
                                 "out_of_sample, target from backtest_forecasts order by 2, 3"),
        "steps": sqlite_rows(data, "select kind, at, outcome from backtest_steps order by at, "
                             "kind"),
        "versions": sqlite_rows(data, "select model_name, version, family, train_end, "
                                "holdout_mae from model_versions where model_name like "
                                "'%@backtest-%' order by 1, 2"),
        "events": sqlite_rows(data, "select e.decision, e.reason, v.version from "
                              "promotion_events e left join model_versions v on "
                              "v.id = e.candidate_version_id where e.model_name like "
                              "'%@backtest-%' order by e.id"),
    }


def live_state(data: Path) -> dict[str, list[tuple]]:
    return {table: sqlite_rows(data, f"select * from {table} where model_name = '{NAME}'"
                                     " or model_name not like '%@%' order by 1")
            for table in ("forecasts", "model_versions", "promotion_events", "model_aliases")}


@pytest.fixture(scope="module")
def prepared(prefect_harness, tmp_path_factory):
    """36 simulated days with a live champion and live forecasts, before any backtest."""
    data = tmp_path_factory.mktemp("backtest-data")
    store = station(data, simulate_station("2021-01-01", 36, seed=11))
    store.close()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in BACKTEST_SETTINGS.items():
            mp.setenv(key, value)
        retrain_small(data_dir=str(data), families=["blend"])
    from flows.forecast import forecast

    forecast(data_dir=str(data), at=END, days=1)
    return data


@pytest.fixture(scope="module")
def uninterrupted(prepared, tmp_path_factory):
    data = tmp_path_factory.mktemp("backtest-run") / "data"
    shutil.copytree(prepared, data)
    return data, run_backtest(data)


def test_a_backtest_replays_the_schedule_and_scores_out_of_sample(uninterrupted):
    data, result = uninterrupted
    steps = plan(START, END, timedelta(days=5))
    assert result["steps"] == len(steps) == 11 + 3 and result["resumed_after"] == 0
    rows = backtest_rows(data)
    assert [(kind, at) for kind, at, _ in rows["steps"]] == [
        (s.kind, f"{s.at:%Y-%m-%d %H:%M:%S}") for s in sorted(steps, key=lambda s: (s.at,
                                                                                     s.kind))]
    issued = {r[1] for r in rows["forecasts"]}
    assert len(issued) == 11 and len(rows["forecasts"]) == 11 * 24
    assert all(r[7] for r in rows["forecasts"])  # out of sample, every one
    # Each forecast came from the champion of its day: a version trained by then.
    trained_to = {(name, v): end for name, v, _, end, _ in rows["versions"]}
    for _, issued_at, *_, name, version, _, _ in rows["forecasts"]:
        if version is not None:
            assert trained_to[(name, version)] <= issued_at
    assert {r[0] for r in rows["versions"]} == {f"{NAME}@backtest-1"}
    store = open_store(f"sqlite:///{data / 'sensorcast.db'}", JENA)
    with store.sessions() as session:
        skill = read_view(session, "backtest_skill", backtest_id=result["backtest_id"])
    store.close()
    assert len(skill) == 11 * 24 and skill.actual.notna().all()
    assert [r["horizon_hours"] for r in result["skill"]] == list(range(1, 25))
    assert all(r["persistence"] > 0 and r["seasonal_persistence"] > 0 for r in result["skill"])


def test_a_backtest_leaves_the_live_champion_and_live_forecasts_untouched(prepared,
                                                                         uninterrupted):
    data, _ = uninterrupted
    assert live_state(data) == live_state(prepared)
    store = open_store(f"sqlite:///{data / 'sensorcast.db'}", JENA)
    with store.sessions() as session:
        # the prepared retrain's blend (composed with best naive where it did not win)
        assert champion(session, NAME).family in ("blend", "composed")
        assert len(session.scalars(select(ForecastRow)).all()) == 2 * 24
    store.close()


def test_a_backtests_models_and_forecasts_never_see_data_after_their_time(prepared,
                                                                          uninterrupted,
                                                                          tmp_path):
    """Every observation after the middle retrain changed (or deleted): the retrains up to
    it and every forecast issued up to it are identical; later ones differ."""
    data, _ = uninterrupted
    changed = tmp_path / "data"
    shutil.copytree(prepared, changed)
    after = f"{MIDDLE:%Y-%m-%d %H:%M:%S}"
    with sqlite3.connect(changed / "sensorcast.db") as connection:
        connection.execute("update observations set t_degc = t_degc + 4, p_mbar = p_mbar - 9 "
                           "where observed_at > ?", (after,))
        connection.execute("delete from observations where observed_at > ? and "
                           "strftime('%M', observed_at) = '40'", (after,))
    run_backtest(changed)
    original, replayed = backtest_rows(data), backtest_rows(changed)

    def upto(rows, column, key):
        return [r for r in rows if r[column] <= after] if key else \
            [r for r in rows if r[column] > after]

    assert upto(replayed["forecasts"], 1, True) == upto(original["forecasts"], 1, True)
    assert upto(replayed["versions"], 3, True) == upto(original["versions"], 3, True)
    candidates = [v for v in upto(original["versions"], 3, True) if v[2] != "composed"]
    assert len(candidates) == 2 * len(FAMILIES)
    assert upto(replayed["forecasts"], 1, False) != upto(original["forecasts"], 1, False)


def test_a_backtest_killed_half_way_resumes_to_exactly_the_rows_of_an_uninterrupted_run(
        prepared, uninterrupted, tmp_path):
    from prefect.settings import PREFECT_API_URL

    data, _ = uninterrupted
    killed = tmp_path / "data"
    shutil.copytree(prepared, killed)
    command = [str(Path(sys.executable).with_name("sensorcast")), "--data-dir", str(killed),
               "backtest", "--start", START.isoformat(), "--end", END.isoformat(),
               "--retrain-every", "5d", *[f"--family={f}" for f in FAMILIES]]
    env = {**os.environ, **BACKTEST_SETTINGS, "PREFECT_API_URL": PREFECT_API_URL.value()}
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    done = 0
    while time.monotonic() < deadline and child.poll() is None:
        try:
            done = sqlite_rows(killed, "select count(*) from backtest_steps")[0][0]
        except sqlite3.OperationalError:  # not created yet
            done = 0
        if done >= 5:
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    assert child.wait(timeout=60) == -signal.SIGKILL, child.stdout.read().decode()[-3000:]
    finished = sqlite_rows(killed, "select count(*) from backtest_steps")[0][0]
    assert 5 <= finished < 14
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resumed after {finished} finished steps" in resumed.stdout
    assert "vs best naive" in resumed.stdout
    assert backtest_rows(killed) == backtest_rows(data)
    assert sqlite_rows(killed, "select id, status from backtests") == [(1, "complete")]


def test_a_backtest_stopped_by_sigterm_to_its_process_group_exits_in_seconds_in_one_line(
        prepared, tmp_path):
    """As a service manager or a terminal stops it: the whole group, its own temporary
    Prefect server included, gets SIGTERM. It used to retry that dead server for two
    minutes and print tracebacks; now the server is out of the group, the run is recorded
    as crashed, the command exits, and the finished steps stay for a resume."""
    import psutil

    stopped = tmp_path / "data"
    shutil.copytree(prepared, stopped, ignore=shutil.ignore_patterns("prefect"))
    command = [str(Path(sys.executable).with_name("sensorcast")), "--data-dir", str(stopped),
               "backtest", "--start", START.isoformat(), "--end", END.isoformat(),
               "--retrain-every", "5d", "--family=blend"]
    env = {k: v for k, v in {**os.environ, **BACKTEST_SETTINGS}.items()
           if k not in ("PREFECT_API_URL", "PREFECT_HOME")}  # its own temporary server
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline, done = time.monotonic() + 300, 0
    while time.monotonic() < deadline and child.poll() is None and done < 1:
        try:
            done = sqlite_rows(stopped, "select count(*) from backtest_steps")[0][0]
        except sqlite3.OperationalError:  # not created yet
            pass
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGTERM)
    started = time.monotonic()
    output = child.communicate(timeout=120)[0]
    assert time.monotonic() - started < 20 and child.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output, output[-3000:]
    assert [line for line in output.splitlines() if line.startswith("stopped")] == [
        "stopped (SIGTERM); what finished is stored: run the same command again to go on"]
    assert sqlite_rows(stopped, "select count(*) from backtest_steps")[0][0] >= 1
    home = str((stopped / "prefect").resolve())
    time.sleep(1)

    def serves_it(process: psutil.Process) -> bool:
        try:
            return "uvicorn" in " ".join(process.cmdline()) and \
                process.environ().get("PREFECT_HOME") == home
        except psutil.Error:  # gone meanwhile
            return False

    assert not any(map(serves_it, psutil.process_iter()))  # its temporary server stopped


def test_a_backtest_replays_the_weekly_network_cadence_as_the_schedule_runs_it(prepared,
                                                                              tmp_path):
    """Retrains every 3 days: the GRU is fitted at the first and, not due again for a week,
    left out of the next, as the scheduled retrain would."""
    data = tmp_path / "data"
    shutil.copytree(prepared, data)
    run_backtest(data, {"SENSORCAST_FORECAST__NETWORK_FOLDS": "1"}, start=MIDDLE, end=END,
                 retrain_every_hours=72, families=["blend", "gru"], epochs=1)
    families = [f for (f,) in sqlite_rows(data, "select family from model_versions where "
                                                "model_name like '%@backtest-%' order by id")]
    assert families.count("gru") == 1 and families.count("blend") == 2, families


def test_a_backtest_issues_as_often_as_the_forecast_is_scheduled(prepared, tmp_path):
    """A forecast every 3 hours replays as eight issues a day; the cadence is part of the
    specification a backtest resumes."""
    data = tmp_path / "data"
    shutil.copytree(prepared, data)
    end = MIDDLE + timedelta(hours=12)
    result = run_backtest(data, start=MIDDLE, end=end, retrain_every_hours=5 * 24,
                          issue_every_hours=3, families=["blend"])
    issued = [at for (at,) in sqlite_rows(data, "select distinct issued_at from "
                                                "backtest_forecasts order by 1")]
    assert issued == [f"{MIDDLE + timedelta(hours=3 * k):%Y-%m-%d %H:%M:%S}"
                      for k in range(5)], issued
    assert result["steps"] == 1 + 5

    from registry.backtests import progress, start_or_resume

    store = open_store(f"sqlite:///{data / 'sensorcast.db'}", JENA)
    try:
        with store.sessions.begin() as session:
            spec = NAME, MIDDLE, end, timedelta(hours=72), {"families": ["blend"]}
            running = start_or_resume(session, *spec, timedelta(hours=3))
            assert start_or_resume(session, *spec, timedelta(hours=3)).id == running.id
            assert start_or_resume(session, *spec).id != running.id
            assert progress(session, *spec, timedelta(hours=3)) == 0
    finally:
        store.close()
