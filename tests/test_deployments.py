"""The scheduled deployments: prefect.yaml and the serve script name real flows with valid
parameters, and a real local Prefect API deploys them, runs and records three."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml
from prefect.flows import load_flow_from_entrypoint

from forecasting.config import ForecastParams
from forecasting.station.simulate import simulate_until, write_station_csv
from tests.conftest import SMALL, api

ROOT = Path(__file__).resolve().parents[1]
PREFECT_FILE = ROOT / "deployments" / "prefect.yaml"
EXPECTED = {"ingest": "flows/ingest.py:ingest", "retrain": "flows/retrain.py:retrain",
            "forecast": "flows/forecast.py:forecast", "monitor": "flows/monitor.py:monitor",
            "network-model": "flows/network_model.py:network_model",
            "simulate-feed": "flows/feed.py:simulate_feed"}


def serve_module():
    spec = importlib.util.spec_from_file_location("serve", ROOT / "deployments" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_prefect_yaml_deployment_is_a_real_flow_with_valid_parameters(monkeypatch):
    monkeypatch.chdir(ROOT)  # entrypoints are root-relative
    spec = yaml.safe_load(PREFECT_FILE.read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert {name: d["entrypoint"] for name, d in deployments.items()} == EXPECTED
    for name, d in deployments.items():
        flow = load_flow_from_entrypoint(d["entrypoint"])
        assert flow.name == name
        flow.validate_parameters(d["parameters"])  # raises on an unknown or mistyped one
        assert d["concurrency_limit"]["limit"] == 1
        assert d["work_pool"]["name"] == "sensorcast"
        (schedule,) = d["schedules"]
        assert schedule["timezone"] == "UTC"
    assert deployments["ingest"]["schedules"][0]["interval"] == 600
    retrain_hour = int(deployments["retrain"]["schedules"][0]["cron"].split()[1])
    forecast_hour = int(deployments["forecast"]["schedules"][0]["cron"].split()[1])
    monitor_hour = int(deployments["monitor"]["schedules"][0]["cron"].split()[1])
    assert monitor_hour > forecast_hour > retrain_hour  # fresh champion, then judged
    # The gate judges the forecasts from the hour the schedule issues them at.
    assert ForecastParams().issue_hours == (forecast_hour,)


def test_serve_script_builds_the_same_deployments(monkeypatch):
    monkeypatch.chdir(ROOT)
    served = {d.name: d for d in serve_module().load_deployments()}
    assert set(served) == set(EXPECTED)
    for name, deployment in served.items():
        assert deployment.entrypoint == EXPECTED[name]
        assert deployment.flow_name == name
        assert deployment.concurrency_limit == 1
        assert len(deployment.schedules) == 1
        assert "sensorcast" in deployment.tags
    assert served["retrain"].concurrency_options.collision_strategy == "CANCEL_NEW"
    assert served["retrain"].schedules[0].schedule.cron == "0 2 * * *"
    assert served["ingest"].schedules[0].schedule.interval.total_seconds() == 600
    (trigger,) = served["forecast"].triggers  # and the forecast follows every retrain
    assert trigger.expect == {"prefect.flow-run.Completed"}
    assert trigger.name == "forecast after retrain"
    assert trigger.match_related.root["prefect.resource.name"] == "retrain"


def prefect_cli(*args: str, env: dict) -> str:
    result = subprocess.run([str(Path(sys.executable).parent / "prefect"), *args], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_deployed_flows_run_through_a_worker_and_a_completed_retrain_triggers_a_forecast(
        prefect_server, tmp_path):
    """Deploy prefect.yaml to a real Prefect server (with its event and automation
    services), trigger each deployment, let a process worker run it, and find its rows in
    the product's database; the retrain's completion creates a forecast run at once."""
    data = tmp_path / "data"
    write_station_csv(data / "incoming" / "station.csv",
                      simulate_until(pd.Timestamp.now("UTC"), 40, seed=3))
    env = {**os.environ, **SMALL, "PREFECT_API_URL": f"{prefect_server}/api",
           "PREFECT_HOME": str(tmp_path / "prefect-cli"), "SENSORCAST_DATA_DIR": str(data),
           "SENSORCAST_FORECAST__FAMILIES": '["ridge"]',
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    prefect_cli("work-pool", "create", "sensorcast", "--type", "process", env=env)
    prefect_cli("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all",
                env=env)
    # The deployments stay on the session's server: its scheduler is off, and the UI test
    # after this one runs its flows without a worker, so nothing of theirs runs again.
    run_each_deployment_through_a_worker(prefect_server, data, env)


def run_each_deployment_through_a_worker(server: str, data: Path, env: dict) -> None:
    deployed = {d["name"]: d for d in api(f"{server}/api/deployments/filter", {"offset": 0})}
    assert set(deployed) >= set(EXPECTED)
    for name in EXPECTED:
        assert deployed[name]["entrypoint"] == EXPECTED[name]
        assert [s["active"] for s in deployed[name]["schedules"]] == [True]

    def triggered() -> list[dict]:  # not the runs the scheduler makes for the daily schedule
        return [r for r in api(f"{server}/api/flow_runs/filter",
                               {"deployments": {"name": {"any_": ["forecast"]}}})
                if not r["auto_scheduled"] and r["created_by"]
                and r["created_by"]["type"] == "AUTOMATION"]

    db = data / "sensorcast.db"
    checks = {
        "ingest": "select count(*) from observations",
        "retrain": "select count(*) from model_versions where family != 'composed'",
        "forecast": "select count(*) from latest_forecast",
    }
    counts = {}
    for name, query in checks.items():
        if name == "forecast":  # the retrain's completion has created a forecast run
            deadline = time.monotonic() + 120
            while not triggered() and time.monotonic() < deadline:
                time.sleep(1)
            (run,) = triggered()
            assert run["created_by"]["display_value"] == "forecast after retrain"
        prefect_cli("deployment", "run", f"{name}/{name}", env=env)
        prefect_cli("worker", "start", "--pool", "sensorcast", "--run-once", env=env)
        with sqlite3.connect(db) as connection:
            counts[name] = connection.execute(query).fetchone()[0]
    assert 40 * 144 <= counts["ingest"] <= 41 * 144  # enough for the retrain's 3 folds
    assert counts["retrain"] == 1
    assert counts["forecast"] == 24
    with sqlite3.connect(db) as connection:  # run by hand, so not recorded as the schedule
        started = connection.execute("select triggered_by from forecast_runs union "
                                     "select triggered_by from promotion_events").fetchall()
    # Run by hand, or by the forecast's trigger on the retrain's completion.
    assert ("manual run (UI or API)",) in started
    assert all(who == "manual run (UI or API)" or who.startswith("automation forecast")
               for (who,) in started)
