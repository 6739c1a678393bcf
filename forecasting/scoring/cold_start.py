"""The gate for a new station: too little history for folds of its own, so the network model
is judged on the evidence that exists, how it did on the other stations of the network
replayed as new (each with a few days of its own history, never seen by the model that
forecast it).

Each other station is one fold of the usual composition (`plan_composition`): the network
model is combined with best naive per horizon step at the weights those replays support,
and trusted in a horizon group only if it won there at every other station but at most one
in six and a paired test says so; elsewhere the new station gets best naive's forecast.
The stations' replays cover the same days, so their errors are correlated across stations
as well as in time; the test sees each station's stretch as apart from the others, which
the station-by-station rule (a win at nearly every station) makes up for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.config import ForecastParams
from forecasting.models.naive import BestNaive, Persistence, SeasonalPersistence
from forecasting.models.pooled import PooledForecaster, network_windows, scale_between
from forecasting.scoring.backtest import predict_windows
from forecasting.scoring.gate import Composition, plan_composition
from forecasting.windows import Windows

NAIVE_DAYS = 28  # best naive is chosen on these days before the replay, as the issue does
MIN_WINDOWS = 5  # a station with fewer windows in the replay days is not replayed


@dataclass(frozen=True)
class Replay:
    """One station replayed as new: the residuals (actual − forecast, (windows, horizon))
    of the network model that never saw it and of the naive forecasts, on the same windows."""

    network: np.ndarray
    best_naive: np.ndarray
    persistence: np.ndarray
    seasonal: np.ndarray


def cold_start_composition(replays: list[Replay], params: ForecastParams) -> Composition:
    """A new station's combination of the network model with best naive, from the other
    stations replayed as new (at the scored hours)."""
    return plan_composition([r.network for r in replays], [r.best_naive for r in replays],
                            params.group_steps, params.overlap_windows,
                            params.gate_confidence, params.step_minutes / 60)


def replayed_as_new(windows: dict[str, Windows], params: ForecastParams, family: str,
                    until: pd.Timestamp, days: float, groups: int, evidence_days: float,
                    new_days: float, max_windows: int | None = None,
                    replayed: int | None = None, seed: int = 0,
                    workdir: Path | None = None, threads: int = 1
                    ) -> tuple[dict[str, PooledForecaster], dict[str, Replay]]:
    """Each station replayed as new over the `evidence_days` before `until`: the stations
    split into `groups` groups, each group forecast by a network model fitted (on `days`
    before `until`, at most `max_windows` of them) without it, each station with the scale
    of its `new_days` before the replay, at the scored hours; at most `replayed` stations,
    drawn at random (the gate's cross-fitting over replayed stations grows with their
    square, and 48 stations' four weeks are evidence enough). Returns the model that
    forecast each station, and the residuals (actual − forecast) of that model and of best
    naive (chosen as the issue chooses it, on the days before the replay) and the other
    naive forecasts for each station replayed. With `workdir`, each group's GRU is fitted
    in a process of its own there, which also forecasts the group's replays
    (`PooledForecaster.fit_network`)."""
    names = list(windows)
    start = until - pd.Timedelta(days=evidence_days)
    period, hours = params.samples_per_day, params.scored_hours
    drawn = set(names) if replayed is None or len(names) <= replayed else set(
        np.random.default_rng(seed).choice(names, replayed, replace=False))
    unseen: dict[str, PooledForecaster] = {}
    replays: dict[str, Replay] = {}
    for number, group in enumerate(names[g::groups] for g in range(min(groups, len(names)))):
        train, validation = network_windows(windows, params, until, days, tuple(group))
        if not train:
            continue
        shown, before = {}, {}
        for name in group:
            w = windows[name]
            here = w.between(start, until).at_hours(hours)
            earlier = w.between(start - pd.Timedelta(days=NAIVE_DAYS), start).at_hours(hours)
            if name in drawn and len(here) >= MIN_WINDOWS and len(earlier):
                scale = scale_between(w, start - pd.Timedelta(days=new_days), start, period)
                shown[name], before[name] = (here, scale), earlier
        model = PooledForecaster(family, params)
        job = Path(workdir) / f"group{number}" if workdir else None
        forecasts = model.fit_network(train, validation, max_windows, job, threads, shown)
        unseen.update({name: model for name in group})
        for name, (here, _) in shown.items():
            naive = BestNaive.at_hours(before[name], period, hours)
            actual = here.targets()
            replays[name] = Replay(actual - forecasts[name], *(
                actual - predict_windows(m, here) for m in (
                    naive, Persistence().fit(here), SeasonalPersistence(period).fit(here))))
    return unseen, {name: replays[name] for name in names if name in replays}
