"""The candidate families, fitted together at one cut-off: linear models on the long history,
networks correcting the linear base on their rolling window, and the ensemble of them all.
Also the naive yardsticks fitted on the same data, so every comparison is like for like."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.baselines import BestNaive, Persistence, SeasonalPersistence
from forecasting.config import COMPOSED, ENSEMBLE, NETWORKS, ForecastParams
from forecasting.evaluation import FoldFit, Forecaster, FoldSplit, predict_windows
from forecasting.isolated import fit_networks
from forecasting.linear import LINEAR, META_FILE, load_linear
from forecasting.windows import Windows

NAIVE = ("persistence", "seasonal_persistence", "best_naive")


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
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"family": self.family, "params": self.params.model_dump(mode="json"),
                "columns": list(self.columns), "members": self.references}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        return directory / META_FILE

    @classmethod
    def from_meta(cls, meta: dict, members: list) -> Ensemble:
        ensemble = cls(ForecastParams(**meta["params"]), members)
        ensemble.references = meta["members"]
        return ensemble


class Composed:
    """A registered candidate combined with best naive per horizon step: best naive's
    forecast plus the candidate's weight there times the candidate's difference from it
    (`forecasting.promotion.plan_composition`; weight 0 where the gate did not trust it).
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
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"family": self.family, "params": self.params.model_dump(mode="json"),
                "columns": list(self.columns), "members": self.references,
                "weights": self.weights.tolist(),
                "use_seasonal": np.asarray(self.naive.use_seasonal, bool).tolist(),
                "target_index": self.naive.persistence.target_index}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        return directory / META_FILE

    @classmethod
    def from_meta(cls, meta: dict, members: list) -> Composed:
        """Also reads the first layout, which chose per step (`naive_steps`: best naive's
        forecast or the member's)."""
        params = ForecastParams(**meta["params"])
        naive = BestNaive.restore(meta["use_seasonal"], meta["target_index"],
                                  params.lookback_steps, params.samples_per_day)
        weights = (meta["weights"] if "weights" in meta
                   else 1 - np.array(meta["naive_steps"], np.float64))
        composed = cls(members[0], naive, weights)
        composed.references = meta["members"]
        return composed


def naive_baselines(train: Windows, params: ForecastParams) -> dict[str, Forecaster]:
    """Persistence, seasonal persistence and the per-horizon best of them, fitted on `train`."""
    period = params.samples_per_day
    return {"persistence": Persistence().fit(train),
            "seasonal_persistence": SeasonalPersistence(period).fit(train),
            "best_naive": BestNaive(period).fit(train)}


def fit_candidates(fold: FoldSplit, params: ForecastParams, relative: np.ndarray,
                   workdir: Path, threads: int = 1, networks: bool = True) -> FoldFit:
    """Every family of `params` fitted on the fold's training windows (plus the naive
    baselines), with their predictions for the fold's test windows. Linear models use all
    of it (up to `history_days`); networks the last `window_days`, on top of the
    `network_base` linear model fitted on all of it, in a process of their own whose files
    go under `workdir` (which must outlive the returned networks). Without `networks`, only
    the cheap families (and an ensemble only if it has no network member)."""
    families = params.families
    if not networks and any(f in NETWORKS for f in families):
        families = tuple(f for f in families if f not in NETWORKS and f != ENSEMBLE)
    start = fold.cutoff - pd.Timedelta(days=params.validation_days)
    train = fold.train.between(start - pd.Timedelta(days=params.history_days), None)
    models: dict[str, Forecaster] = naive_baselines(train, params)
    linear = [f for f in LINEAR if f in families or
              (f == params.network_base and any(n in families for n in NETWORKS))]
    models.update({f: LINEAR[f](params).fit(train, fold.validation) for f in linear})
    predictions = {name: predict_windows(model, fold.test) for name, model in models.items()}
    recent = train.between(start - pd.Timedelta(days=params.window_days), None)
    costly = [f for f in families if f in NETWORKS]
    if costly:
        fitted = fit_networks(Path(workdir) / f"{fold.cutoff:%Y%m%dT%H%M}", costly, params,
                              relative, models[params.network_base], recent, fold.validation,
                              fold.test, threads)
        for family, (network, network_predictions) in fitted.items():
            models[family], predictions[family] = network, network_predictions
    if ENSEMBLE in families:  # ForecastParams makes sure it has members
        members = distinct_members(models, families, params)
        models[ENSEMBLE] = Ensemble(params, [models[f] for f in members])
        predictions[ENSEMBLE] = np.mean([predictions[f].astype(np.float64) for f in members],
                                        axis=0)
    keep = {*NAIVE, *families}  # a base fitted only for the networks is not a candidate
    return FoldFit({n: m for n, m in models.items() if n in keep},
                   {n: p for n, p in predictions.items() if n in keep})


def distinct_members(models: dict[str, Forecaster], families: tuple[str, ...],
                     params: ForecastParams) -> list[str]:
    """The ensemble's members: every other family, except a network whose training never
    beat its linear base ("kept the base": it forecasts as the base does) when the base is
    a member already, or another such network is; a copy would weight the average towards
    the base."""
    members, copies_of_base = [], params.network_base in families
    for family in families:
        if family == ENSEMBLE:
            continue
        if getattr(models[family], "training", {}).get("kept_base"):
            if copies_of_base:
                continue
            copies_of_base = True
        members.append(family)
    return members


def load_model(directory: Path):
    """A saved model of any family, as `registry.artifacts.verified_copy` lays it out: an
    ensemble's or a composed forecast's members in `member0`, `member1`, ... beside its
    `model.json`."""
    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    if meta.get("family") == ENSEMBLE:
        return Ensemble.from_meta(meta, [load_model(directory / f"member{k}")
                                         for k in range(len(meta["members"]))])
    if meta.get("family") == COMPOSED:
        return Composed.from_meta(meta, [load_model(directory / "member0")])
    return load_candidate(directory)


def load_candidate(directory: Path):
    """A saved linear model or network (not an ensemble: its members come from the registry)."""
    family = json.loads((Path(directory) / META_FILE).read_text())["family"]
    if family in LINEAR:
        return load_linear(directory)
    if family in NETWORKS:
        from forecasting.training import NetworkForecaster  # TensorFlow only where needed
        return NetworkForecaster.load(directory)
    raise ValueError(f"{directory}: family {family!r} is not loaded from files alone")


def library_versions() -> dict[str, str]:
    """The versions a saved candidate was made with (read without importing TensorFlow)."""
    return {"keras": version("keras"), "tensorflow": version("tensorflow-cpu"),
            "numpy": np.__version__, "pandas": pd.__version__}
