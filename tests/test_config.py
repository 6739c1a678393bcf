"""Settings precedence: defaults < sensorcast.toml < SENSORCAST_* environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from forecasting.config import ForecastParams, NetworkModelParams
from flows.settings import Settings, invalid_settings


def test_each_source_overrides_the_previous(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings().db_url == "sqlite:///data/sensorcast.db"
    (tmp_path / "sensorcast.toml").write_text('data_dir = "from-toml"\nchunk_rows = 10\n')
    assert Settings().data_dir == Path("from-toml")
    assert Settings().db_url == "sqlite:///from-toml/sensorcast.db"
    monkeypatch.setenv("SENSORCAST_DATA_DIR", "from-env")
    assert Settings().data_dir == Path("from-env")
    assert Settings().chunk_rows == 10
    assert Settings(data_dir=Path("from-flag")).data_dir == Path("from-flag")


def test_station_defaults_to_jena(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (station,) = Settings().stations
    assert station.name == "jena"
    assert station.target == "T (degC)"
    assert len(station.channels) == 14


def test_an_ensemble_without_other_families_is_refused_naming_the_field():
    with pytest.raises(ValidationError) as refused:
        ForecastParams(families=("ensemble",))
    assert invalid_settings(refused.value) == (
        "families: Value error, the ensemble averages the other families, so it needs at "
        "least one of them beside it")
    assert ForecastParams(families=("ridge", "ensemble")).families == ("ridge", "ensemble")
    with pytest.raises(ValidationError, match="each family once, please: ridge, ridge"):
        ForecastParams(families=("ridge", "ridge"))


def test_the_readme_lists_every_setting():
    """The README's settings table names every field of the settings objects."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("| setting | default | what it does |"):]
    table = table[:table.index("\n\n")]
    names = [n for n in Settings.model_fields if n not in ("forecast", "network_model")]
    names += [f"forecast.{n}" for n in ForecastParams.model_fields]
    names += [f"network_model.{n}" for n in NetworkModelParams.model_fields]
    missing = [n for n in names if f"| `{n}` |" not in table]
    assert missing == []


def test_issue_hours_outside_a_day_are_refused_and_their_neighbours_are_scored():
    with pytest.raises(ValidationError) as refused:
        ForecastParams(issue_hours=(3, 24))
    assert invalid_settings(refused.value) == (
        "issue_hours: Value error, issue hours are hours of the day, 0-23 (got [3, 24])")
    assert ForecastParams(issue_hours=(23,)).scored_hours == {20, 21, 22, 23, 0, 1, 2}
    assert ForecastParams(issue_hours=(), step_minutes=10).scored_per_day == 144
    assert ForecastParams(issue_hours=(3, 4), issue_spread_hours=0).scored_per_day == 2
    assert ForecastParams(issue_hours=()).overlap_windows == 24  # a day of hourly windows
    assert ForecastParams(issue_hours=(3,)).overlap_windows == 7  # 7 scored a day
