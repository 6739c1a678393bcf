"""Benchmark: wall time and peak memory of one default `sensorcast retrain`, as a user runs it.

A simulated station (180 days, as the demo) is ingested into a temporary data directory,
then `sensorcast retrain` runs with the default settings (and, with `--runs N`, N more
times, each after `--every-days` more days of data: retrains once networks are registered,
which skip or fine-tune them) while this script samples the
resident memory of its whole process tree (the CLI and every process it starts) every
0.1 s. Reports the peak of the sum, the peak of the CLI process alone, of Prefect's
temporary API server (started by the CLI when no PREFECT_API_URL is set; a served
deployment talks to a running server instead) and of the network-fitting processes, and
the seconds.

    .venv/bin/python bench/retrain.py [--days 180] [--runs 2 --every-days 16]
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


def role(process: psutil.Process) -> str:
    """What a process of the tree is, from its command line."""
    command = " ".join(process.cmdline())
    if "forecasting.models.isolated" in command:
        return "network fits"
    return "Prefect API server" if "uvicorn" in command else "other"


def watch(process: subprocess.Popen) -> tuple[float, float, dict[str, float], str]:
    """(seconds, peak tree MiB, peak MiB of one process by role, output) of a command."""
    started = time.perf_counter()
    root = psutil.Process(process.pid)
    tree, peaks = 0.0, {"CLI": 0.0}
    while process.poll() is None:
        try:
            sizes = [("CLI", root.memory_info().rss)] + [
                (role(c), c.memory_info().rss) for c in root.children(recursive=True)]
        except psutil.Error:
            continue
        tree = max(tree, sum(rss for _, rss in sizes))
        for name, rss in sizes:
            peaks[name] = max(peaks.get(name, 0.0), rss)
        time.sleep(0.1)
    output = process.stdout.read()
    mib = 2 ** 20
    return (time.perf_counter() - started, tree / mib,
            {name: rss / mib for name, rss in peaks.items()}, output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--runs", type=int, default=1,
                        help="retrains after the first, each --every-days of data later")
    parser.add_argument("--every-days", type=int, default=1,
                        help="16: by the third retrain every network fold has a registered "
                             "network trained before its cut-off to start from")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sensorcast-bench-") as work:
        env = {**os.environ, "SENSORCAST_DATA_DIR": work, "PREFECT_HOME": f"{work}/prefect"}
        drop = Path(work) / "incoming"
        feed = Path(work) / "feed.csv"
        done = sensorcast("simulate", "--out", str(feed), "--days",
                          str(args.days + args.runs * args.every_days), "--seed", "7", env=env)
        if done.wait():
            raise SystemExit(f"sensorcast simulate failed:\n{done.stdout.read()}")
        header, *rows = feed.read_text().splitlines(keepends=True)
        per_day = 144  # the simulated station's rows a day (every 10 minutes)
        first = None
        for run in range(args.runs + 1):
            upto = len(rows) - (args.runs - run) * args.every_days * per_day
            (drop / f"day{run}.csv").parent.mkdir(parents=True, exist_ok=True)
            (drop / f"day{run}.csv").write_text(header + "".join(rows[:upto]))
            ingested = sensorcast("ingest", env=env)
            if ingested.wait():
                raise SystemExit(f"sensorcast ingest failed:\n{ingested.stdout.read()}")
            seconds_of, tree, peaks, output = watch(sensorcast("retrain", env=env))
            if "promoted" not in output and "rejected" not in output:
                raise SystemExit(f"retrain failed:\n{output}")
            first = first or seconds_of
            parts = ", ".join(f"{name} {mib:.0f}" for name, mib in peaks.items())
            kind = ("first retrain (no registered network yet)" if run == 0 else
                    f"retrain {run}, {run * args.every_days} days later "
                    f"({seconds_of / first:.2f} x the first)")
            skipped = sum(line.split()[1:2] == ["-"] for line in output.splitlines())
            print(f"{kind}: {seconds_of:.0f} s; {skipped} network families skipped; peak "
                  f"memory {tree:.0f} MiB for the process tree; the largest process of each "
                  f"kind, in MiB: {parts}", flush=True)


if __name__ == "__main__":
    main()
