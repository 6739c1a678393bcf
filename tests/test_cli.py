"""`sensorcast` commands: summaries, exit codes, clear errors."""

from __future__ import annotations

import sqlite3

import pytest

from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import JENA_HEADER, JENA_SAMPLE

runner = CliRunner()


def test_simulate_then_ingest_prints_summary_and_is_idempotent(tmp_path):
    data = str(tmp_path / "data")
    out = tmp_path / "feed.csv"
    result = runner.invoke(app, ["simulate", "--out", str(out), "--days", "2", "--seed", "1",
                                 "--sentinels", "0.05", "--start", "2021-01-01"])
    assert result.exit_code == 0, result.output
    first = runner.invoke(app, ["--data-dir", data, "ingest", str(out)])
    assert first.exit_code == 0, first.output
    assert "288 read" in first.output and "quarantined" in first.output
    second = runner.invoke(app, ["--data-dir", data, "ingest", str(out)])
    assert "skipped" in second.output


def test_simulated_data_ends_now_unless_a_start_is_given(tmp_path):
    """So that `forecast` right after `simulate` and `ingest` has current data."""
    import pandas as pd

    from forecasting.station.schema import JENA

    now = pd.Timestamp.now(JENA.timezone).tz_localize(None)
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "a.csv"), "--days", "3"])
    assert result.exit_code == 0 and "3 days up to now" in result.output, result.output
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "net"), "--days", "3",
                                 "--stations", "2"])
    assert result.exit_code == 0, result.output
    for path in [tmp_path / "a.csv", *sorted((tmp_path / "net").rglob("*.csv"))]:
        times = pd.to_datetime(pd.read_csv(path)["Date Time"], format="%d.%m.%Y %H:%M:%S")
        assert now - pd.Timedelta(minutes=20) <= times.max() <= now, path
        assert times.min() <= now - pd.Timedelta(days=3), path


def test_refused_file_exits_non_zero_naming_the_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(JENA_HEADER.replace('"T (degC)",', "") + "\n")
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "d"), "ingest", str(bad)])
    assert result.exit_code == 1
    assert "T (degC)" in result.output


def test_a_file_none_of_whose_timestamps_parse_is_refused_and_its_rows_kept(tmp_path):
    """ISO timestamps where the station writes dd.mm.yyyy: not 'complete' with 0 rows."""
    rows = JENA_SAMPLE.read_text().splitlines()[1:4]
    iso = tmp_path / "iso.csv"
    iso.write_text("\n".join([JENA_HEADER, *(
        f"2009-01-01 00:{10 * (i + 1):02d}:00," + row.split(",", 1)[1]
        for i, row in enumerate(rows))]) + "\n")
    data = tmp_path / "d"
    for attempt in range(2):
        result = runner.invoke(app, ["--data-dir", str(data), "ingest", str(iso)])
        assert result.exit_code == 1
        assert "refused: none of its 3 rows could be stored, all quarantined; e.g. line 2: " \
               "Date Time" in result.output
    with sqlite3.connect(data / "sensorcast.db") as connection:
        assert connection.execute("select count(*) from quarantined_rows").fetchone() == (3,)
        assert connection.execute("select status from ingest_runs").fetchall() == [
            ("refused",)]  # recorded once


def test_missing_path_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "ingest", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such file or folder" in result.output


def test_drop_folder_is_the_default_source(tmp_path):
    data = tmp_path / "data"
    (data / "incoming").mkdir(parents=True)
    (data / "incoming" / "x.csv").write_bytes(JENA_SAMPLE.read_bytes())
    result = runner.invoke(app, ["--data-dir", str(data), "ingest"])
    assert result.exit_code == 0, result.output
    assert "19 inserted" in result.output


def test_an_invalid_setting_is_one_line_naming_the_field_not_a_traceback(tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("SENSORCAST_FORECAST__FOLDS", "0")
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "models"])
    assert result.exit_code == 2
    assert result.output == "error: invalid settings: forecast.folds: Input should be " \
                            "greater than 0\n"


def test_a_file_name_that_is_not_utf8_or_holds_a_newline_is_stored_and_printed_escaped(
        tmp_path):
    import os

    drop = tmp_path / "d" / "incoming"
    drop.mkdir(parents=True)
    rows = JENA_SAMPLE.read_bytes().split(b"\n")[1:3]
    for name, row in zip((b"caf\xe9.csv", b"forged\n2 read, 2 inserted.csv"), rows):
        with open(os.path.join(os.fsencode(drop), name), "wb") as handle:
            handle.write(JENA_HEADER.encode() + b"\n" + row + b"\n")
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "d"), "ingest"])
    assert result.exit_code == 0, result.output
    assert f"{drop}/caf\\xe9.csv: complete, 1 read" in result.output
    assert f"{drop}/forged\\n2 read, 2 inserted.csv: complete, 1 read" in result.output
    with sqlite3.connect(tmp_path / "d" / "sensorcast.db") as connection:
        sources = sorted(s for s, in connection.execute("select source from ingest_runs"))
    assert sources == [f"{drop}/caf\\xe9.csv", f"{drop}/forged\\n2 read, 2 inserted.csv"]


def test_flows_run_by_the_cli_give_prefect_minutes_to_start_its_server(tmp_path):
    """Under load, 4 of 40 CLI runs failed at Prefect's default 20 s."""
    import os
    import subprocess
    import sys

    script = f"""
from pathlib import Path
from flows.cli.common import prefect_home
from flows.settings import Settings
prefect_home(Settings(data_dir=Path({str(tmp_path)!r})))
from prefect.settings import get_current_settings
print(get_current_settings().server.ephemeral.startup_timeout_seconds)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, check=True)
    assert int(result.stdout) >= 120


def test_a_read_only_database_is_one_line_not_a_traceback(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    sensorcast = str(Path(sys.executable).parent / "sensorcast")
    data = tmp_path / "d"
    first = subprocess.run([sensorcast, "--data-dir", str(data), "ingest", str(JENA_SAMPLE)],
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    read_only = f"sqlite:///file:{data / 'sensorcast.db'}?mode=ro&uri=true"

    def sensorcast_ro(*command):
        return subprocess.run([sensorcast, "--data-dir", str(data), "--database-url",
                               read_only, *command], capture_output=True, text=True,
                              env={**os.environ, "PREFECT_HOME": str(tmp_path / "p")})

    listed = sensorcast_ro("models")  # reading needs no write access
    assert listed.returncode == 0 and "0 version(s)" in listed.stdout, listed.stderr
    other = tmp_path / "other.csv"
    other.write_text(JENA_HEADER + "\n" + JENA_SAMPLE.read_text().splitlines()[-1] + "\n")
    result = sensorcast_ro("ingest", str(other))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: the database refused: attempt to write a "
                                    "readonly database"), result.stderr
    assert "Traceback" not in result.stderr


def test_a_killed_cli_leaves_no_prefect_server_running_after_the_next_call(tmp_path):
    """SIGKILL gives the CLI no chance to stop the ephemeral server it started; the next
    call of the CLI stops it."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import psutil

    from forecasting.station.simulate import simulate_station, write_station_csv

    sensorcast = str(Path(sys.executable).parent / "sensorcast")
    data = tmp_path / "d"
    write_station_csv(data / "incoming" / "a.csv", simulate_station("2021-01-01", 3, seed=1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    cli = subprocess.Popen([sensorcast, "--data-dir", str(data), "forecast",
                            "--at", "2021-01-03T12:00"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline, server = time.monotonic() + 120, None
    while server is None and time.monotonic() < deadline:
        server = next((c for c in psutil.Process(cli.pid).children(recursive=True)
                       if "uvicorn" in " ".join(c.cmdline())), None)
        time.sleep(0.2)
    assert server is not None, "the CLI started no Prefect server"
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait()
    time.sleep(1)
    assert server.is_running()  # orphaned
    subprocess.run([sensorcast, "--data-dir", str(data), "forecast", "--at",
                    "2021-01-03T12:00"], env=env, capture_output=True, timeout=300)
    server.wait(timeout=30)
    assert not server.is_running()


def test_an_absurd_backfill_is_refused_by_the_option_not_a_traceback(tmp_path):
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "forecast", "--days", "1000000"])
    assert result.exit_code == 2
    assert "less than or equal to 36500" in result.output and "Traceback" not in result.output


HOSTILE = [
    (["ingest", "{fifo}"], "is not a regular file"),
    (["ingest", "{noise}"], "the file is binary"),
    (["simulate", "--out", "{tmp}/x.csv", "--gaps", "nan"], "--gaps nan: a fraction"),
    (["simulate", "--out", "{tmp}/x.csv", "--gaps", "2"], "--gaps 2.0: a fraction"),
    (["simulate", "--out", "{tmp}/x.csv", "--duplicates", "-1"], "--duplicates -1.0"),
    (["simulate", "--out", "/dev/full", "--days", "1"], "cannot write /dev/full"),
    (["simulate", "--out", "{tmp}/x.csv", "--start", "2009-13-45"], "--start '2009-13-45'"),
    (["simulate", "--out", "{tmp}/x.csv", "--days", "1e8"], "Invalid value for '--days'"),
    (["retrain", "--family", "nosuch"], "invalid settings: families"),
    (["retrain", "--station", "nope"], "no station 'nope'"),
    (["models", "--station", "nope"], "no station 'nope'"),
    (["promote", "999", "--reason", "x"], "999"),
    (["rollback"], "no previous champion"),
    (["forecast", "--at", "2009-13-45"], "--at '2009-13-45' is not a timestamp"),
    (["backtest", "--start", "garbage", "--end", "2020-01-01"], "--start 'garbage'"),
    (["backtest", "--start", "2020-01-01", "--end", "2020-01-02", "--issue-every", "0h"],
     "issue_every must be positive"),
    (["monitor", "--station", "nope"], "no station 'nope'"),
    (["monitor", "--at", "2009-13-45"], "--at '2009-13-45' is not a timestamp"),
    (["plot", "--days", "-1"], "Invalid value for '--days'"),
    (["demo", "--days", "0"], "Invalid value for '--days'"),
    (["nosuch"], "No such command 'nosuch'"),
    (["--database-url", "garbage", "models"], "is not a database URL"),
    (["--database-url", "mysql://u@h/db", "models"], "mysql is not supported"),
    (["--stations-file", "{tmp}/missing.toml", "models"], "missing.toml"),
]


@pytest.mark.parametrize(("argv", "phrase"), HOSTILE, ids=[" ".join(a) for a, _ in HOSTILE])
def test_every_command_refuses_hostile_arguments_in_one_line_without_a_traceback(
        argv, phrase, tmp_path, monkeypatch, capsys):
    """Through the real entry point (`sensorcast` = flows.cli.run): exit 2 (or 1 for a
    failed run), one line on stderr naming the problem."""
    import os

    from flows.cli import run

    fifo, noise = tmp_path / "fifo.csv", tmp_path / "noise.csv"
    os.mkfifo(fifo)
    noise.write_bytes(bytes(range(256)) * 64)
    args = [a.format(fifo=fifo, noise=noise, tmp=tmp_path) for a in argv]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setattr("sys.argv", ["sensorcast", "--data-dir", str(tmp_path / "d"), *args])
    with pytest.raises(SystemExit) as ended:
        run()
    err = capsys.readouterr().err
    assert ended.value.code in (1, 2), err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and phrase in lines[0], err


def test_a_read_only_data_directory_is_read_and_writes_are_refused_in_one_line(
        tmp_path, monkeypatch, capsys):
    """Made immutable (chattr +i: read-only even for root, as CI runs): `models` reads it;
    every command that would write says so in one line before doing anything."""
    import subprocess

    from flows.cli import run

    data = tmp_path / "d"
    assert CliRunner().invoke(app, ["--data-dir", str(data), "ingest",
                                    str(JENA_SAMPLE)]).exit_code == 0
    if subprocess.run(["chattr", "-R", "+i", str(data)], capture_output=True).returncode:
        pytest.skip("chattr +i is not permitted here")
    try:
        for command, code in [(["models"], 0), (["ingest", str(JENA_SAMPLE)], 2),
                              (["retrain"], 2), (["forecast"], 2), (["monitor"], 2),
                              (["promote", "1", "--reason", "x"], 2)]:
            monkeypatch.setattr("sys.argv", ["sensorcast", "--data-dir", str(data), *command])
            with pytest.raises(SystemExit) as ended:
                run()
            out, err = capsys.readouterr()
            assert ended.value.code == code, (command, err)
            if code:
                assert err.count("\n") == 1 and "Traceback" not in err
                assert f"the data directory {data} is not writable" in err
            else:
                assert "0 version(s)" in out and not err
    finally:
        subprocess.run(["chattr", "-R", "-i", str(data)], check=True)


@pytest.mark.parametrize("flag, what", [("--stations-file", "stations file"),
                                        ("--station-schema", "station schema")])
def test_a_settings_file_that_is_a_device_or_too_large_is_refused_in_one_line(
        tmp_path, flag, what):
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * (5 << 20))
    for path, rule in (("/dev/zero", "not a regular file"), (huge, "larger than 4 MB")):
        result = runner.invoke(app, ["--data-dir", str(tmp_path), flag, str(path), "models"])
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"error: {what} {path}: {rule}")
        assert len(result.output.strip().splitlines()) == 1


def test_a_backtest_of_unbounded_steps_and_an_export_ending_before_it_starts_are_refused(
        tmp_path):
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "backtest", "--start",
                                 "1900-01-01", "--end", "2100-01-01", "--retrain-every", "1s"])
    assert result.exit_code == 2 and "at most 20,000" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "export", "forecasts", "--out",
                                 str(tmp_path / "x.csv"), "--start", "2024-02-01",
                                 "--end", "2024-01-01"])
    assert result.exit_code == 2, result.output
    assert "--end 2024-01-01 is before --start 2024-02-01" in result.output
    assert not (tmp_path / "x.csv").exists()
