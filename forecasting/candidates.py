"""The candidate families, fitted together at one cut-off: linear models on the long history,
networks correcting the linear base on their rolling window, and the ensemble of them all.
Also the naive yardsticks fitted on the same data, so every comparison is like for like."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.config import ENSEMBLE, NETWORKS, ForecastParams
from forecasting.models.ensemble import Ensemble
from forecasting.models.isolated import fit_networks
from forecasting.models.linear import LINEAR
from forecasting.models.naive import BestNaive, Persistence, SeasonalPersistence
from forecasting.models.reuse import PriorNetwork
from forecasting.scoring.backtest import (Backtest, FoldFit, FoldSplit, Predictor,
                                          predict_windows)
from forecasting.windows import Windows

NAIVE = ("persistence", "seasonal_persistence", "best_naive")


def naive_baselines(train: Windows, params: ForecastParams, every_hour: bool = False
                    ) -> dict[str, Predictor]:
    """Persistence, seasonal persistence and the per-horizon best of them, fitted on `train`:
    best at the hours the forecast is issued from (`ForecastParams.scored_hours`), or with
    `every_hour` over the whole day (a bench's reference, picked as a user would by hand)."""
    period = params.samples_per_day
    return {"persistence": Persistence().fit(train),
            "seasonal_persistence": SeasonalPersistence(period).fit(train),
            "best_naive": BestNaive.at_hours(train, period,
                                             None if every_hour else params.scored_hours)}


def fit_candidates(fold: FoldSplit, params: ForecastParams, relative: np.ndarray,
                   workdir: Path, threads: int = 1, networks: bool = True,
                   warm: dict[str, PriorNetwork] | None = None) -> FoldFit:
    """Every family of `params` fitted on the fold's training windows (plus the naive
    baselines), with their predictions for the fold's test windows. Linear models use all
    of it (up to `history_days`); networks the last `window_days`, on top of the
    `network_base` linear model fitted on all of it, in a process of their own whose files
    go under `workdir` (which must outlive the returned networks). Without `networks`, only
    the cheap families (and an ensemble only if it has no network member). A network
    family in `warm` is fine-tuned from that registered network instead of from zero."""
    families = params.families
    if not networks and any(f in NETWORKS for f in families):
        families = tuple(f for f in families if f not in NETWORKS and f != ENSEMBLE)
    start = fold.cutoff - pd.Timedelta(days=params.validation_days)
    train = fold.train.between(start - pd.Timedelta(days=params.history_days), None)
    models: dict[str, Predictor] = naive_baselines(train, params)
    linear = [f for f in LINEAR if f in families or
              (f == params.network_base and any(n in families for n in NETWORKS))]
    models.update({f: LINEAR[f](params).fit(train, fold.validation) for f in linear})
    predictions = {name: predict_windows(model, fold.test) for name, model in models.items()}
    recent = train.between(start - pd.Timedelta(days=params.window_days), None)
    costly = [f for f in families if f in NETWORKS]
    if costly:
        fitted = fit_networks(Path(workdir) / f"{fold.cutoff:%Y%m%dT%H%M}", costly, params,
                              relative, models[params.network_base], recent, fold.validation,
                              fold.test, threads, warm)
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


def distinct_members(models: dict[str, Predictor], families: tuple[str, ...],
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


def widen_ensemble(backtest: Backtest, offered: list[str]) -> list[str]:
    """Make the network model's families (`offered`: added to `backtest` after the station's
    own fits) members of the station's ensemble, as it will be registered: the mean of
    every member's forecast, scored at each fold from the members' own forecasts there. A
    family joins only if it was scored at every fold the ensemble was (a network model too
    young for the older folds would cut the ensemble's evidence to the newest); returns the
    families that joined. The network model and a station's own models err apart, and
    their mean errs less: at the 8-city network's mature stations the gate's choice with
    it was 0.86-0.99 of the MAE without it at 7 of 8 stations, 1.02 at one
    (`bench/network.py --part gate`)."""
    ensemble = backtest.models.get(ENSEMBLE)
    if ensemble is None:
        return []
    covered = backtest.folds_of(ENSEMBLE)
    joined = [f for f in offered if set(covered) <= set(backtest.folds_of(f))]
    members = [m.family for m in ensemble.members] + joined
    if not joined or any(backtest.fold_residuals[m][k] is None for m in members
                         for k in covered):
        return []
    backtest.add(ENSEMBLE, {k: backtest.folds[k].test.targets() - np.mean(
        [backtest.fold_residuals[m][k] for m in members], axis=0) for k in covered},
        Ensemble(ensemble.params, [*ensemble.members, *(backtest.models[f] for f in joined)]))
    return joined


def library_versions() -> dict[str, str]:
    """The versions a saved candidate was made with (read without importing TensorFlow)."""
    return {"keras": version("keras"), "tensorflow": version("tensorflow-cpu"),
            "numpy": np.__version__, "pandas": pd.__version__}
