"""Benchmark: wall time and peak memory of one default `sensorcast retrain`, as a user runs it.

A simulated station (180 days, as the demo) is ingested into a temporary data directory,
then `sensorcast retrain` runs with the default settings while this script samples the
resident memory of its whole process tree (the CLI and every process it starts) every
0.1 s. Reports the peak of the sum, the peak of the CLI process alone and of the largest
child, and the seconds.

    .venv/bin/python bench/retrain.py [--days 180] [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def sensorcast(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "sensorcast"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def watch(process: subprocess.Popen) -> tuple[float, float, float, float, str]:
    """(seconds, peak tree MiB, peak CLI MiB, peak child MiB, output) of a running command."""
    started = time.perf_counter()
    root = psutil.Process(process.pid)
    tree = own = child = 0.0
    while process.poll() is None:
        try:
            main = root.memory_info().rss
            children = [c.memory_info().rss for c in root.children(recursive=True)]
        except psutil.Error:
            continue
        tree, own = max(tree, main + sum(children)), max(own, main)
        child = max(child, *children, 0)
        time.sleep(0.1)
    output = process.stdout.read()
    mib = 2 ** 20
    return time.perf_counter() - started, tree / mib, own / mib, child / mib, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sensorcast-bench-") as work:
        env = {**os.environ, "SENSORCAST_DATA_DIR": work, "PREFECT_HOME": f"{work}/prefect"}
        drop = Path(work) / "incoming" / "station.csv"
        for step in (["simulate", "--out", str(drop), "--days", str(args.days), "--seed", "7"],
                     ["ingest"]):
            done = sensorcast(*step, env=env)
            if done.wait():
                raise SystemExit(f"sensorcast {' '.join(step)} failed:\n{done.stdout.read()}")
        for run in range(1, args.runs + 1):
            seconds, tree, own, child, output = watch(sensorcast("retrain", env=env))
            if "promoted" not in output and "rejected" not in output:
                raise SystemExit(f"retrain failed:\n{output}")
            print(f"run {run}: {seconds:.0f} s; peak memory {tree:.0f} MiB for the process "
                  f"tree (CLI {own:.0f} MiB, largest child {child:.0f} MiB)", flush=True)


if __name__ == "__main__":
    main()
