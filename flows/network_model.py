"""Flow `network-model`: the weekly fit of one model across every station of the network
(`forecasting.models.pooled`), one per target quantity, registered under
`@network/<target>_<h>h` with checksums like every model. Each family is also fitted
without each group of stations, which are then replayed as new: that evidence decides, per
horizon group, how far a station too new for models of its own may lean on it
(`forecasting.scoring.cold_start`), and it is the decision's record. The better family on
that evidence becomes the network model's champion when it beats best naive there."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

from flows.network import artifact_key, database_refusals, open_or_refuse
from flows.settings import Settings, as_utc, task_runner, run_name, settings_from, who_started
from forecasting.candidates import library_versions
from forecasting.config import ForecastParams, NetworkModelParams, network_model_name
from forecasting.models.isolated import SavedNetwork
from forecasting.features import station_windows
from forecasting.models.pooled import PooledForecaster, network_inputs, network_windows
from forecasting.scoring.cold_start import (NAIVE_DAYS, Replay, cold_start_composition,
                                            replayed_as_new)
from forecasting.scoring.gate import Composition
from forecasting.windows import Windows
from registry.observations import read_observations
from registry.registration import lock_model, move_orphans_aside, register_version
from registry.store import Store, open_store
from registry.versions import ModelVersion, NewVersion, record_event

MIN_STATIONS = 3  # one to replay as new, and at least two others to judge it by


def network_station_windows(store: Store, settings: Settings, stations: list[str],
                            until: datetime) -> dict[str, Windows]:
    """Each station's windows of the network model over its `history_days` before `until`,
    only the columns the model reads (a thousand stations' year is then about 300 MB, not
    800); stations without a complete window are left out."""
    nm = settings.network_model
    params = nm.forecast_params(settings.forecast)
    start = until - timedelta(days=nm.history_days + params.lookback_hours / 24 + 1)
    found = {}
    for name in stations:
        mine = store.of(name)
        with mine.sessions() as session:
            frame = read_observations(session, mine.observations, start=start, end=until)
        if frame.empty:
            continue
        windows, _ = station_windows(frame, mine.station, params)
        if len(windows):
            found[name] = network_inputs(windows, params.lookback_steps, 1.0)
    return found


@dataclass(frozen=True)
class Fitted:
    """One family's weekly fit as plain data (it may come from a Dask worker): the saved
    model's files, the stations replayed as new, and the combination with best naive those
    replays support (None with too few of them)."""

    family: str
    params: ForecastParams
    directory: Path
    training: dict
    replays: dict[str, Replay]
    composition: Composition | None

    def model(self) -> SavedNetwork:
        """The saved files, for registering (copied, never loaded)."""
        return SavedNetwork(self.family, self.params, (), self.directory, 0, self.training)


@task(cache_policy=NO_CACHE, task_run_name="fit {family} across the stations: {target}")
def fit_family(settings: Settings, target: str, stations: list[str], family: str,
               until: datetime, workdir: Path) -> Fitted | None:
    """The family fitted on every station and saved under `workdir`, and the stations
    replayed as new; None, said in the log, when too few stations have data for it (a
    network of one station has no network model: nothing fails). Takes and returns plain
    data, so it runs on threads or on Dask workers alike."""
    nm: NetworkModelParams = settings.network_model
    params = nm.forecast_params(settings.forecast)
    store = open_store(settings.db_url, settings.stations)
    try:
        windows = network_station_windows(store, settings, stations, until)
    finally:
        store.close()
    if len(windows) < MIN_STATIONS:
        get_run_logger().info(
            "No network model for %s: %d station(s) have a complete %d h window, it needs "
            "%d", target, len(windows), params.lookback_hours, MIN_STATIONS)
        return None
    moment = pd.Timestamp(until.astimezone(UTC).replace(tzinfo=None))
    train, validation = network_windows(windows, params, moment, nm.history_days)
    if sum(len(w) > 0 for w, _ in train.values()) < MIN_STATIONS:
        get_run_logger().info(
            "No network model for %s: fewer than %d stations have windows before the last "
            "%g days (kept for validation)", target, MIN_STATIONS, params.validation_days)
        return None
    jobs, threads = Path(workdir) / f"{family}-jobs", settings.tensorflow_threads
    model = PooledForecaster(family, params)
    model.fit_network(train, validation, nm.max_windows, jobs / "network", threads)
    _, replays = replayed_as_new(windows, params, family, moment, nm.history_days,
                                 nm.station_groups, nm.evidence_days, nm.new_station_days,
                                 nm.max_windows, nm.replayed_stations, params.seed,
                                 workdir=jobs, threads=threads)
    if not replays:  # a young network: nothing to record the version's scores on
        get_run_logger().info(
            "No network model for %s from %s: no station has the history to be replayed as "
            "new (%g days before the %g replayed, and a %d h window), the evidence it is "
            "gated and scored on", target, family, NAIVE_DAYS, nm.evidence_days,
            params.lookback_hours)
        return None
    composition = cold_start_composition(list(replays.values()), params) \
        if len(replays) >= 2 else None
    if composition is not None:
        model.cold_start = {"weights": composition.weights.tolist(),
                            "evidence": composition.summary, "stations": list(replays)}
    directory = model.save(Path(workdir) / family)
    return Fitted(family, params, directory, model.training, replays, composition)


def composed_residuals(replays: dict[str, Replay], composition: Composition | None
                       ) -> np.ndarray:
    """The replays' residuals of best naive + w (network model − best naive), each station's
    w chosen on the other stations' replays (out of sample, as the gate scores folds);
    best naive's own without a composition."""
    if composition is None:
        return np.concatenate([r.best_naive for r in replays.values()])
    return np.concatenate([r.best_naive - w * (r.best_naive - r.network)
                           for r, w in zip(replays.values(), composition.fold_weights,
                                           strict=True)])


def new_version(name: str, fitted: Fitted, stations: int, until: datetime,
                history_days: float) -> NewVersion:
    """The version's record: its scores are those of the stations replayed as new (the
    network model combined with best naive as a new station's forecast is, out of
    sample), each station in its own units."""
    def mae(residuals: np.ndarray) -> tuple[float, ...]:
        return tuple(float(v) for v in np.abs(residuals).mean(axis=0))

    def pooled(kind: str) -> np.ndarray:
        return np.concatenate([getattr(r, kind) for r in replays.values()])

    replays = fitted.replays
    mine = composed_residuals(replays, fitted.composition)
    return NewVersion(name, fitted.family, fitted.params.model_dump(mode="json"),
                      until - timedelta(days=history_days), until, stations,
                      len(mine), mae(mine), mae(pooled("persistence")),
                      mae(pooled("best_naive")), mae(pooled("seasonal")), library_versions(),
                      {})


@task(cache_policy=NO_CACHE, task_run_name="register and gate {name}")
@database_refusals
def register_and_gate(store: Store, settings: Settings, name: str,
                      fitted: dict[str, Fitted], stations: int, until: datetime,
                      triggered_by: str) -> list[dict]:
    """Register every fitted family and record the decision, under the model's lock: the
    family whose cold-start combination did best on the replays is promoted when it beats
    best naive there; otherwise the network model keeps its champion (or has none, and new
    stations get best naive)."""
    root, nm = settings.artifact_dir, settings.network_model
    rows = []
    with store.sessions.begin() as session:
        lock_model(session, name)
        move_orphans_aside(session, root, name)
        versions: dict[str, ModelVersion] = {}
        for family, fit in fitted.items():
            versions[family] = register_version(session, root, new_version(
                name, fit, stations, until, nm.history_days), fit.model())
        winning = [f for f, v in versions.items() if fitted[f].composition is not None
                   and len(fitted[f].composition.naive_groups)
                   < len(fitted[f].composition.evidence)
                   and v.holdout_mean < v.best_naive_mean]
        best = min(winning, key=lambda f: versions[f].holdout_mean, default=None)
        for family, version in versions.items():
            composition = fitted[family].composition
            wins, promoted = family in winning, family == best
            evidence = composition.summary if composition else "too few stations replayed"
            reason = (f"{family} across {version.rows} stations, replayed as new at "
                      f"{len(fitted[family].replays)}: {version.holdout_mean:.3f} against best "
                      f"naive's {version.best_naive_mean:.3f}; {evidence}")
            if not promoted:
                reason += ("; another family did better" if wins else
                           "; it does not beat best naive on the replays")
            record_event(session, name, "promoted" if promoted else "rejected", reason,
                         triggered_by, version,
                         {"candidate_mean": version.holdout_mean,
                          "candidate_last": version.holdout_last,
                          "baseline_mean": version.persistence_mean,
                          "baseline_last": version.persistence_last,
                          "best_naive_mean": version.best_naive_mean,
                          "best_naive_last": version.best_naive_last},
                         {"cold_start": [str(e) for e in composition.evidence]
                          if composition else []})
            rows.append({"model": name, "family": family, "version": version.version,
                         "stations": version.rows, "replayed": len(fitted[family].replays),
                         "replay MAE": round(version.holdout_mean, 3),
                         "best naive MAE": round(version.best_naive_mean, 3),
                         "decision": "promoted" if promoted else "rejected",
                         "trusted": composition.weighting if composition else ""})
    return rows


@flow(name="network-model", flow_run_name=run_name("network-model"))
def network_model(data_dir: str | None = None, database_url: str | None = None,
                  station_schema: str | None = None, stations_file: str | None = None,
                  at: datetime | None = None, triggered_by: str | None = None
                  ) -> list[dict] | State:
    """Fit, register and gate the network model of each target quantity on the data up to
    `at` (default: now). One job for the whole network, run weekly."""
    logger = get_run_logger()
    triggered_by = who_started(triggered_by)
    settings = settings_from(data_dir, database_url, station_schema, stations_file)
    until = as_utc(at) if at else datetime.now(UTC)
    store = open_or_refuse(settings, settings.stations)
    if isinstance(store, State):
        return store
    by_name: dict[str, list[str]] = {}
    for station in settings.stations:
        name = network_model_name(station, settings.forecast)
        by_name.setdefault(name, []).append(station.name)
    rows, problems = [], []
    params = settings.network_model.forecast_params(settings.forecast)
    try:
        with tempfile.TemporaryDirectory(prefix="sensorcast-network-") as work, \
                task_runner(settings, params.parallel_folds) as runner:
            for name, stations in by_name.items():
                target = name.split("/")[1]
                futures = {family: runner.submit(fit_family, {
                    "settings": settings, "target": target, "stations": stations,
                    "family": family, "until": until, "workdir": Path(work) / target})
                    for family in settings.network_model.families}
                fitted = {}
                for family, future in futures.items():
                    future.wait()
                    state = future.state
                    if not state.is_completed():
                        problems.append(f"{name} {family}: {state.message}")
                    elif state.result() is not None:
                        fitted[family] = state.result()
                if fitted:
                    rows += register_and_gate(store, settings, name, fitted, len(stations),
                                              until, triggered_by)
    finally:
        store.close()
    for row in rows:
        logger.info("%s %s v%s: %s (%s)", row["model"], row["family"], row["version"],
                    row["decision"], row["trusted"])
    if rows:
        create_table_artifact(key=artifact_key("network-model", "all"), table=rows,
                              description="The network model's weekly fit and its gate")
    if problems:
        return Failed(message="; ".join(problems))
    return rows
