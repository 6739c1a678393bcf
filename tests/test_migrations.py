"""A database written by the code before the best-naive gate opens without losing a row: the
new columns are added (NULL in old rows) and the changed view is recreated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from forecasting.schema import JENA
from registry.forecasts import read_view
from registry.store import open_store
from registry.versions import list_events, list_versions

OLD_DUMP = Path(__file__).parent / "fixtures" / "database_before_best_naive.sql"  # `.dump` of it


def test_an_older_database_gains_the_new_columns_and_keeps_every_row(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(OLD_DUMP.read_text())
        before = {table: connection.execute(f"select * from {table} order by 1").fetchall()
                  for table in ("observations", "model_versions", "promotion_events",
                                "forecasts", "forecast_runs")}
    assert all(before.values())

    store = open_store(f"sqlite:///{path}", JENA)
    with store.sessions() as session:
        (version,) = list_versions(session, "t_degc_24h")
        (event,) = list_events(session, "t_degc_24h")
        skill = read_view(session, "forecast_skill")
    store.close()
    assert (version.holdout_mean, version.persistence_mean) == (1.5, 2.0)
    assert version.best_naive_mean is None and event.best_naive_mean is None
    assert event.reason == "beat persistence" and event.groups is None
    assert skill.seasonal_persistence_forecast.tolist() == [1.0, 2.0]  # a day before target
    assert skill.forecast.tolist() == [5.0, 6.0]

    with sqlite3.connect(path) as connection:
        for table, rows in before.items():  # the old columns hold exactly what they held
            width = len(rows[0])
            after = connection.execute(f"select * from {table} order by 1").fetchall()
            assert [row[:width] for row in after] == rows, table
    open_store(f"sqlite:///{path}", JENA).close()  # opening again changes nothing
