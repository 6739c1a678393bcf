"""The drop folder's archive loses nothing: a file still being written is not moved, rows
appended after a move are read again, a move across file systems or into a folder that
cannot be written costs only the move, and two ingests of one folder at once both end
cleanly."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.ingest import ingest_source
from forecasting.station.schema import JENA
from forecasting.station.simulate import simulate_station, write_station_csv
from registry.dropfolder import archive
from registry.store import open_store

runner = CliRunner()


def lines_of(days: int, seed: int, start: str = "2020-01-01") -> list[str]:
    """A station file's lines (header first), each with its line end."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"sensorcast-lines-{os.getpid()}.csv"
    write_station_csv(path, simulate_station(start, days, seed=seed))
    lines = path.read_text().splitlines(keepends=True)
    path.unlink()
    return lines


def settled(*paths: Path) -> None:
    """As if written five minutes ago: past the settle time."""
    old = time.time() - 300
    for path in paths:
        os.utime(path, (old, old))


def stored(data: Path) -> int:
    with sqlite3.connect(data / "sensorcast.db") as connection:
        return connection.execute("select count(*) from observations").fetchone()[0]


def ingest(data: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data), "ingest"])
    return result.exit_code, result.output


def test_rows_a_writer_appends_after_the_file_was_moved_are_read_again_once(tmp_path):
    """A logger keeps its file open, pauses past the settle time, the file is moved, the
    logger appends through its open handle: those rows are stored at the next run."""
    data, lines = tmp_path / "data", lines_of(5, seed=1)
    drop = data / "incoming"
    drop.mkdir(parents=True)
    with open(drop / "log.csv", "w") as logger:
        logger.writelines(lines[:401])
        logger.flush()
        settled(drop / "log.csv")
        assert ingest(data)[0] == 0
        assert not (drop / "log.csv").exists() and stored(data) == 400
        logger.writelines(lines[401:721])
    code, output = ingest(data)
    assert code == 0 and "320 inserted, 400 already present" in output, output
    assert stored(data) == 720
    code, output = ingest(data)  # nothing changed since: nothing read
    assert code == 0 and "no CSV files" in output and stored(data) == 720


def test_a_file_whose_last_line_has_no_line_end_stays_until_it_is_finished(tmp_path):
    data, lines = tmp_path / "data", lines_of(1, seed=2)
    drop = data / "incoming"
    drop.mkdir(parents=True)
    (drop / "cut.csv").write_text("".join(lines[:50]) + lines[50][:25])
    settled(drop / "cut.csv")
    code, output = ingest(data)
    assert "49 inserted" in output and "1 quarantined" in output, output
    assert (drop / "cut.csv").exists()  # its writer may still be on that line
    (drop / "cut.csv").write_text("".join(lines[:51]))
    settled(drop / "cut.csv")
    code, output = ingest(data)
    assert code == 0 and "1 inserted" in output and "moved to" in output, output
    assert stored(data) == 50 and not (drop / "cut.csv").exists()


def test_a_file_that_changed_during_its_ingest_is_not_moved(tmp_path):
    drop = tmp_path / "incoming"
    drop.mkdir()
    path = drop / "a.csv"
    path.write_text("".join(lines_of(1, seed=3)))
    settled(path)
    seen = path.stat()  # as the ingest found it
    with open(path, "a") as writer:
        writer.write(lines_of(1, seed=3, start="2020-01-02")[1])
    settled(path)
    assert archive(path, drop / "done", seen, datetime.now(UTC)) is None
    assert path.exists() and not (drop / "done").exists()


def test_a_move_to_another_file_system_copies_verifies_and_then_removes(tmp_path):
    elsewhere = Path("/dev/shm")
    if not elsewhere.is_dir() or elsewhere.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system (/dev/shm) to move to")
    data = tmp_path / "data"
    drop = data / "incoming"
    drop.mkdir(parents=True)
    target = Path(os.path.realpath(elsewhere)) / f"sensorcast-done-{os.getpid()}"
    target.mkdir()
    try:
        (drop / "done").symlink_to(target)
        for name, seed in (("a.csv", 1), ("b.csv", 2), ("c.csv", 3)):
            (drop / name).write_text("".join(lines_of(1, seed, f"2020-01-0{seed}")))
            settled(drop / name)
        code, output = ingest(data)
        assert code == 0, output
        assert stored(data) == 3 * 144 and list(drop.glob("*.csv")) == []
        assert sorted(p.name for p in target.rglob("*.csv")) == ["a.csv", "b.csv", "c.csv"]
        assert list(target.rglob(".*partial")) == []
    finally:
        subprocess.run(["rm", "-rf", str(target)], check=True)


def test_a_folder_files_cannot_be_moved_to_costs_only_the_moves_with_one_warning(tmp_path):
    data = tmp_path / "data"
    drop = data / "incoming"
    drop.mkdir(parents=True)
    (drop / "done").write_text("in the way\n")  # the ingested folder cannot be made
    for name, seed in (("a.csv", 1), ("b.csv", 2), ("c.csv", 3)):
        (drop / name).write_text("".join(lines_of(1, seed, f"2020-01-0{seed}")))
        settled(drop / name)
    code, output = ingest(data)
    assert code == 0 and stored(data) == 3 * 144, output
    warnings = [line for line in output.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "3 file(s) stored but left in place" in warnings[0]
    assert sorted(p.name for p in drop.glob("*.csv")) == ["a.csv", "b.csv", "c.csv"]


def test_two_ingests_of_one_drop_folder_at_once_both_end_cleanly(tmp_path):
    data = tmp_path / "data"
    drop = data / "incoming"
    drop.mkdir(parents=True)
    for day in range(1, 25):
        path = drop / f"{day:02d}.csv"
        path.write_text("".join(lines_of(1, day, f"2020-01-{day:02d}")))
        settled(path)
    command = [str(Path(sys.executable).with_name("sensorcast")), "--data-dir", str(data),
               "ingest"]
    store = open_store(f"sqlite:///{data / 'sensorcast.db'}", JENA)  # the tables, first
    store.close()
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in both]
    for process, output in zip(both, outputs):
        assert process.returncode == 0, output
        assert "Errno" not in output and "Traceback" not in output, output
    said = {line.split(":")[0] for line in "".join(outputs).splitlines()
            if line.split(":")[0].endswith(".csv")}  # a run that came late finds none
    assert said == {str(drop / f"{day:02d}.csv") for day in range(1, 25)}
    assert stored(data) == 24 * 144 and list(drop.glob("*.csv")) == []
    assert len(list((drop / "done").rglob("*.csv"))) == 24


@pytest.mark.parametrize("folder", ["../outside", "/tmp/elsewhere", "../../x"])
def test_an_ingested_folder_outside_the_drop_folder_is_refused_in_one_line(
        tmp_path, monkeypatch, folder):
    monkeypatch.setenv("SENSORCAST_INGESTED_FOLDER", folder)
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "ingest"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "ingested_folder" in errors[0] and \
        "inside the drop folder" in errors[0], result.output
    assert not (tmp_path / "sensorcast.db").exists()
