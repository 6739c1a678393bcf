"""Benchmark: 60 days of unattended operation at accelerated time.

A simulated station (with gaps, repeated rows, -9999 wind values and garbled lines) drops one
file per 10 minutes of station time into the drop folder; each is ingested as it arrives.
Every day at 06:00 UTC the `forecast` flow issues the forecast as of that moment; every
7 days at 02:00 the `retrain` flow trains the candidates and applies the gate. The flows run
under Prefect (a temporary local API); the ingests call the same `ingest_file` the ingest
flow's task wraps, since 8,640 flow runs would measure Prefect rather than sensorcast.

    .venv/bin/python bench/longrun.py [--days 60 --history 45 --out bench/out]

Reports rows produced vs stored (they must match), quarantined rows, promotions and
refusals, forecasts issued and refused, database size and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import tempfile
import time
from pathlib import Path

import pandas as pd

from forecasting.station.schema import JENA
from forecasting.station.simulate import Faults, simulate_station, station_csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60, help="days of operation")
    parser.add_argument("--history", type=int, default=45,
                        help="days stored beforehand (the retrain's backtest needs 3 folds "
                        "of 7 days after 14 validation days)")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sensorcast-longrun-"))
    data = work / "data"
    os.environ.update({
        "PREFECT_HOME": str(work / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2", "SENSORCAST_DATA_DIR": str(data),
        "SENSORCAST_FORECAST__EPOCHS": "5",
        "SENSORCAST_FORECAST__FAMILIES": '["gru", "gru_dropout"]',
    })
    from flows.forecast import forecast
    from flows.retrain import retrain
    from registry.ingestion import ingest_file
    from registry.store import open_store

    start = pd.Timestamp("2016-01-01")
    frame = simulate_station(start, args.history + args.days, seed=21)
    faults = Faults(gaps=0.005, duplicates=0.005, sentinels=0.001, garbled=0.001)
    header, *lines = station_csv(frame, faults, seed=21).splitlines()
    # Each line belongs to the 10-minute slot of its timestamp (a garbled line: the one before).
    slots = pd.Series(pd.to_datetime(pd.Series(lines).str[:19], format="%d.%m.%Y %H:%M:%S",
                                     errors="coerce")).ffill().fillna(start)
    history_end = start + pd.Timedelta(days=args.history)
    drop = data / "incoming"
    drop.mkdir(parents=True)
    history = [line for line, slot in zip(lines, slots) if slot <= history_end]
    (drop / "history.csv").write_text("\n".join([header, *history]) + "\n")
    arriving = {slot: group.tolist() for slot, group in
                pd.Series(lines)[(slots > history_end).to_numpy()].groupby(
                    slots[slots > history_end].to_numpy())}

    store = open_store(f"sqlite:///{data / 'sensorcast.db'}", JENA)
    ingest_file(store, drop / "history.csv", 50_000)
    t0 = time.perf_counter()
    timings = {"ingest": 0.0, "forecast": 0.0, "retrain": 0.0}
    forecast_states, retrain_states = [], []
    for slot in pd.date_range(history_end + pd.Timedelta(minutes=10), frame.index[-1],
                              freq="10min"):
        if slot in arriving:
            path = drop / f"{slot:%Y%m%d-%H%M}.csv"
            path.write_text("\n".join([header, *arriving[slot]]) + "\n")
            began = time.perf_counter()
            ingest_file(store, path, 50_000)
            timings["ingest"] += time.perf_counter() - began
        now = (slot - pd.Timedelta(hours=1)).tz_localize("UTC")  # station time is UTC+1
        if now.hour == 2 and now.minute == 0 and (now - history_end.tz_localize("UTC")).days % 7 == 0:
            began = time.perf_counter()
            retrain_states.append(retrain(until=now.to_pydatetime(), triggered_by="longrun",
                                          return_state=True))
            timings["retrain"] += time.perf_counter() - began
        if now.hour == 6 and now.minute == 0:
            began = time.perf_counter()
            # Simulated time runs in the past, while registry events carry the wall clock:
            # the champion now is the champion of that simulated moment.
            forecast_states.append(forecast(at=now.to_pydatetime(), model="current",
                                            triggered_by="longrun", return_state=True))
            timings["forecast"] += time.perf_counter() - began
    store.close()

    # The same lines ingested in one go: what the 10-minute ingests must have stored.
    reference = work / "reference.db"
    whole = work / "whole.csv"
    whole.write_text("\n".join([header, *lines]) + "\n")
    reference_store = open_store(f"sqlite:///{reference}", JENA)
    ingest_file(reference_store, whole, 50_000)
    reference_store.close()

    db = data / "sensorcast.db"
    query_rows = "select * from observations order by observed_at"
    with sqlite3.connect(reference) as connection:
        expected = connection.execute(query_rows).fetchall()
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored = connection.execute(query_rows).fetchall()

        def one(query):
            return connection.execute(query).fetchone()[0]

        report = {
            "days_operated": args.days, "history_days": args.history,
            "lines_produced": len(lines),
            "rows_expected": len(expected),
            "rows_stored": len(stored),
            "stored_equals_one_bulk_ingest": stored == expected,
            "rows_read": one("select sum(rows_read) from ingest_runs"),
            "rows_quarantined": one("select count(*) from quarantined_rows"),
            "rows_already_present": one("select sum(rows_present) from ingest_runs"),
            "ingest_runs": one("select count(*) from ingest_runs"),
            "ingest_runs_not_complete": one(
                "select count(*) from ingest_runs where status != 'complete'"),
            "retrains": len(retrain_states),
            "retrains_failed": sum(s.is_failed() for s in retrain_states),
            "versions_registered": one("select count(*) from model_versions"),
            "promotions": one("select count(*) from promotion_events "
                              "where decision = 'promoted'"),
            "rejections": one("select count(*) from promotion_events "
                              "where decision = 'rejected'"),
            "forecasts_issued": one("select count(*) from forecast_runs where status = 'issued'"),
            "forecasts_refused": one(
                "select count(*) from forecast_runs where status = 'refused'"),
            "forecasts_by_persistence": one("select count(distinct issued_at) from forecasts "
                                            "where model_version is null"),
            "forecast_rows": one("select count(*) from forecasts"),
            "skill_mae_champion": one("select round(avg(abs_error), 3) from forecast_skill "
                                      "where model_version is not null"),
            "skill_mae_persistence_same_issues": one(
                "select round(avg(persistence_abs_error), 3) from forecast_skill "
                "where model_version is not null"),
        }
    report["accounted"] = report["rows_read"] == (
        report["rows_stored"] + report["rows_quarantined"]
        + report["rows_already_present"])
    report["db_mib"] = round(db.stat().st_size / 2**20, 1)
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    report["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    report["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "longrun.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
