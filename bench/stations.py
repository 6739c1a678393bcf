"""Benchmark: what a scheduled cycle costs per station as the network grows (1, 10, 50).

For each size, a simulated network (`simulate_network`: own climates, shared weather
systems) gets its history ingested (not timed); then one full cycle is timed through the
real Prefect flows, as the scheduler runs them: ingest a new day of 10-minute rows for
every station, retrain every station (quick settings: the linear families), forecast every
station. Reports seconds per station for each step, the growth of the per-station cost
from the smallest to the largest network, and the latency of the SQL a dashboard runs,
"latest forecast of one station", at each size (median of 200).

    .venv/bin/python bench/stations.py [--sizes 1 10 50] [--days 45]
    .venv/bin/python bench/stations.py --default-families --sizes 1 10 --next-days 1

`--default-families` retrains the seven default families (four GRUs) instead of the linear
ones; `--next-days N` then times N more daily cycles (a new day each): once the networks are
registered they are fitted weekly (`network_every_days`), so these cycles show a station's
daily cost after its first retrain.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

START = "2021-01-01"
QUICK = {"SENSORCAST_FORECAST__FAMILIES": '["blend", "ridge"]',
         "SENSORCAST_FORECAST__FOLDS": "2"}
LATEST = "select * from latest_forecast where station = ?"


def cycle(work: Path, stations: int, days: int, next_days: int = 0) -> dict[str, float]:
    """Seconds of each step of one cycle for a network of `stations` (and, with
    `next_days`, of the retrain in each of that many more daily cycles), and the query's
    ms."""
    from flows.forecast import forecast
    from flows.ingest import ingest
    from flows.retrain import retrain
    from forecasting.station.simulate import simulate_network, write_network, write_station_csv

    network = simulate_network(START, days + 1 + next_days, stations, seed=stations)
    later = [frame.iloc[len(frame) - 144 * next_days:] for _, _, frame in network]
    network = [(name, climate, frame.iloc[:len(frame) - 144 * next_days])
               for name, climate, frame in network]
    history = [(name, climate, frame.iloc[:-144]) for name, climate, frame in network]
    listed = write_network(work, history)
    common = {"data_dir": str(work), "stations_file": str(listed)}
    ingest(**common)  # the history, before the timed cycle
    for name, _, frame in network:  # the new day, as each logger sends it
        write_station_csv(work / "incoming" / name / "new-day.csv", frame.iloc[-144:])
    newest = network[0][2].index[-1].tz_localize("Etc/GMT-1").tz_convert("UTC")
    seconds = {}
    for step, run in (("ingest", lambda: ingest(**common)),
                      ("retrain", lambda: retrain(**common, triggered_by="bench")),
                      ("forecast", lambda: forecast(**common, at=newest.to_pydatetime(),
                                                    model="current"))):
        started = time.perf_counter()
        result = run()
        seconds[step] = time.perf_counter() - started
        assert len(result) == stations, result
    with sqlite3.connect(work / "sensorcast.db") as connection:
        names = [name for name, *_ in network]
        latencies = []
        for i in range(200):
            started = time.perf_counter()
            rows = connection.execute(LATEST, (names[i % len(names)],)).fetchall()
            latencies.append(time.perf_counter() - started)
            assert len(rows) == 24
    seconds["latest_ms"] = 1000 * statistics.median(latencies)
    for day in range(next_days):
        for (name, _, _), frame in zip(network, later):
            write_station_csv(work / "incoming" / name / f"day{day}.csv",
                              frame.iloc[144 * day:144 * (day + 1)])
        ingest(**common)
        started = time.perf_counter()
        retrain(**common, triggered_by="bench")
        seconds[f"retrain day {day + 2}"] = time.perf_counter() - started
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--days", type=int, default=45, help="history per station")
    parser.add_argument("--default-families", action="store_true")
    parser.add_argument("--next-days", type=int, default=0)
    args = parser.parse_args()
    if not args.default_families:
        os.environ.update(QUICK)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    results = {}
    with tempfile.TemporaryDirectory(prefix="sensorcast-stations-") as scratch, \
            prefect_test_harness(server_startup_timeout=300):
        for size in args.sizes:
            print(f"{size} station(s): {args.days} days of history each ...", flush=True)
            results[size] = cycle(Path(scratch) / f"n{size}", size, args.days,
                                  args.next_days)
    steps = ("ingest", "retrain", "forecast")
    table = pd.DataFrame({size: {**{f"{k} s/station": v / size for k, v in r.items()
                                    if k != "latest_ms"},
                                 "cycle s/station": sum(r[k] for k in steps) / size,
                                 "latest forecast query ms": r["latest_ms"]}
                          for size, r in results.items()}).T
    table.index.name = "stations"
    print(table.round(3).to_string())
    small, large = min(results), max(results)
    growth = table.loc[large, "cycle s/station"] / table.loc[small, "cycle s/station"]
    query = results[large]["latest_ms"] / results[small]["latest_ms"]
    print(f"\nper-station cost at {large} stations: {growth:.2f}x that at {small} "
          f"(target <= 1.2); latest-forecast query at {large}: "
          f"{results[large]['latest_ms']:.2f} ms, {query:.2f}x that at {small} "
          "(target < 10 ms)")


if __name__ == "__main__":
    main()
