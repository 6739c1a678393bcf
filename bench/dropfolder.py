"""Benchmark: what one scheduled ingest run costs as the drop folder's history grows.

The demo station's feed arrives as one file every 10 minutes. After 1, 7 and 30 days of it
(every earlier file already ingested), one `ingest` flow run takes the newest hour's 6
files, in two data directories side by side: files left in the folder once stored
(`ingested_folder = ""`, the behaviour before) and files moved to `incoming/done/` (the
default). Reports the run's seconds and its file tasks, and the ratio of the two.

    .venv/bin/python bench/dropfolder.py [--days 1 7 30]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd


def feed_files(folder: Path, frame: pd.DataFrame, aged: bool = True) -> int:
    """One file per row of `frame` (10 minutes), named by its time, written long enough ago
    for a run to move it."""
    from forecasting.station.simulate import write_station_csv

    old = time.time() - 600
    for moment in frame.index:
        path = write_station_csv(folder / f"feed-{moment:%Y%m%dT%H%M}.csv",
                                 frame.loc[[moment]])
        if aged:
            os.utime(path, (old, old))
    return len(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1, 7, 30])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sensorcast-bench-") as work:
        os.environ["PREFECT_HOME"] = f"{work}/prefect"
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        from flows.ingest import ingest
        from flows.settings import Settings
        from forecasting.station.simulate import simulate_station
        from registry.dropfolder import ingest_and_archive
        from registry.store import open_store

        frame = simulate_station("2024-03-01", max(args.days) + 1, seed=3)
        # moved first: a run's thousands of task runs keep Prefect's server busy for a while
        # after it ends, which would be charged to the run after it
        modes = {"moved to done/": "done", "kept in the folder": ""}
        stores = {}
        for mode, folder in modes.items():
            data = Path(work) / folder if folder else Path(work) / "kept"
            settings = Settings(data_dir=data, ingested_folder=folder)
            stores[mode] = (settings, open_store(settings.db_url, settings.stations[0]))
        ingest(data_dir=str(Path(work) / "kept"))  # Prefect's temporary server, up once
        done_rows = 0
        for day in sorted(args.days):
            history = frame.iloc[done_rows:day * 144]
            results = {}
            for mode, (settings, store) in stores.items():
                drop, done = settings.drop_dir("jena"), settings.done_dir("jena")
                feed_files(drop, history)
                for path in sorted(drop.glob("*.csv")):  # earlier runs took these
                    ingest_and_archive(store, path, settings.chunk_rows, done)
                new = frame.iloc[day * 144:day * 144 + 6]
                feed_files(drop, new)
                os.environ["SENSORCAST_INGESTED_FOLDER"] = settings.ingested_folder
                started = time.perf_counter()
                summaries = ingest(data_dir=str(settings.data_dir))["jena"]
                seconds = time.perf_counter() - started
                stored = sum(s["rows_inserted"] for s in summaries)
                results[mode] = (seconds, len(summaries), stored)
                time.sleep(10)
            done_rows = day * 144 + 6
            kept, moved = results["kept in the folder"], results["moved to done/"]
            print(f"day {day}: {kept[1]} file tasks, {kept[0]:.1f} s with files kept; "
                  f"{moved[1]} file tasks, {moved[0]:.1f} s with files moved "
                  f"({moved[0] / kept[0]:.2f}x); {moved[2]} new rows stored either way",
                  flush=True)


if __name__ == "__main__":
    main()
