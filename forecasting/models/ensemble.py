"""Forecasts made of registered models: the ensemble (the mean of its members) and the
composed forecast (a member combined with best naive per horizon step). Each artifact is a
`model.json` that references its members' versions and checksums; the registry verifies
every member and lays it out beside it before `load`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forecasting.config import COMPOSED, ENSEMBLE, ForecastParams
from forecasting.models.families import load_model, read_meta, write_meta
from forecasting.models.naive import BestNaive
from forecasting.windows import Windows


def members_of(directory: Path, meta: dict) -> list:
    """The members as `registry.artifacts.verified_copy` lays them out: `member0`, ..."""
    return [load_model(Path(directory) / f"member{k}") for k in range(len(meta["members"]))]


class Ensemble:
    """The mean of its members' forecasts. Its artifact references the members' registered
    versions and checksums; the registry verifies every member before building it."""

    name = family = ENSEMBLE

    def __init__(self, params: ForecastParams, members: list) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.params, self.members = params, list(members)
        self.columns = members[0].columns
        self.references: list[dict] = []

    def fit(self, train: Windows, validation: Windows | None = None) -> Ensemble:
        return self  # the members are fitted already

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.mean([np.asarray(m.predict(inputs), np.float64) for m in self.members],
                       axis=0)

    def save(self, directory: Path) -> Path:
        """`model.json` with the members' references (set by the registry beforehand)."""
        if len(self.references) != len(self.members):
            raise ValueError("an ensemble is saved with a reference to every member")
        return write_meta(directory, {
            "family": self.family, "params": self.params.model_dump(mode="json"),
            "columns": list(self.columns), "members": self.references})

    @classmethod
    def load(cls, directory: Path) -> Ensemble:
        """From `model.json` and the members laid out beside it (verified by the registry)."""
        meta = read_meta(directory)
        ensemble = cls(ForecastParams(**meta["params"]), members_of(directory, meta))
        ensemble.references = meta["members"]
        return ensemble


class Composed:
    """A registered candidate combined with best naive per horizon step: best naive's
    forecast plus the candidate's weight there times the candidate's difference from it
    (`forecasting.scoring.gate.plan_composition`; weight 0 where the gate did not trust it).
    Like the ensemble, its artifact references the member's registered version and checksum."""

    name = family = COMPOSED

    def __init__(self, member, naive: BestNaive, weights: np.ndarray) -> None:
        self.params, self.columns = member.params, member.columns
        self.member, self.naive = member, naive
        self.weights = np.asarray(weights, np.float64)
        if self.weights.shape != (self.params.horizon_steps,) or not np.all(
                (self.weights >= 0) & (self.weights <= 1)):
            raise ValueError(f"a composed forecast needs a weight in [0, 1] for each of the "
                             f"{self.params.horizon_steps} horizon steps")
        self.references: list[dict] = []

    @property
    def members(self) -> list:
        return [self.member]

    def fit(self, train: Windows, validation: Windows | None = None) -> Composed:
        return self  # the member, best naive's choice and the weights are fitted already

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        naive = self.naive.predict(inputs)
        return naive + self.weights * (np.asarray(self.member.predict(inputs), np.float64)
                                       - naive)

    def save(self, directory: Path) -> Path:
        """`model.json`: the member's reference (set by the registry), best naive's choice
        per horizon step and the member's weight at each step."""
        if len(self.references) != 1:
            raise ValueError("a composed forecast is saved with a reference to its member")
        return write_meta(directory, {
            "family": self.family, "params": self.params.model_dump(mode="json"),
            "columns": list(self.columns), "members": self.references,
            "weights": self.weights.tolist(),
            "use_seasonal": np.asarray(self.naive.use_seasonal, bool).tolist(),
            "target_index": self.naive.persistence.target_index})

    @classmethod
    def load(cls, directory: Path) -> Composed:
        """From `model.json` and the member beside it; also reads the first layout, which
        chose per step (`naive_steps`: best naive's forecast or the member's)."""
        meta = read_meta(directory)
        return cls.from_meta(meta, members_of(directory, meta))

    @classmethod
    def from_meta(cls, meta: dict, members: list) -> Composed:
        params = ForecastParams(**meta["params"])
        naive = BestNaive.restore(meta["use_seasonal"], meta["target_index"],
                                  params.lookback_steps, params.samples_per_day)
        weights = (meta["weights"] if "weights" in meta
                   else 1 - np.array(meta["naive_steps"], np.float64))
        composed = cls(members[0], naive, weights)
        composed.references = meta["members"]
        return composed
