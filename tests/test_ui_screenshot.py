"""The Prefect UI shows the forecast plot itself: a real local Prefect server, the forecast
run by the CLI against it, and the artifact's page screenshotted in a real headless
Chromium (Debian's package; `.ci/run` installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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
                      simulate_station("2021-01-01", 30, seed=5))
    env = {**os.environ, "PREFECT_API_URL": f"{prefect_server}/api",
           "PREFECT_HOME": str(tmp_path / "cli")}
    sensorcast = str(Path(sys.executable).with_name("sensorcast"))
    for command in (["ingest"], ["forecast", "--at", "2021-01-25T12:00", "--days", "2"]):
        done = subprocess.run([sensorcast, "--data-dir", str(data), *command], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    (artifact,) = api(f"{prefect_server}/api/artifacts/filter",
                      {"artifacts": {"key": {"any_": ["forecast-plot-jena"]}}})
    shot = tmp_path / "artifact.png"
    subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", "--window-size=1400,1400",
                    "--virtual-time-budget=30000", f"--screenshot={shot}",
                    f"{prefect_server}/artifacts/artifact/{artifact['id']}"],
                   capture_output=True, timeout=120, check=True)
    pixels = (imread(shot)[..., :3] * 255).round()
    # The UI is dark; the plot is a white figure with the forecast drawn in matplotlib's red
    # (214, 39, 40) and the observations in black. Without the picture neither is there.
    white = np.all(pixels >= 250, axis=-1).sum()
    red = np.all(np.abs(pixels - [214, 39, 40]) <= 12, axis=-1).sum()
    assert white > 200_000 and red > 300, (white, red)
