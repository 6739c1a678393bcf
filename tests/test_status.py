"""`sensorcast status`: each station's state from the system of record, and an exit code a
cron job or a health check can act on (1 when data or forecasts are stale)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from forecasting.station.simulate import simulate_station, simulate_until, write_station_csv
from registry.forecasts import ForecastRun, record_run, write_forecast
from tests.conftest import NAME, station

runner = CliRunner()


def status(data) -> tuple[int, str]:
    done = runner.invoke(app, ["--data-dir", str(data), "status"])
    return done.exit_code, done.output


def test_status_exits_non_zero_while_a_station_is_stale_and_zero_once_it_is_current(tmp_path):
    now = datetime.now(UTC)
    store = station(tmp_path, simulate_until(pd.Timestamp(now), 3, seed=2))
    code, output = status(tmp_path)
    assert code == 1 and "STALE: no forecast issued" in output, output
    assert "min ago)" in output.split("newest observation")[1].splitlines()[0]
    assert "champion            none (forecasts are best naive)" in output

    with store.sessions.begin() as session:  # what the forecast flow records
        record_run(session, ForecastRun("jena", now, now, "issued", "best_naive", None, 24,
                                        ""), "test")
    write_station_csv(tmp_path / "incoming" / "next.csv", simulate_until(pd.Timestamp(now), 1))
    code, output = status(tmp_path)
    store.close()
    assert code == 0 and "status              ok" in output, output
    assert "by best_naive" in output and "forecast " in output.split("last runs")[1]
    assert "1 file(s) waiting" in output and "ingest " in output.split("last runs")[1]


def test_a_station_whose_newest_observation_is_old_is_stale_saying_how_old(tmp_path):
    station(tmp_path, simulate_station("2021-01-01", 3, seed=1)).close()
    code, output = status(tmp_path)
    assert code == 1
    assert "STALE: newest observation" in output and "days old (a forecast refuses data " \
        "older than 3.0 h)" in output


def test_status_judges_freshness_by_the_time_a_forecast_is_for_not_when_it_was_written(
        tmp_path):
    """A backfill (`forecast --at <past>`) written a minute ago does not make a daily
    forecast that stopped days ago look fresh."""
    now = datetime.now(UTC)
    store = station(tmp_path, simulate_until(pd.Timestamp(now), 3, seed=2))
    with store.sessions.begin() as session:
        past = now - pd.Timedelta(days=3)
        record_run(session, ForecastRun("jena", past, past, "issued", "best_naive", None, 24,
                                        ""), "backfill")
    store.close()
    code, output = status(tmp_path)
    assert code == 1 and "STALE: newest forecast is as of 3.0 days ago" in output, output


def test_status_names_the_promotion_of_the_last_retrain_and_no_file_it_already_stored(
        tmp_path):
    from registry.registration import register_version
    from registry.versions import NewVersion, record_event
    from tests.conftest import tiny_blend

    now = datetime.now(UTC)
    store = station(tmp_path, simulate_until(pd.Timestamp(now), 3, seed=2))
    (tmp_path / "incoming").mkdir()
    shutil.copy(tmp_path / "feed.csv", tmp_path / "incoming")  # stored, not moved yet
    model = tiny_blend()
    new = NewVersion(model_name=NAME, family="blend",
                     params=model.params.model_dump(mode="json"), train_start=now,
                     train_end=now, rows=1, holdout_windows=1, holdout_mae=(1.0,) * 3,
                     persistence_mae=(2.0,) * 3, best_naive_mae=(2.0,) * 3,
                     seasonal_mae=(2.0,) * 3, library_versions={}, intervals={})
    with store.sessions.begin() as session:  # one retrain: the second candidate last
        first = register_version(session, tmp_path / "artifacts", new, model)
        second = register_version(session, tmp_path / "artifacts", new, model)
        record_event(session, NAME, "promoted", "won", "test", first)
        record_event(session, NAME, "rejected", "lost", "test", second)
    store.close()
    code, output = status(tmp_path)
    assert "retrain " in output and f": promoted blend v{first.version}" in output, output
    assert "0 file(s) waiting" in output


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "bad header":
        path.write_bytes(b"not a database!!" + data[16:])
    elif how == "truncated":
        path.write_bytes(data[:20_000])
    else:
        path.write_bytes(b"")


@pytest.mark.parametrize("how, command", [
    ("bad header", ["status"]), ("truncated", ["export", "latest", "--out", "x.csv"]),
    ("empty", ["models"]), ("empty", ["status"])])
def test_read_only_commands_on_a_damaged_database_refuse_in_one_line_and_change_nothing(
        tmp_path, how, command):
    import subprocess
    import sys

    station(tmp_path, simulate_station("2021-01-01", 3, seed=1)).close()
    database = tmp_path / "sensorcast.db"
    damage(database, how)
    before = database.read_bytes()
    done = subprocess.run([str(Path(sys.executable).with_name("sensorcast")), "--data-dir",
                           str(tmp_path), *command], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert done.returncode == 3 and len(errors) == 1, done.stderr
    assert str(database) in errors[0] and "Traceback" not in done.stderr
    assert database.read_bytes() == before


WRITER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
connection.execute("PRAGMA wal_autocheckpoint=0")  # committed pages stay in the WAL
connection.execute("CREATE TEMP TABLE issue AS SELECT * FROM forecasts")
connection.execute("UPDATE issue SET id = id + 1000, issued_at = datetime(issued_at, "
                   "'+1 hour'), target_time = datetime(target_time, '+1 hour')")
connection.execute("INSERT INTO forecasts SELECT * FROM issue")
connection.commit()
print("committed", flush=True)
sys.stdin.read()
"""


def test_read_only_commands_on_a_data_directory_they_cannot_write_read_the_wal(tmp_path):
    """`export` and `status` where the data directory is read-only (an immutable folder,
    which binds root too) see what a writer committed into the write-ahead log."""
    import subprocess
    import sys

    now = pd.Timestamp(datetime.now(UTC)).floor("h")
    store = station(tmp_path, simulate_until(now, 3, seed=2))
    issued = (now - pd.Timedelta(hours=2)).to_pydatetime()
    with store.sessions.begin() as session:
        write_forecast(session, "jena", issued, [issued + pd.Timedelta(hours=h) for h in
                                                 range(1, 25)],
                       [1.0] * 24, "best_naive", None, True, "T (degC)")
        record_run(session, ForecastRun("jena", issued, issued, "issued", "best_naive", None,
                                        24, ""), "test")
    store.close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "sensorcast.db")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "committed"
        if subprocess.run(["chattr", "+i", str(tmp_path)], capture_output=True).returncode:
            pytest.skip("chattr +i is not allowed here: no folder root cannot write")
        try:
            out = tmp_path.parent / f"{tmp_path.name}-export.csv"
            done = runner.invoke(app, ["--data-dir", str(tmp_path), "export", "forecasts",
                                       "--out", str(out)])
            assert done.exit_code == 0 and "wrote 48 rows" in done.output, done.output
        finally:
            subprocess.run(["chattr", "-i", str(tmp_path)], check=True)
    finally:
        writer.communicate("")
