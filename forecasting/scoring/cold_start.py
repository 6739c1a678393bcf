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

import numpy as np

from forecasting.config import ForecastParams
from forecasting.scoring.gate import Composition, plan_composition


def cold_start_composition(network: list[np.ndarray], naive: list[np.ndarray],
                           params: ForecastParams, windows_per_day: int = 1) -> Composition:
    """The new station's combination of the network model with best naive, from the
    residuals (actual − forecast, (windows, horizon)) of the network model and of best
    naive at each other station replayed as new, `windows_per_day` issues a day."""
    lag = max(1, -(-params.horizon_steps * windows_per_day // params.samples_per_day))
    step_hours = params.step_minutes / 60
    return plan_composition(network, naive, params.group_steps, lag,
                            params.gate_confidence, step_hours)
