"""Versions saved by earlier code still load and forecast as they did: a blend, a ridge, a
GRU, an ensemble of them and a composed ridge (its first layout: a per-step choice of best
naive), saved before the model families moved to `forecasting/models/`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from registry.artifacts import load_verified

SAVED = Path(__file__).parent / "fixtures" / "saved_before_models"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("saved") / "store"
    shutil.copytree(SAVED / "store", root)
    return root


@pytest.mark.parametrize("name", ["blend", "ridge", "gru", "ensemble", "composed"])
def test_a_version_saved_before_the_move_loads_and_forecasts_as_it_did(name, store):
    saved = json.loads((SAVED / "manifest.json").read_text())[name]
    model = load_verified(Path(saved["path"]), saved["sha256"], f"t v{saved['version']}", store)
    with np.load(SAVED / "predictions.npz") as expected:
        np.testing.assert_allclose(model.predict(expected["inputs"]), expected[name],
                                   rtol=1e-5, atol=1e-5)
