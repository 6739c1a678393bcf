"""The storage cycle a scheduled deployment runs, on SQLite and on a real PostgreSQL server:
ingest (true counts), re-ingest, forecasts written once, the SQL views that score them, and
backtest rows kept apart."""

from __future__ import annotations

from datetime import UTC, timedelta

import pandas as pd
from sqlalchemy import func, select, text

from forecasting.config import ForecastParams
from forecasting.issue import forecast_as_of
from forecasting.station.simulate import simulate_station, write_station_csv
from registry.backtests import (FORECAST, Step, finish, finish_step, progress, start_or_resume,
                                write_backtest_forecast)
from registry.forecasts import read_view, write_forecast
from registry.ingestion import ingest_file
from registry.observations import read_observations


def test_ingest_forecast_and_score_give_true_counts_on_both_databases(store, tmp_path):
    frame = simulate_station("2021-01-01", 20, seed=2)
    path = write_station_csv(tmp_path / "feed.csv", frame)
    first = ingest_file(store, path, 5_000)
    assert (first.rows_read, first.rows_inserted, first.rows_present) == (20 * 144, 20 * 144, 0)
    overlap = write_station_csv(tmp_path / "overlap.csv", frame.iloc[-300:])
    again = ingest_file(store, overlap, 5_000)
    assert (again.rows_inserted, again.rows_present) == (0, 300)  # not -1
    # stored and new rows in one chunk: PostgreSQL's COPY path counts exactly what it adds
    more = pd.concat([frame.iloc[-300:],
                      simulate_station("2021-01-01", 21, seed=2).iloc[20 * 144:20 * 144 + 100]])
    mixed = ingest_file(store, write_station_csv(tmp_path / "mixed.csv", more), 5_000)
    assert (mixed.rows_read, mixed.rows_inserted, mixed.rows_present) == (400, 100, 300)
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(store.observations.table)) == \
            20 * 144 + 100

    with store.sessions() as session:
        observed = read_observations(session, store.observations)
    params = ForecastParams(lookback_hours=48)
    issues = [pd.Timestamp("2021-01-15 06:00"), pd.Timestamp("2021-01-16 06:00")]
    for at in issues:
        forecast = forecast_as_of(observed, store.station, params, at)
        times = [t.to_pydatetime().replace(tzinfo=UTC) for t in forecast.target_times]
        issued = forecast.issued_at.to_pydatetime().replace(tzinfo=UTC)
        with store.sessions.begin() as session:
            args = (session, "jena", issued, times, forecast.values.tolist(), forecast.naive,
                    None, True, "t_degc")
            assert write_forecast(*args) == 24
            assert write_forecast(*args) == 0  # a re-run adds nothing, and says so

    with store.sessions() as session:
        latest = read_view(session, "latest_forecast")
        skill = read_view(session, "forecast_skill")
        count = session.scalar(select(func.count()).select_from(text("forecasts")))
    assert count == 48 and len(latest) == 24
    assert latest.issued_at.unique().tolist() == [issues[-1]]
    assert len(skill) == 48 and skill.out_of_sample.all() and set(skill.target) == {"t_degc"}
    row = skill.iloc[30]  # an issue's seasonal persistence is the value 24 h before target
    day_before = observed.loc[row.target_time - timedelta(days=1), "t_degc"]
    assert row.seasonal_persistence_forecast == day_before
    assert abs(row.abs_error - abs(row.forecast - row.actual)) < 1e-9


def test_backtest_forecasts_are_scored_apart_from_live_ones_and_resume_by_spec(store,
                                                                              tmp_path):
    ingest_file(store, write_station_csv(tmp_path / "feed.csv",
                                         simulate_station("2021-01-01", 6, seed=3)), 5_000)
    with store.sessions() as session:
        observed = read_observations(session, store.observations)
    forecast = forecast_as_of(observed, store.station, ForecastParams(lookback_hours=48),
                              pd.Timestamp("2021-01-04 06:00"))
    rows = {"station": "jena", "issued_at": forecast.issued_at.to_pydatetime().replace(tzinfo=UTC),
            "target_times": [t.to_pydatetime().replace(tzinfo=UTC)
                             for t in forecast.target_times],
            "values": forecast.values.tolist(), "model_name": forecast.naive,
            "model_version": None, "out_of_sample": True, "target": "t_degc"}
    spec = ("jena/t_degc_24h", rows["issued_at"], rows["issued_at"] + timedelta(days=1),
            timedelta(days=7), {"seed": 0})
    step = Step(FORECAST, rows["issued_at"])
    with store.sessions.begin() as session:
        run = start_or_resume(session, *spec)
        assert write_backtest_forecast(session, run.id, **rows) == 24
        finish_step(session, run.id, step, "issued")
    with store.sessions.begin() as session:
        again = start_or_resume(session, *spec)
        assert write_backtest_forecast(session, run.id, **rows) == 0
        assert progress(session, *spec) == 1
    assert (again.id, again.model_name, again.done) == (
        run.id, f"jena/t_degc_24h@backtest-{run.id}", frozenset({step}))
    with store.sessions.begin() as session:
        finish(session, run.id)
    with store.sessions.begin() as session:
        assert start_or_resume(session, *spec).id != run.id  # a finished one is never reopened
        skill = read_view(session, "backtest_skill", backtest_id=run.id)
        assert read_view(session, "forecast_skill").empty
        assert read_view(session, "latest_forecast").empty
    assert len(skill) == 24 and set(skill.backtest_id) == {run.id}
    assert skill.persistence_abs_error.notna().all()


def test_inserting_rows_some_already_stored_adds_only_the_new_and_counts_them(store):
    """The bulk insert on its own: on PostgreSQL a COPY that meets a stored key falls back
    to the insert that skips it, in the same transaction; nothing stored changes."""
    import numpy as np

    from registry.observations import insert_observations, stored_between

    times = np.arange("2021-01-01T00:00", "2021-01-01T10:00", 10, dtype="datetime64[m]")
    times = times.astype("datetime64[s]")
    values = np.arange(len(times) * len(store.station.columns), dtype=float).reshape(
        len(times), -1)
    with store.sessions.begin() as session:
        assert insert_observations(session, store.observations, times[:40], values[:40]) == 40
    with store.sessions.begin() as session:  # 20 stored (other values), 20 new
        assert insert_observations(session, store.observations, times[20:],
                                   values[20:] + 1000) == 20
    later = times + np.timedelta64(1, "D")
    blank = values.copy()
    blank[::2, 3] = np.nan  # a blank optional cell is NULL, not NaN nor 0
    with store.sessions.begin() as session:
        assert insert_observations(session, store.observations, later, blank) == len(later)
    with store.sessions() as session:
        stored_times, stored = stored_between(session, store.observations, times[0], later[-1])
    assert (stored_times == np.concatenate([times, later])).all()
    assert (stored[:40] == values[:40]).all() and (stored[40:60] == values[40:] + 1000).all()
    assert np.array_equal(stored[60:], blank, equal_nan=True)
    with store.sessions() as session:
        nulls = session.scalar(select(func.count()).select_from(store.observations.table).where(
            store.observations.table.c[store.station.columns[3]].is_(None)))
    assert nulls == len(later) // 2
