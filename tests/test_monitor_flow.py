"""The skill monitor under the real Prefect engine on real SQLite files: a champion that keeps
winning is never touched; one that starts losing (a sensor drifts) is demoted within the
watched period, the event is recorded, and a retrain is started."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from forecasting.scoring.monitor import judge_champion
from forecasting.station.simulate import simulate_station
from forecasting.station.schema import JENA
from tests.conftest import NAME, SMALL, station

SETTINGS = {**SMALL, "SENSORCAST_MONITOR_DAYS": "10", "SENSORCAST_MONITOR_MIN_ISSUES": "4"}
TRAINED = datetime(2021, 4, 10, 12, tzinfo=UTC)  # the champion saw nothing after this
DRIFT = datetime(2021, 4, 12, 12, tzinfo=UTC)


def sql(data: Path, query: str) -> list[tuple]:
    with sqlite3.connect(data / "sensorcast.db") as connection:
        return connection.execute(query).fetchall()


@pytest.fixture
def settings(monkeypatch):
    for key, value in SETTINGS.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def with_ridge_champion(prefect_harness, tmp_path_factory):
    from flows.retrain import retrain

    data = tmp_path_factory.mktemp("monitor")
    station(data, simulate_station("2021-01-01", 120, seed=13)).close()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in SETTINGS.items():
            mp.setenv(key, value)
        board = retrain(data_dir=str(data), families=["ridge"], until=TRAINED)["jena"]
    assert "promoted" in [r["decision"] for r in board]  # the ridge, or it composed
    if sql(data, "select family from model_versions v join model_aliases a on "
                 "a.version_id = v.id") != [("ridge",)]:  # the ridge itself, to watch
        from registry.champions import promote_version
        from registry.store import open_store

        store = open_store(f"sqlite:///{data / 'sensorcast.db'}", JENA)
        with store.sessions.begin() as session:
            promote_version(session, data / "artifacts", NAME, 1, "the ridge to watch", "test")
        store.close()
    return data


def fixture_events(data: Path) -> list[tuple]:
    return sql(data, "select decision from promotion_events order by id")


def forecast_daily(data: Path, days: int) -> None:
    from flows.forecast import forecast

    state = forecast(data_dir=str(data), at=DRIFT + timedelta(days=days), days=days,
                     model="current", return_state=True)
    assert state.is_completed(), state.message


def watch(data: Path, first_day: int, last_day: int) -> list[dict]:
    """The monitor as the daily schedule would run it, until it demotes."""
    from flows.monitor import monitor

    results = []
    for day in range(first_day, last_day + 1):
        results.append(monitor(data_dir=str(data), at=DRIFT + timedelta(days=day),
                               families=["ridge"])["jena"])
        if results[-1]["decision"] == "demoted":
            break
    return results


def test_a_champion_that_keeps_winning_is_never_touched(with_ridge_champion, tmp_path,
                                                        settings):
    data = tmp_path / "data"
    shutil.copytree(with_ridge_champion, data)
    forecast_daily(data, 7)
    results = watch(data, 1, 7)
    assert [r["decision"] for r in results[:3]] == ["not judged"] * 3  # < 4 verified issues
    assert [r["decision"] for r in results[3:]] == ["kept"] * 4
    assert all(g["ratio"] <= 1.05 for r in results[3:] for g in r["groups"])
    assert sql(data, "select decision from promotion_events order by id") == \
        fixture_events(with_ridge_champion)  # nothing demoted or promoted since
    assert sql(data, "select v.version from model_aliases a join model_versions v on "
                     "v.id = a.version_id") == [(1,)]


def test_a_champion_that_starts_losing_is_demoted_and_a_retrain_started(
        with_ridge_champion, tmp_path, settings):
    """From DRIFT on, the logger's clock runs 12 h wrong: every channel reads what it read
    12 h earlier, so the daily cycle is upside down against the clock. The ridge model,
    which learned the cycle from the clock, loses; the naive forecasts, which only look
    back, soon do not."""
    data = tmp_path / "data"
    shutil.copytree(with_ridge_champion, data)
    columns = [c for _, c, *_ in sql(data, "pragma table_info(observations)")][2:]
    with sqlite3.connect(data / "sensorcast.db") as connection:
        connection.execute("create temporary table before as select * from observations")
        connection.execute(
            f"update observations set ({', '.join(columns)}) = (select "
            f"{', '.join(columns)} from before b where b.station = observations.station and "
            "b.observed_at = "
            "datetime(observations.observed_at, '-12 hours')) where observed_at > ?",
            (f"{DRIFT:%Y-%m-%d %H:%M:%S}",))
    forecast_daily(data, 12)
    results = watch(data, 1, 13)
    demoted = len(results)
    assert results[-1]["decision"] == "demoted" and demoted <= 10  # within monitor_days
    assert any(g["ratio"] > 1.05 for g in results[-1]["groups"])
    before = len(fixture_events(with_ridge_champion))
    events = sql(data, "select decision, previous_champion_id, reason, triggered_by "
                       "from promotion_events order by id")[before - 1:]
    assert events[1][:2] == ("demoted", 1) and events[1][2].startswith("skill monitor: over")
    # The retrain it started ran on the data up to the monitor's time, and says who asked.
    retrained = sql(data, "select version, train_end from model_versions where version > 1")
    assert retrained and all(end <= f"{DRIFT + timedelta(days=demoted):%Y-%m-%d %H:%M:%S}"
                             for _, end in retrained)
    assert {e[3] for e in events[2:]} == {"monitor (flow called directly)"}
    assert results[-1]["retrain"].startswith("retrain subflow: Completed")
    # ... and a forecast followed it: the latest forecast is no longer the demoted model's
    assert "forecast subflow: Completed" in results[-1]["retrain"]
    issued = sql(data, "select as_of, status, model_name, model_version from forecast_runs "
                       "where triggered_by like 'monitor%'")
    assert issued == [(f"{DRIFT + timedelta(days=demoted):%Y-%m-%d %H:%M:%S}", "issued",
                       *issued[0][2:])] and issued[0][2:] != ("jena/t_degc_24h", 1)
    if "promoted" not in [e[0] for e in events[2:]]:  # the retrain promoted nothing
        assert sql(data, "select count(*) from model_aliases") == [(0,)]  # naive forecasts


def test_the_monitor_judges_every_group_against_the_better_naive_forecast():
    rows = [{"issued_at": i, "horizon_hours": h, "abs_error": 1.0,
             "persistence_abs_error": 2.0 if h > 6 else 0.8,
             "seasonal_persistence_abs_error": 1.2} for i in range(5) for h in range(1, 25)]
    verdict = judge_champion(pd.DataFrame(rows), 6, 0.05, 4)
    # 1-6 h: best naive is persistence (0.8) and the champion (1.0) loses by 25 %.
    assert verdict.losing and verdict.reason.startswith("over 5 verified issues: 1-6 h MAE")
    assert [g["ratio"] for g in verdict.groups] == [1.25, 0.833, 0.833, 0.833, 0.909]
    assert judge_champion(pd.DataFrame(rows), 6, 0.30, 4).losing is False
    assert judge_champion(pd.DataFrame(rows), 6, 0.05, 6).losing is None
