"""Benchmark: what the scheduled cycle costs per station as the network grows (1 to 1,000).

For each size, a simulated network (`simulate_network`: own climates, shared weather
systems, 10-minute rows) gets its history ingested (not timed); then, through the real
Prefect flows as the scheduler runs them: the weekly network-model fit (`network-model`,
in a process of its own, as the weekly schedule runs it apart from the daily one), and one
daily cycle: ingest a new day for every station, retrain every station (the linear
families; the network model is offered to each station's gate on its folds), issue every
station's forecast. The memory of each process, and of every process the daily one starts
(Prefect's server, Dask's workers), is sampled four times a second.

Reported per size: seconds per station of each step; the peak memory of the weekly fit's
process and of the largest process it started (a GRU fit's job, or Prefect's server), of
the daily steps' process and of the largest process the latter started; the database's
rows and size; and the latency of the SQL a dashboard runs (median of 200): "latest
forecast of one station", and "skill of one station over 30 days" once the forecasts table
holds 30 days of every station's issues (the cycle's issue is copied to the 29 days before
it, shifted: rows as the flow writes them, scored against the observations then).

    .venv/bin/python bench/stations.py [--sizes 1 10 100 1000] [--days 45]
    .venv/bin/python bench/stations.py --database-url \\
        'postgresql+psycopg://me@/{database}?host=/tmp/pg'    # a database per size
    .venv/bin/python bench/stations.py --sizes 100 --dask-workers 1 2 --database-url ...
    .venv/bin/python bench/stations.py --default-families --sizes 1 10 --next-days 1

`--database-url` names a PostgreSQL server (`{database}` stands for a database the bench
creates per size, dropping one of that name). `--dask-workers 1 2` runs each size once per
count on a Dask LocalCluster of that many single-threaded worker processes (the stations'
work goes to the workers, `task_runner = "dask"`) and reports the speed-up of the daily
cycle. `--default-families` retrains the seven
default families (four GRUs per station) and fits no network model; `--next-days N` then
times N more daily retrains (a new day each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd

START = "2021-01-01"
LINEAR = {"SENSORCAST_FORECAST__FAMILIES": '["blend", "ridge", "ensemble"]'}
LATEST = "select * from latest_forecast where station = :station"
SKILL = """
    select horizon_hours,
           avg(case when model_version is not null then abs_error end) as model_mae,
           avg(persistence_abs_error) as persistence_mae,
           avg(seasonal_persistence_abs_error) as seasonal_mae,
           count(distinct issued_at) as issues
    from forecast_skill where station = :station and issued_at >= :since
    group by horizon_hours order by horizon_hours"""


class Sampler(threading.Thread):
    """The largest resident memory seen of this process and of any process it started, and
    the CPU seconds each kind of process has used (to see where a machine's cores go)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        import psutil

        self.me, self.stop = psutil.Process(), threading.Event()
        self.peak_self = self.peak_other = 0
        self.other = ""
        self.cpu: dict[int, tuple[str, float]] = {}  # pid: (kind, CPU seconds when last seen)

    def run(self) -> None:
        import psutil

        while not self.stop.wait(0.25):
            for process in [self.me, *self.me.children(recursive=True)]:
                try:
                    with process.oneshot():
                        rss, times = process.memory_info().rss, process.cpu_times()
                        command = " ".join(process.cmdline()[:4])
                except psutil.Error:
                    continue
                self.cpu[process.pid] = (process_kind(process, command, self.me),
                                         times.user + times.system)
                if process == self.me:
                    self.peak_self = max(self.peak_self, rss)
                elif rss > self.peak_other:
                    self.peak_other, self.other = rss, command[-80:]

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far by kind of process, and the whole machine's."""
        import psutil

        by_kind: dict[str, float] = {}
        for kind, seconds in list(self.cpu.values()):
            by_kind[kind] = by_kind.get(kind, 0.0) + seconds
        machine = psutil.cpu_times()
        return {**by_kind, "machine": machine.user + machine.system + machine.nice}


def process_kind(process, command: str, me) -> str:
    if process == me:
        return "flows' process"
    if "spawn_main" in command or "distributed" in command:
        return "Dask workers"
    if "prefect" in command or "uvicorn" in command:
        return "Prefect server"
    return "other children"


def cpu_shares(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds of each kind of process between two `cpu_seconds`, and of the rest of the
    machine (the database server, anything else running)."""
    used = {kind: after[kind] - before.get(kind, 0.0) for kind in after}
    used["rest of the machine"] = used.pop("machine") - sum(used.values())
    return used


def write_network_files(work: Path, stations: int, days: int, next_days: int) -> None:
    """The network's history into its drop folders and stations file, and each station's
    new days beside them (`later/`), in a process of its own so the simulation's memory is
    not the flows'."""
    from forecasting.station.simulate import simulate_network, write_network, write_station_csv

    network = simulate_network(START, days + 1 + next_days, stations, seed=stations)
    cut = 144 * (1 + next_days)
    write_network(work, [(name, climate, frame.iloc[:-cut]) for name, climate, frame in network])
    for name, _, frame in network:
        for day in range(1 + next_days):
            part = frame.iloc[len(frame) - cut + 144 * day:][:144]
            write_station_csv(work / "later" / name / f"day{day}.csv", part)


def database_url(template: str | None, work: Path, stations: int) -> str:
    """The size's own database: a SQLite file in `work`, or a fresh PostgreSQL database."""
    if not template:
        return f"sqlite:///{work / 'sensorcast.db'}"
    import psycopg

    name = f"sensorcast_bench_{stations}"
    admin = template.format(database="postgres").replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"drop database if exists {name}")
        connection.execute(f"create database {name}")
    return template.format(database=name)


def deliver(work: Path, names: list[str], day: int) -> None:
    """Each station's logger sends its day `day`."""
    for name in names:
        incoming = work / "incoming" / name
        (work / "later" / name / f"day{day}.csv").rename(incoming / f"day{day}.csv")


def fill_month(engine) -> None:
    """The forecasts of the cycle's issue copied to each of the 29 days before it (issue and
    target times shifted by whole days), so the skill query reads a month of issues."""
    from sqlalchemy import text

    from registry.forecasts import ForecastRow

    columns = [c.name for c in ForecastRow.__table__.columns if c.name != "id"]
    with engine.begin() as connection:
        for back in range(1, 30):
            def shifted(column: str) -> str:
                if column not in ("issued_at", "target_time"):
                    return column
                return (f"datetime({column}, '-{back} days')" if engine.dialect.name == "sqlite"
                        else f"{column} - interval '{back} days'")
            connection.execute(text(
                f"insert into forecasts ({', '.join(columns)}) "
                f"select {', '.join(shifted(c) for c in columns)} from forecasts "
                "where issued_at = (select max(issued_at) from forecasts)"))


def latency_ms(engine, query: str, names: list[str], **parameters) -> float:
    """Median milliseconds of `query` for one station, over 200 runs through the stations."""
    from sqlalchemy import text

    seconds = []
    with engine.connect() as connection:
        for i in range(200):
            started = time.perf_counter()
            rows = connection.execute(text(query), {"station": names[i % len(names)],
                                                    **parameters}).fetchall()
            seconds.append(time.perf_counter() - started)
            assert rows, query
    return 1000 * statistics.median(seconds)


def storage(engine, url: str) -> dict[str, float]:
    from sqlalchemy import text

    with engine.connect() as connection:
        counts = {f"{table} rows": connection.execute(text(f"select count(*) from {table}"))
                  .scalar_one() for table in ("observations", "forecasts")}
        if engine.dialect.name == "sqlite":
            size = sum(p.stat().st_size for p in Path(url.removeprefix("sqlite:///")).parent
                       .glob("sensorcast.db*"))
        else:
            size = connection.execute(text("select pg_database_size(current_database())")
                                      ).scalar_one()
    return {**counts, "database MiB": size / 2**20}


def newest_row(days: int) -> pd.Timestamp:
    """The new day's last row (UTC)."""
    return pd.Timestamp(START, tz="Etc/GMT-1").tz_convert("UTC") + timedelta(
        days=days + 1, minutes=-10)


def common_settings(work: Path, url: str) -> dict[str, str]:
    return {"data_dir": str(work), "database_url": url,
            "stations_file": str(work / "stations.toml")}


def history(work: Path, url: str) -> None:
    """The network's history ingested (not timed, not in the measured processes)."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.ingest import ingest

    with prefect_test_harness(server_startup_timeout=300):
        ingest(**common_settings(work, url))


def weekly_fit(work: Path, url: str, days: int) -> dict[str, float]:
    """Last week's network-model fit, so each station's newest fold is offered it: a
    process of its own, as the weekly schedule runs it apart from the daily one, so each
    reports its own memory (and that of the largest process it started: a GRU fit's job,
    or Prefect's server when no GRU is fitted)."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.network_model import network_model

    common = common_settings(work, url)
    sampler = Sampler()
    sampler.start()
    with prefect_test_harness(server_startup_timeout=300):
        started = time.perf_counter()
        network_model(**common, at=(newest_row(days) - timedelta(days=8)).to_pydatetime())
        seconds = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    return {"network model (weekly)": seconds,
            "peak MiB, weekly fit's process": sampler.peak_self / 2**20,
            "peak MiB, weekly fit's largest child": sampler.peak_other / 2**20}


def one_size(work: Path, stations: int, days: int, next_days: int, network: bool,
             template: str | None, workers: int) -> dict[str, float]:
    """Seconds of each step for a network of `stations` (on a Dask cluster of `workers`
    processes, or on threads for 0), its memory, storage and queries."""
    subprocess.run([sys.executable, __file__, "--write", str(work), str(stations), str(days),
                    str(next_days)], check=True)
    from prefect.testing.utilities import prefect_test_harness
    from sqlalchemy import create_engine

    from flows.forecast import forecast
    from flows.ingest import ingest
    from flows.retrain import retrain

    url = database_url(template, work, stations)
    names = sorted(p.name for p in (work / "incoming").iterdir())
    common = common_settings(work, url)
    newest = newest_row(days)
    seconds: dict[str, float] = {}
    subprocess.run([sys.executable, __file__, "--history", str(work), url], check=True)
    if network:
        subprocess.run([sys.executable, __file__, "--fit", str(work), url, str(days)],
                       check=True)
        seconds.update(json.loads((work / "fit.json").read_text()))
    sampler = Sampler()
    sampler.start()
    if workers:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        os.environ.update({"SENSORCAST_TASK_RUNNER": "dask",
                           "SENSORCAST_DASK_ADDRESS": cluster.scheduler_address})

    cpu: dict[str, dict[str, float]] = {}

    def timed(step: str, run) -> None:
        started, before = time.perf_counter(), sampler.cpu_seconds()
        result = run()
        seconds[step] = time.perf_counter() - started
        time.sleep(0.5)  # the sampler's last look at the processes
        cpu[step] = cpu_shares(before, sampler.cpu_seconds())
        assert isinstance(result, dict) and len(result) == stations, result

    with prefect_test_harness(server_startup_timeout=300):
        deliver(work, names, 0)
        timed("ingest", lambda: ingest(**common))
        timed("retrain", lambda: retrain(**common, triggered_by="bench"))
        timed("forecast", lambda: forecast(**common, at=newest.to_pydatetime(),
                                           model="current"))
        for day in range(1, next_days + 1):
            deliver(work, names, day)
            ingest(**common)
            timed(f"retrain day {day + 1}", lambda: retrain(**common, triggered_by="bench"))
    if workers:
        cluster.close()
    sampler.stop.set()
    sampler.join()
    engine = create_engine(url)
    try:
        seconds["latest ms"] = latency_ms(engine, LATEST, names)
        fill_month(engine)
        seconds["skill 30 days ms"] = latency_ms(
            engine, SKILL, names, since=(newest - timedelta(days=30)).to_pydatetime())
        seconds.update(storage(engine, url))
    finally:
        engine.dispose()
    return {**seconds, "peak MiB, daily process": sampler.peak_self / 2**20,
            "peak MiB, largest other": sampler.peak_other / 2**20, "largest other": sampler.other,
            "CPU seconds": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--days", type=int, default=45, help="history per station")
    parser.add_argument("--default-families", action="store_true")
    parser.add_argument("--next-days", type=int, default=0)
    parser.add_argument("--database-url", help="PostgreSQL, with {database} for its name")
    parser.add_argument("--dask-workers", type=int, nargs="+", default=[0],
                        help="Dask worker processes (0: threads)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # a size's own process
    parser.add_argument("--write", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--history", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--fit", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        folder, stations, days, next_days = args.write
        write_network_files(Path(folder), int(stations), int(days), int(next_days))
        return
    if not args.default_families:
        os.environ.update(LINEAR)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if args.history:
        history(Path(args.history[0]), args.history[1])
        return
    if args.fit:
        folder, url, days = args.fit
        result = weekly_fit(Path(folder), url, int(days))
        (Path(folder) / "fit.json").write_text(json.dumps(result))
        return
    if args.one:
        result = one_size(args.one / "work", args.sizes[0], args.days, args.next_days,
                          not args.default_families, args.database_url, args.dask_workers[0])
        (args.one / "result.json").write_text(json.dumps(result))
        return
    runs = {}
    with tempfile.TemporaryDirectory(prefix="sensorcast-stations-") as scratch:
        for size in args.sizes:
            for workers in args.dask_workers:
                on = f" on {workers} Dask worker(s)" if workers else ""
                print(f"{size} station(s){on}: {args.days} days of history each ...",
                      flush=True)
                folder = Path(scratch) / f"n{size}-w{workers}"
                (folder / "work").mkdir(parents=True)
                command = [sys.executable, __file__, "--one", str(folder), "--sizes",
                           str(size), "--days", str(args.days), "--next-days",
                           str(args.next_days), "--dask-workers", str(workers)]
                command += ["--default-families"] if args.default_families else []
                command += ["--database-url", args.database_url] if args.database_url else []
                subprocess.run(command, check=True)
                runs[size, workers] = json.loads((folder / "result.json").read_text())
                print(json.dumps(runs[size, workers]), flush=True)
    for workers in args.dask_workers:
        print(f"\n{'threads' if not workers else f'{workers} Dask worker(s)'}:")
        report({size: r for (size, w), r in runs.items() if w == workers})
    if len(args.dask_workers) > 1:
        cycle = ("ingest", "retrain", "forecast")
        for size in args.sizes:
            one, *more = (sum(runs[size, w][k] for k in cycle) for w in args.dask_workers)
            print(f"{size} stations, daily cycle: " + ", ".join(
                f"{w} workers x{one / t:.2f} of {args.dask_workers[0]}"
                for w, t in zip(args.dask_workers[1:], more)) + " (target for 2: >= 1.6)")


def report(results: dict[int, dict]) -> None:
    steps = [k for k in next(iter(results.values())) if k == "ingest" or k == "forecast"
             or k.startswith(("retrain", "network"))]
    cycle = ("ingest", "retrain", "forecast")
    table = pd.DataFrame({size: {**{f"{k} s/station": r[k] / size for k in steps},
                                 "cycle s/station": sum(r[k] for k in cycle) / size,
                                 **{k: v for k, v in r.items()
                                    if k not in steps and k != "CPU seconds"}}
                          for size, r in results.items()}).T
    table.index.name = "stations"
    print(table.T.to_string())
    sizes = sorted(results)
    for small, large in zip(sizes, sizes[1:]):
        ratio = table.loc[large, "cycle s/station"] / table.loc[small, "cycle s/station"]
        memory = ", ".join(
            f"{k.removeprefix('peak MiB, ')} x{table.loc[large, k] / table.loc[small, k]:.2f}"
            for k in table.columns if k.startswith("peak MiB"))
        print(f"{small} -> {large} stations: cycle per station x{ratio:.2f} (target <= 1.1); "
              f"peak memory (target <= 1.2): {memory}")
    for size, r in results.items():
        used: dict[str, float] = {}
        for step in cycle:
            for kind, seconds in r["CPU seconds"][step].items():
                used[kind] = used.get(kind, 0.0) + seconds
        wall = sum(r[k] for k in cycle)
        print(f"{size} stations, the daily cycle's {wall:.0f} s used {sum(used.values()):.0f} "
              f"CPU seconds of {os.cpu_count() * wall:.0f}: " + ", ".join(
                  f"{kind} {seconds:.0f}" for kind, seconds in used.items()))
    largest = sizes[-1]
    total = table.loc[largest, "cycle s/station"] * largest
    print(f"daily cycle of {largest} stations: {total:.0f} s (target at 1,000: within 3,600 s)")


if __name__ == "__main__":
    main()
