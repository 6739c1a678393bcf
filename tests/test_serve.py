"""`make serve` as a supervisor runs it: on the port PREFECT_PORT names, the CLI's runs attach
to that server, and a SIGTERM sent to the script's own PID stops the deployments and the
server (bash alone would wait for its foreground child for ever)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from forecasting.station.simulate import simulate_station, write_station_csv
from tests.conftest import api, free_port

ROOT = Path(__file__).resolve().parents[1]


def lines_of(process: subprocess.Popen) -> queue.Queue:
    """The process's output lines, read as they come."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    return lines


def wait_for(lines: queue.Queue, text: str, seconds: float, seen: list[str]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            continue
        if text in seen[-1]:
            return
    raise AssertionError(f"no {text!r} within {seconds} s:\n{''.join(seen)[-3000:]}")


def test_serve_honours_prefect_port_and_stops_on_sigterm_to_its_own_pid(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    write_station_csv(tmp_path / "data" / "incoming" / "a.csv",
                      simulate_station("2021-01-01", 2, seed=1))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
           "PREFECT_PORT": str(port), "PREFECT_HOME": str(tmp_path / "prefect"),
           "SENSORCAST_DATA_DIR": str(tmp_path / "data")}
    serve = subprocess.Popen(["deployments/serve.sh"], cwd=ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tree = psutil.Process(serve.pid)
    lines, seen = lines_of(serve), []
    try:
        wait_for(lines, f"Prefect UI: http://127.0.0.1:{port}", 180, seen)
        wait_for(lines, "being served", 120, seen)
        cli = subprocess.run([str(Path(sys.executable).parent / "sensorcast"), "ingest"],
                             env=env, capture_output=True, text=True, timeout=300)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert "ingest" in {flow["name"] for flow in api(f"{url}/flows/filter", {"limit": 50})}
        serve.send_signal(signal.SIGTERM)  # the script's PID only, as a supervisor does
        assert serve.wait(timeout=120) == 0
    finally:
        if serve.poll() is None:  # the test failed: leave nothing running
            for process in [*tree.children(recursive=True), tree]:
                process.kill()
    wait_for(lines, "stopped", 10, seen)
    try:
        api(f"{url}/health")
        raise AssertionError("the Prefect server still answers after serve.sh stopped")
    except OSError:
        pass
