"""Benchmark: ingest an 8-year Jena-scale simulated file, then re-ingest it.

Prints rows/s of the first ingest and of a re-ingest (same rows, new file name, so nothing
is skipped by hash), peak memory, and a plain `sqlite3.executemany` insert of the same
rows into the same table shape, measured in the same run.

    .venv/bin/python bench/ingest.py [--days 2922] [--out bench/out]
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://.../empty_db

With `--database-url` (an empty PostgreSQL database) the ingest goes there, and the floor is
a plain COPY of the same rows into a table of the same shape, measured in the same run.

Each ingest runs in its own process, so its peak memory (RSS) is measured alone; a file a
quarter the size shows whether memory grows with file size.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from forecasting.station.schema import JENA
from forecasting.station.simulate import simulate_station, write_station_csv
from registry.ingestion import ingest_file
from registry.store import open_store


def ingest_in_child(path: Path, url: str) -> dict:
    """Ingest in a fresh process, so its peak memory is the ingest's alone."""
    out = subprocess.run([sys.executable, __file__, "--child", str(path), url],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(path: Path, url: str) -> None:
    store = open_store(url, JENA)
    start = time.perf_counter()
    summary = ingest_file(store, path, chunk_rows=50_000)
    elapsed = time.perf_counter() - start
    store.close()
    print(json.dumps({"seconds": elapsed, "read": summary.rows_read,
                      "inserted": summary.rows_inserted, "present": summary.rows_present,
                      "quarantined": summary.rows_quarantined,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


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


def plain_copy(url: str, frame) -> float:
    """The PostgreSQL floor: the same rows by a plain COPY into a new table shaped like
    `observations` (its primary key too), one transaction."""
    import psycopg

    rows = [("jena", t, *v) for t, v in zip(frame.index.tz_localize("UTC").to_pydatetime(),
                                            frame.to_numpy().tolist())]
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as con:
        con.execute("CREATE TABLE plain_copy (LIKE observations INCLUDING INDEXES)")
        start = time.perf_counter()
        with con.cursor().copy("COPY plain_copy FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        con.commit()
        elapsed = time.perf_counter() - start
        con.execute("DROP TABLE plain_copy")
    return len(rows) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2922)
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    parser.add_argument("--database-url", help="an empty PostgreSQL database to ingest into")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(Path(args.child[0]), args.child[1])
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)

    frame = simulate_station("2009-01-01", args.days, seed=1)
    path = write_station_csv(args.out / "station.csv", frame)
    size_mb = path.stat().st_size / 1e6
    quarter = write_station_csv(args.out / "quarter.csv", frame.iloc[: len(frame) // 4])
    print(f"file: {len(frame):,} rows, {size_mb:.0f} MB")

    utc = frame.index - np.timedelta64(1, "h")
    if args.database_url:
        first = ingest_in_child(path, args.database_url)
        floor = plain_copy(args.database_url, frame.set_axis(utc, axis=0))
        rate = first["read"] / first["seconds"]
        print(f"first ingest into PostgreSQL: {rate:>10,.0f} rows/s ({first['inserted']:,} "
              f"inserted, {first['seconds']:.2f} s); plain COPY of the same rows: "
              f"{floor:>10,.0f} rows/s; ratio {rate / floor:.2f}")
        return
    first = ingest_in_child(path, f"sqlite:///{args.out / 'sensorcast.db'}")
    again_path = Path(shutil.copy(path, args.out / "station-again.csv"))
    with open(again_path, "a") as handle:
        handle.write("\n")  # new content hash: a real re-ingest, not a skip
    again = ingest_in_child(again_path, f"sqlite:///{args.out / 'sensorcast.db'}")
    small = ingest_in_child(quarter, f"sqlite:///{args.out / 'quarter.db'}")

    plain = plain_executemany(args.out / "plain.db", frame.set_axis(utc, axis=0))
    first_rate = first["read"] / first["seconds"]
    again_rate = again["read"] / again["seconds"]
    print(f"first ingest : {first_rate:>10,.0f} rows/s  ({first['inserted']:,} inserted, "
          f"{first['quarantined']} quarantined, {first['seconds']:.2f} s)")
    print(f"re-ingest    : {again_rate:>10,.0f} rows/s  ({again['inserted']} inserted, "
          f"{again['present']:,} already present, {again['seconds']:.2f} s)")
    print(f"plain sqlite3 executemany: {plain:>10,.0f} rows/s")
    print(f"ratio first ingest / plain executemany: {first_rate / plain:.2f}")
    print(f"peak memory (RSS) of the ingest process: {first['peak_mib']:,.0f} MiB for "
          f"{size_mb:.0f} MB, {small['peak_mib']:,.0f} MiB for a quarter of it; "
          f"re-ingest {again['peak_mib']:,.0f} MiB")


if __name__ == "__main__":
    main()
