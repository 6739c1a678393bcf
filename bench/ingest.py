"""Benchmark: ingest an 8-year Jena-scale simulated file, then re-ingest it.

Prints rows/s of the first ingest and of a re-ingest (same rows, new file name, so nothing
is skipped by hash), peak memory, and a plain `sqlite3.executemany` insert of the same
rows into the same table shape, measured in the same run.

    .venv/bin/python bench/ingest.py [--days 2922] [--out bench/out]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import psutil

from forecasting.schema import JENA
from forecasting.simulate import simulate_station, write_station_csv
from registry.ingestion import ingest_file
from registry.store import open_store


class PeakRSS:
    """Samples this process's resident memory on a background thread."""

    def __init__(self) -> None:
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def plain_executemany(db: Path, frame) -> float:
    """The floor: pre-built tuples straight into sqlite3 (same WAL/synchronous settings)."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    columns = ", ".join(f"{c} REAL NOT NULL" for c in JENA.columns)
    con.execute(f"CREATE TABLE observations (observed_at DATETIME PRIMARY KEY, {columns})")
    stamps = frame.index.strftime("%Y-%m-%d %H:%M:%S").tolist()
    rows = list(zip(stamps, *frame.to_numpy().T.tolist()))
    marks = ", ".join("?" * (len(JENA.columns) + 1))
    start = time.perf_counter()
    con.executemany(f"INSERT INTO observations VALUES ({marks})", rows)
    con.commit()
    elapsed = time.perf_counter() - start
    con.close()
    return len(rows) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2922)
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)

    frame = simulate_station("2009-01-01", args.days, seed=1)
    path = write_station_csv(args.out / "station.csv", frame)
    size_mb = path.stat().st_size / 1e6
    print(f"file: {len(frame):,} rows, {size_mb:.0f} MB")

    store = open_store(f"sqlite:///{args.out / 'sensorcast.db'}", JENA)
    with PeakRSS() as memory:
        start = time.perf_counter()
        first = ingest_file(store, path, chunk_rows=50_000)
        first_s = time.perf_counter() - start
        again_path = shutil.copy(path, args.out / "station-again.csv")
        with open(again_path, "a") as handle:
            handle.write("\n")  # new content hash: a real re-ingest, not a skip
        start = time.perf_counter()
        again = ingest_file(store, Path(again_path), chunk_rows=50_000)
        again_s = time.perf_counter() - start
    store.close()

    plain = plain_executemany(args.out / "plain.db", frame.set_axis(
        (frame.index - np.timedelta64(1, "h")), axis=0))
    first_rate = first.rows_read / first_s
    again_rate = again.rows_read / again_s
    print(f"first ingest : {first_rate:>10,.0f} rows/s  ({first.rows_inserted:,} inserted, "
          f"{first.rows_quarantined} quarantined, {first_s:.2f} s)")
    print(f"re-ingest    : {again_rate:>10,.0f} rows/s  ({again.rows_inserted} inserted, "
          f"{again.rows_present:,} already present, {again_s:.2f} s)")
    print(f"plain sqlite3 executemany: {plain:>10,.0f} rows/s")
    print(f"ratio first ingest / plain executemany: {first_rate / plain:.2f}")
    print(f"peak memory (RSS) during ingest: {memory.peak / 2**20:,.0f} MiB "
          f"(file {size_mb:.0f} MB)")


if __name__ == "__main__":
    main()
