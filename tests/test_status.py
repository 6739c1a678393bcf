"""`sensorcast status`: each station's state from the system of record, and an exit code a
cron job or a health check can act on (1 when data or forecasts are stale)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from typer.testing import CliRunner

from flows.cli import app
from forecasting.station.simulate import simulate_station, simulate_until, write_station_csv
from registry.forecasts import ForecastRun, record_run
from tests.conftest import station

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
