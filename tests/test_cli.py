"""`sensorcast` commands: summaries, exit codes, clear errors."""

from __future__ import annotations

from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import JENA_HEADER, JENA_SAMPLE

runner = CliRunner()


def test_simulate_then_ingest_prints_summary_and_is_idempotent(tmp_path):
    data = str(tmp_path / "data")
    out = tmp_path / "feed.csv"
    result = runner.invoke(app, ["simulate", "--out", str(out), "--days", "2", "--seed", "1",
                                 "--sentinels", "0.05"])
    assert result.exit_code == 0, result.output
    first = runner.invoke(app, ["--data-dir", data, "ingest", str(out)])
    assert first.exit_code == 0, first.output
    assert "288 read" in first.output and "quarantined" in first.output
    second = runner.invoke(app, ["--data-dir", data, "ingest", str(out)])
    assert "skipped" in second.output


def test_refused_file_exits_non_zero_naming_the_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(JENA_HEADER.replace('"T (degC)",', "") + "\n")
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "d"), "ingest", str(bad)])
    assert result.exit_code == 1
    assert "T (degC)" in result.output


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
