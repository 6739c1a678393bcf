"""The model families: what every family is (the `Forecaster` contract), which class each
family name means, and the one reader and writer of a saved model's descriptor,
`model.json`. `load_model` reads that descriptor and dispatches to the family's own `load`,
importing the family's module only then: loading a linear model never imports TensorFlow.
The names and their order (the simpler first) are `forecasting.config.FAMILIES`."""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path
from typing import Protocol

import numpy as np

from forecasting.config import COMPOSED, ENSEMBLE, NETWORKS, POOLED, ForecastParams
from forecasting.windows import Windows

META_FILE = "model.json"

CLASSES: dict[str, str] = {  # family -> "module:class"
    "blend": "forecasting.models.linear:LinearBlend",
    "ridge": "forecasting.models.linear:RidgeForecaster",
    **{family: "forecasting.models.networks:NetworkForecaster" for family in NETWORKS},
    ENSEMBLE: "forecasting.models.ensemble:Ensemble",
    COMPOSED: "forecasting.models.ensemble:Composed",
    **{family: "forecasting.models.pooled:PooledForecaster" for family in POOLED},
}


class Forecaster(Protocol):
    """What every family is: fitted on windows, a forecast path per input window, saved to
    a directory of plain files (its `model.json` first) and loaded back from it."""

    family: str
    params: ForecastParams

    def fit(self, train: Windows, validation: Windows) -> Forecaster: ...

    def predict(self, inputs: np.ndarray) -> np.ndarray: ...

    def save(self, directory: Path) -> Path: ...

    @classmethod
    def load(cls, directory: Path) -> Forecaster: ...


def family_class(family: str) -> type[Forecaster]:
    if family not in CLASSES:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(CLASSES)}")
    module, name = CLASSES[family].split(":")
    return getattr(import_module(module), name)


def write_meta(directory: Path, meta: dict) -> Path:
    """Write `model.json` (its `family` first) into `directory`, creating it; returns it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))
    return directory


def read_meta(directory: Path) -> dict:
    return json.loads((Path(directory) / META_FILE).read_text())


def has_meta(files: dict[str, bytes], where: Path) -> None:
    """FileNotFoundError naming `where` when a saved model's files (by relative name) hold
    no descriptor."""
    if META_FILE not in files:
        raise FileNotFoundError(f"no {META_FILE} in {where}")


def stored_meta(files: dict[str, bytes], where: Path) -> dict:
    """The descriptor among a saved model's files, read once their checksum matched."""
    has_meta(files, where)
    return json.loads(files[META_FILE])


def holds_network(directory: Path) -> bool:
    """Whether a saved model (or any member of it) is a network: only then does using it
    need TensorFlow."""
    return any(read_meta(meta.parent)["family"] in NETWORKS
               for meta in Path(directory).rglob(META_FILE))


def load_model(directory: Path) -> Forecaster:
    """A saved model of any family, as `registry.artifacts.verified_copy` lays it out (an
    ensemble's or a composed forecast's members in `member0`, `member1`, ... beside it)."""
    return family_class(read_meta(directory)["family"]).load(Path(directory))
