"""The Prefect UI shows the forecast plot itself and the leaderboard's numbers: a real local
Prefect server, the runs made by the CLI against it, and the artifacts' pages screenshotted
or laid out in a real headless Chromium (Debian's package; `.ci/run` installs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from matplotlib.image import imread

from forecasting.station.simulate import simulate_station, write_station_csv
from tests.conftest import api

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install "
                                             "chromium; .ci/run does)")
def test_the_prefect_ui_shows_the_forecast_plot_itself(prefect_server, tmp_path):
    data = tmp_path / "data"
    write_station_csv(data / "incoming" / "station.csv",
                      simulate_station("2021-01-01", 60, seed=5))
    env = {**os.environ, "PREFECT_API_URL": f"{prefect_server}/api",
           "PREFECT_HOME": str(tmp_path / "cli")}
    sensorcast = str(Path(sys.executable).with_name("sensorcast"))
    for command in (["ingest"], ["forecast", "--at", "2021-01-25T12:00", "--days", "2"],
                    ["retrain", "--family", "ridge"]):
        done = subprocess.run([sensorcast, "--data-dir", str(data), *command], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    # the server is the session's: the newest version of each key is this test's
    (artifact,) = api(f"{prefect_server}/api/artifacts/latest/filter",
                      {"artifacts": {"key": {"any_": ["forecast-plot-jena"]}}})
    shot = tmp_path / "artifact.png"
    subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", "--window-size=1400,1400",
                    "--virtual-time-budget=30000", f"--screenshot={shot}",
                    f"{prefect_server}/artifacts/artifact/{artifact['latest_id']}"],
                   capture_output=True, timeout=120, check=True)
    pixels = (imread(shot)[..., :3] * 255).round()
    # The UI is dark; the plot is a white figure with the forecast drawn in matplotlib's red
    # (214, 39, 40) and the observations in black. Without the picture neither is there.
    white = np.all(pixels >= 250, axis=-1).sum()
    red = np.all(np.abs(pixels - [214, 39, 40]) <= 12, axis=-1).sum()
    assert white > 200_000 and red > 300, (white, red)

    # The leaderboard at 1,400 px: its numbers come first, so they are on screen, not cut off
    # behind the long reason
    (board,) = api(f"{prefect_server}/api/artifacts/latest/filter",
                   {"artifacts": {"key": {"any_": ["retrain-leaderboard-jena"]}}})
    row = json.loads(board["data"])[0] if isinstance(board["data"], str) else board["data"][0]
    cells = laid_out_cells(f"{prefect_server}/artifacts/artifact/{board['latest_id']}", 1400)
    visible = [c["text"] for c in cells if 0 <= c["left"] and c["right"] <= 1400]
    print("visible at 1,400 px:", visible)
    for header in ("family", "decision", "mean / best naive", "1-6 h / best naive"):
        assert header in visible, (header, cells)
    assert f"{row['mean / best naive']}" in visible, (row, cells)


# The cells of every table on the page: text and horizontal extent in CSS pixels.
CELLS = """Array.from(document.querySelectorAll('th, td')).map(e => {
  const r = e.getBoundingClientRect();
  return {text: e.innerText.trim(), left: r.left, right: r.right};
})"""


def laid_out_cells(url: str, width: int) -> list[dict]:
    """The table cells of `url` as headless Chromium lays the page out in a window `width`
    pixels wide, read over its DevTools protocol once the page has drawn them."""
    from websockets.sync.client import connect

    profile = tempfile.mkdtemp(prefix="chromium-")
    browser = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                                "--hide-scrollbars", f"--window-size={width},1400",
                                "--remote-debugging-port=0", f"--user-data-dir={profile}",
                                url], stderr=subprocess.PIPE, text=True)
    try:
        port = next(urlparse(line.split()[-1]).port for line in browser.stderr
                    if "DevTools listening on" in line)
        threading.Thread(target=browser.stderr.read, daemon=True).start()
        page = next(t for t in api(f"http://127.0.0.1:{port}/json/list") if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None) as devtools:
            deadline, cells = time.monotonic() + 60, []
            while not cells and time.monotonic() < deadline:
                time.sleep(0.5)
                devtools.send(json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {
                    "expression": CELLS, "returnByValue": True}}))
                reply = json.loads(devtools.recv())
                while reply.get("id") != 1:
                    reply = json.loads(devtools.recv())
                cells = [c for c in reply["result"]["result"]["value"] if c["text"]]
            return cells
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)
