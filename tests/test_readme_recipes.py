"""Every SQL recipe of the README runs as written: each `sqlite3` line on a SQLite file and,
unless it uses SQLite's `datetime(...)`, on a real PostgreSQL server too; each `psql` line on
PostgreSQL. The database holds ingested rows and issued forecasts, so the views have rows."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC
from pathlib import Path

import pandas as pd
import psycopg

from forecasting.config import ForecastParams
from forecasting.issue import forecast_as_of
from forecasting.station.simulate import simulate_station, write_station_csv
from registry.forecasts import write_forecast
from registry.ingestion import ingest_file
from registry.observations import read_observations

README = Path(__file__).resolve().parents[1] / "README.md"
SQLITE = re.compile(r'^\s*sqlite3 [^"]*"(.*?)"', re.MULTILINE | re.DOTALL)
PSQL = re.compile(r'^\s*psql "[^"]*" -c "(.*?)"', re.MULTILINE | re.DOTALL)


def recipes() -> tuple[list[str], list[str]]:
    text = README.read_text()
    return SQLITE.findall(text), PSQL.findall(text)


def with_forecasts(store, tmp_path) -> None:
    frame = simulate_station("2021-01-01", 10, seed=2)
    ingest_file(store, write_station_csv(tmp_path / "feed.csv", frame), 50_000)
    with store.sessions() as session:
        observed = read_observations(session, store.observations)
    for at in (pd.Timestamp("2021-01-07 06:00"), pd.Timestamp("2021-01-08 06:00")):
        forecast = forecast_as_of(observed, store.station, ForecastParams(lookback_hours=48), at)
        times = [t.to_pydatetime().replace(tzinfo=UTC) for t in forecast.target_times]
        with store.sessions.begin() as session:
            write_forecast(session, "jena", forecast.issued_at.to_pydatetime().replace(
                tzinfo=UTC), times, forecast.values.tolist(), forecast.naive, None, True,
                "t_degc")


def test_the_readme_has_recipes_for_both_databases():
    on_sqlite, on_postgresql = recipes()
    assert len(on_sqlite) >= 10 and on_postgresql
    assert any("latest_forecast" in sql for sql in on_sqlite)


def test_every_readme_recipe_runs_on_its_databases(store, database_url, tmp_path):
    with_forecasts(store, tmp_path)
    on_sqlite, on_postgresql = recipes()
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        run = connection.execute
        sqls = on_sqlite
    else:
        connection = psycopg.connect(database_url.replace("postgresql+psycopg://",
                                                          "postgresql://"))
        run = connection.execute
        sqls = [sql for sql in on_sqlite if "datetime(" not in sql] + on_postgresql
    try:
        for sql in sqls:
            rows = run(sql).fetchall()
            if "from latest_forecast" in sql:
                assert len(rows) == 24, sql
            if "from forecast_skill where model_version is not null" in sql:
                assert rows == [], sql  # naive forecasts only here
    finally:
        connection.close()
