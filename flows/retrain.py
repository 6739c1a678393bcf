"""Flow `retrain`: for each station, fit every candidate family at each cut-off of a rolling
backtest (folds spread over the recent history), register the newest fold's models, and
promote the best only if it beats the best naive forecast (on the mean, at +24 h and in every
6-hour group, trusting each candidate only in the groups where its win was consistent and
composing it with best naive in the others) and the champion, on the same windows."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.states import Failed, State
from prefect.task_runners import TaskRunner
from pydantic import ValidationError
from sqlalchemy.orm import Session

from flows.network import (artifact_key, database_refusals, map_stations, open_or_refuse,
                           outcome, warn_unlisted)
from flows.settings import (Settings, as_utc, task_runner, invalid_settings, params_from, run_name,
                            settings_from, utc_datetime, who_started)
from forecasting.models.naive import BestNaive
from forecasting.candidates import fit_candidates, library_versions, widen_ensemble
from forecasting.models.ensemble import Composed
from forecasting.config import (COMPOSED, ENSEMBLE, NETWORKS, POOLED, ForecastParams,
                                model_name, network_model_name)
from forecasting.scoring.backtest import (Backtest, FoldFit, FoldSplit, Scores, predict_windows,
                                         rolling_folds)
from forecasting.features import station_windows
from forecasting.scoring.intervals import calibrate_by_hour
from forecasting.models.isolated import JobFailed, SavedNetwork, predict_saved
from forecasting.models.families import read_meta
from forecasting.models.pooled import PooledForecaster, scale_between
from forecasting.models.reuse import (PriorNetwork, skipped_families, warm_starts,
                                     worth_reading)
from forecasting.scoring.gate import gate_backtest
from forecasting.windows import NotEnoughData, Windows
from registry.artifacts import ArtifactError, load_verified, member_reference, verified_copy
from registry.leases import Lease, LeaseBusy, LeaseLost, held
from registry.observations import newest_time, read_observations
from registry.registration import lock_model, move_orphans_aside, register_version
from registry.store import Store
from registry.versions import (ModelVersion, NewVersion, champion, list_versions,
                               record_event)

RIVALS = ("best_naive", "persistence", "seasonal_persistence")


@task(cache_policy=NO_CACHE, task_run_name="load windows")
def load_folds(store: Store, params: ForecastParams, until: datetime | None = None
               ) -> tuple[Windows, list[FoldSplit], np.ndarray, int] | NotEnoughData:
    """The last `history_days` of observations up to `until` (default now) as windows and
    the backtest's folds; too little data is returned as the refusal (an expected outcome,
    not a crash to trace)."""
    now = until or datetime.now(UTC)  # rows stamped later (a wrong clock) never anchor it
    with store.sessions() as session:
        newest = newest_time(session, store.observations, until=now)
        if newest is None:
            return NotEnoughData("no observations stored up to now; ingest data before "
                                 "retraining")
        frame = read_observations(session, store.observations,
                                  start=newest - timedelta(days=params.history_days), end=now)
    windows, relative = station_windows(frame, store.station, params)
    try:
        folds = rolling_folds(windows, params.folds, params.fold_days, params.validation_days,
                              params.backtest_days, min(params.network_folds, params.folds),
                              params.scored_hours)
    except NotEnoughData as refused:
        return refused
    return windows, folds, relative, len(frame)


@task(cache_policy=NO_CACHE, task_run_name="fit fold {number} (cut-off {fold.cutoff:%Y-%m-%d})")
def fit_fold(fold: FoldSplit, number: int, params: ForecastParams, relative: np.ndarray,
             workdir: Path, threads: int, networks: bool,
             warm: dict[str, PriorNetwork] | None = None) -> FoldFit:
    """Every candidate (the networks only if `networks`) and naive forecast fitted on the
    data before this fold's cut-off (each network in its own process, saved under
    `workdir`, fine-tuned from `warm`'s network of its family if there is one); logs how
    each network's training went."""
    fitted = fit_candidates(fold, params, relative, workdir / f"fold{number}", threads,
                            networks, warm)
    for family, model in fitted.models.items():
        if isinstance(model, SavedNetwork):
            get_run_logger().info("Fold %d, %s: %s", number, family, model.training_summary())
    return fitted


@dataclass(frozen=True)
class ChampionScores:
    """The champion re-scored on the backtest folds it had not seen, by fold number (0 is
    the oldest): like for like with the candidates, which never see their test windows."""

    version: ModelVersion | None
    by_fold: dict[int, Scores] = field(default_factory=dict)
    problem: str = ""
    blocks: bool = False  # no promotion over it this time (see `problem`)

    def on(self, folds: list[int]) -> Scores | None:
        """Its scores on those of `folds` it was scored on (None if none)."""
        mine = [self.by_fold[k] for k in folds if k in self.by_fold]
        return Scores.combine(mine) if mine else None

    def how(self, folds: list[int]) -> str:
        """How it was compared, in words, for the decision."""
        scores = self.on(folds)
        if scores is None:
            return ""
        return (f"champion v{self.version.version} compared on the "
                f"{sum(k in self.by_fold for k in folds)} fold(s) after its training data "
                f"ended ({self.version.train_end:%Y-%m-%d %H:%M}), {scores.windows} windows")


def score_champion(store: Store, settings: Settings, name: str, backtest: Backtest,
                   windows: Windows, workdir: Path) -> ChampionScores:
    """Re-score the current champion on the backtest's test windows after its training
    data ended, from a verified private copy of its files, in a process of its own (it may
    be a network)."""
    with store.sessions() as session:
        current = champion(session, name)
    if current is None:
        return ChampionScores(None)
    label = f"{name} v{current.version}"
    copy = workdir / "champion"
    try:
        model = verified_copy(current.artifact_path, current.artifact_sha256, label,
                              settings.artifact_dir, copy)
        meta = read_meta(copy)
        params = ForecastParams(**meta["params"])
    except ArtifactError as exc:
        return ChampionScores(current, problem=str(exc))
    except (ValueError, KeyError) as exc:
        return ChampionScores(current, problem=f"{label} has settings this version cannot "
                              f"read: {exc}")
    if tuple(meta["columns"]) != windows.columns:
        return ChampionScores(current, problem=f"{label} was trained on other features "
                              f"{tuple(meta['columns'])}")
    shape = (params.lookback_steps, params.horizon_steps)
    reads_tail = (meta["family"] in POOLED and shape[0] <= windows.lookback
                  and shape[1] == windows.horizon)
    if shape != (windows.lookback, windows.horizon) and not reads_tail:
        return ChampionScores(current, problem=(
            f"{label} reads {shape[0]} samples and forecasts {shape[1]}; the settings now "
            f"give {windows.lookback} and {windows.horizon}"))
    trained_until = as_utc(current.train_end)
    unseen = [k for k, fold in enumerate(backtest.folds)
              if utc_datetime(fold.cutoff) >= trained_until]
    if not unseen:
        return ChampionScores(current, problem=(
            f"{label} was trained on data up to {trained_until:%Y-%m-%d %H:%M}, after every "
            "backtest fold's cut-off, so it cannot be scored out of sample; not promoting "
            "over it"), blocks=True)
    try:
        predictions = predict_saved(workdir / "champion-predictions", model,
                                    backtest.test_sets(unseen), settings.tensorflow_threads)
    except JobFailed as exc:
        return ChampionScores(current, problem=f"{label} cannot be loaded: {exc}")
    return ChampionScores(current, backtest.score_fixed(predictions))


def new_version(name: str, family: str, backtest: Backtest, rows: int) -> NewVersion:
    """The newest fold's model `family` (a backtest entry such as `ridge` or
    `composed:ridge`) as a registry entry, with its backtest scores and the naive
    forecasts' on the same windows."""
    model, scores, last = backtest.models[family], backtest.scores(family), backtest.folds[-1]
    folds = backtest.folds_of(family)
    return NewVersion(
        model_name=name, family=model.family, params=model.params.model_dump(mode="json"),
        train_start=utc_datetime(last.train.origin_times()[0]),
        train_end=utc_datetime(last.cutoff),
        rows=rows, holdout_windows=scores.windows, holdout_mae=scores.mae,
        persistence_mae=backtest.scores("persistence", folds).mae,
        best_naive_mae=backtest.scores("best_naive", folds).mae,
        seasonal_mae=backtest.scores("seasonal_persistence", folds).mae,
        library_versions=library_versions(),
        intervals=calibrate_by_hour(
            backtest.residuals(family)[:, model.params.hourly_steps],
            backtest.residual_hours(family), model.params.issue_neighbourhoods))


def register_and_gate(store: Store, settings: Settings, lease: Lease, name: str,
                      backtest: Backtest, rows: int, rival: ChampionScores,
                      params: ForecastParams,
                      triggered_by: str,
                      then: Callable[[Session, list[dict]], None] | None = None
                      ) -> tuple[list[dict], list] | None:
    """In one transaction under the model's lock: move aside what a crashed retrain left,
    register every candidate (an ensemble after the members it references), record the
    gate's decision on each (a winner trusted only in some horizon groups is registered
    and promoted as a composed forecast referencing it), and run `then` (a backtest
    records its step there), if this run still holds its `lease` (None, nothing written,
    when it lost it). A crash registers nothing; two retrains take turns."""
    root = settings.artifact_dir
    with store.sessions.begin() as session:
        if not lease.holds(session):
            return None
        lock_model(session, name)
        orphans = move_orphans_aside(session, root, name)
        now = champion(session, name)
        if (now and now.id) != (rival.version and rival.version.id):
            rival = ChampionScores(now, problem=(
                f"the champion became {name} v{now.version if now else None} during this "
                "retrain, after the candidates were compared; not promoting, the next "
                "retrain compares with it"), blocks=True)
        versions: dict[str, ModelVersion] = {}
        for family in sorted(params.families, key=lambda f: f == ENSEMBLE):  # members first
            model = backtest.models[family]
            if family == ENSEMBLE:
                model.references = [reference(name, versions[m.family], root)
                                    for m in model.members]
            versions[family] = register_version(session, root,
                                                new_version(name, family, backtest, rows), model)
        leaderboard = decide(session, name, root, versions, backtest, rows, rival, params,
                             triggered_by)
        if then:
            then(session, leaderboard)
        return leaderboard, orphans


def reference(name: str, version: ModelVersion, root: Path) -> dict:
    return member_reference(name, version.version, version.artifact_path,
                            version.artifact_sha256, root)


def submit_fits(runner: TaskRunner, folds: list[FoldSplit], params: ForecastParams,
                relative: np.ndarray, workdir: Path, threads: int,
                priors: list[PriorNetwork] = ()) -> list[PrefectFuture]:
    """Start fitting every fold on the runner (as many at once as it has workers); the
    networks only at the newest `network_folds`, each fine-tuned from the prior network
    `warm_starts` picks for the fold, if any."""
    first_network = len(folds) - min(params.network_folds, len(folds))
    networks = [f for f in params.families if f in NETWORKS]
    return [runner.submit(fit_fold, {"fold": fold, "number": i + 1, "params": params,
                                     "relative": relative, "workdir": workdir,
                                     "threads": threads, "networks": i >= first_network,
                                     "warm": warm_starts(priors, params, networks,
                                                         fold.cutoff)})
            for i, fold in enumerate(folds)]


def prior_networks(store: Store, settings: Settings, name: str, params: ForecastParams,
                   folds: list[FoldSplit], workdir: Path) -> list[PriorNetwork]:
    """The registered networks of `name` (`forecasting.models.reuse`): all of them count
    for the cadence; those the skip and warm-start rules need are read from verified
    private copies, and one whose files fail verification is not reused, with a warning."""
    with store.sessions() as session:
        rows = [v for v in list_versions(session, name) if v.family in NETWORKS]
    priors = [PriorNetwork(v.family, f"{name} v{v.version}", v.train_end, v.params)
              for v in rows]
    needed = worth_reading(priors, params, [fold.cutoff for fold in folds])
    versions = {f"{name} v{v.version}": v for v in rows}
    read = {}
    for prior in needed:
        version = versions[prior.label]
        try:
            copy = verified_copy(version.artifact_path, version.artifact_sha256, prior.label,
                                 settings.artifact_dir, workdir / "prior" / f"v{version.version}")
            read[prior.label] = replace(prior, training=read_meta(copy).get("training", {}),
                                        directory=copy)
        except (ArtifactError, OSError, ValueError) as exc:
            get_run_logger().warning("Not reusing %s: %s", prior.label, exc)
    return [read.get(p.label, p) for p in priors]  # every one counts for the cadence


def gate(store: Store, settings: Settings, lease: Lease, name: str, folds: list[FoldSplit],
         fits: list[PrefectFuture], windows: Windows, rows: int, params: ForecastParams,
         triggered_by: str, workdir: Path,
         then: Callable[[Session, list[dict]], None] | None = None) -> tuple[list[dict], str]:
    """Score the fitted folds and the champion on the same windows, then register and gate
    the candidates (LeaseLost, nothing registered, when this run lost its `lease`); returns
    the leaderboard and what the backtest covered, in words."""
    logger = get_run_logger()
    backtest = Backtest.assemble(folds, [f.result() for f in fits])
    offered = network_model_folds(store, settings, backtest, windows)
    params = params.model_copy(update={"families": (*params.families, *offered)})
    if joined := widen_ensemble(backtest, offered):
        logger.info("The ensemble's members include the network model's %s",
                    ", ".join(joined))
    # A composed forecast falls back on best naive as the forecast flow does: its choice of
    # persistence or seasonal persistence learnt from all the data at the issue hours.
    backtest.models["best_naive"] = BestNaive.at_hours(windows, params.samples_per_day,
                                                       params.scored_hours)
    rival = score_champion(store, settings, name, backtest, windows, workdir)
    if rival.problem:
        logger.warning("Champion not comparable: %s", rival.problem)
    registered = register_and_gate(store, settings, lease, name, backtest, rows, rival,
                                   params, triggered_by, then)
    if registered is None:
        lease.stop()
    leaderboard, orphans = registered
    for orphan in orphans:
        logger.warning("Moved aside %s, left by an interrupted retrain (no version row)",
                       orphan)
    for row in leaderboard:
        logger.info("%s v%s: mean MAE %.3f (%.2f x best naive %.3f) -> %s: %s",
                    row["family"], row["version"], row[MEAN_MAE], row[MEAN_RATIO],
                    row[NAIVE_MAE], row["decision"], row["reason"])
    return leaderboard, (f"{len(folds)} backtest folds "
                         f"({backtest.scores('best_naive').windows} windows; networks on the "
                         f"newest {min(params.network_folds, len(folds))})")


@lru_cache(maxsize=16)
def network_model_loaded(path: str, sha256: str, label: str, root: Path) -> PooledForecaster:
    """A network-model version verified and loaded once per process: every station's gate
    binds the same model to its own scale (a TensorFlow process of its own per station and
    day was three quarters of a station's daily retrain)."""
    return load_verified(path, sha256, label, root)


_PREDICTING = threading.Lock()  # one Keras model, many stations' threads


def network_model_folds(store: Store, settings: Settings, backtest: Backtest,
                        windows: Windows) -> list[str]:
    """Offer the network model to the station's gate, out of sample: at each fold, each
    family's newest registered version trained on data before the fold's cut-off, bound to
    the station (its scale from its data before the cut-off), forecasts the fold's test
    windows. A family is offered only when it has a version at the newest fold, which is
    the one registered for the station; returns the families added to `backtest`."""
    name = network_model_name(store.station, settings.forecast)
    with store.sessions() as session:
        versions = [v for v in list_versions(session, name) if v.family in POOLED]
    days, offered = settings.network_model.history_days, []
    for family in sorted({v.family for v in versions}):
        mine = sorted((v for v in versions if v.family == family), key=lambda v: v.train_end)
        bound: dict[int, PooledForecaster] = {}
        for k, fold in enumerate(backtest.folds):
            usable = [v for v in mine if as_utc(v.train_end) <= utc_datetime(fold.cutoff)]
            if not usable:
                continue
            version = usable[-1]
            label = f"{name} v{version.version}"
            try:
                model = network_model_loaded(version.artifact_path, version.artifact_sha256,
                                             label, settings.artifact_dir)
            except ArtifactError as exc:
                get_run_logger().warning("Not offering %s at fold %d: %s", label, k + 1, exc)
                continue
            scale = scale_between(windows, fold.cutoff - timedelta(days=days), fold.cutoff,
                                  settings.forecast.samples_per_day)
            bound[k] = model.bind(scale, windows.columns, windows.target_index)
        newest = len(backtest.folds) - 1
        if newest not in bound:
            continue
        with _PREDICTING:
            predictions = {k: predict_windows(m, backtest.folds[k].test)
                           for k, m in bound.items()}
        backtest.add(family, predictions, bound[newest])
        offered.append(family)
    return offered


def fit_and_gate(store: Store, settings: Settings, lease: Lease, name: str, loaded: tuple,
                 params: ForecastParams, runner: TaskRunner, workdir: Path, triggered_by: str,
                 then: Callable[[Session, list[dict]], None] | None = None
                 ) -> tuple[list[dict], str]:
    """One retrain as the schedule runs it, on `loaded` (`load_folds`' windows and folds):
    the network families not due (`skipped_families`) are left out, the others fitted on
    every fold (networks fine-tuned from the registered ones of `name`), then gated and
    registered (`gate`); returns the leaderboard, skipped families included, and what the
    backtest covered."""
    windows, folds, relative, rows = loaded
    priors = prior_networks(store, settings, name, params, folds, workdir)
    skipped = skipped_families(priors, params, folds[-1].cutoff)
    for family, reason in skipped.items():
        get_run_logger().info("%s: %s", family, reason)
    fitted = params.model_copy(update={"families": tuple(
        f for f in params.families if f not in skipped)})
    fits = submit_fits(runner, folds, fitted, relative, workdir, settings.tensorflow_threads,
                       priors)
    leaderboard, covered = gate(store, settings, lease, name, folds, fits, windows, rows,
                                fitted, triggered_by, workdir, then)
    return leaderboard + [{"family": family, "decision": "skipped", "version": None,
                           "reason": reason} for family, reason in skipped.items()], covered


@task(cache_policy=NO_CACHE, task_run_name="retrain {station}")
@database_refusals
def retrain_station(station: str, settings: Settings, families: list[str] | None,
                    epochs: int | None, until: datetime | None, triggered_by: str
                    ) -> list[dict] | State:
    """Backtest, register and gate one station's candidates, alone (a retrain of the same
    station started elsewhere waits its turn). Too little data fails the station's task
    with the reason, before anything is written. Takes the flow's settings and plain
    parameters, so it runs on a Dask worker as on a thread (the worker's own environment
    does not change what the flow was asked to do)."""
    logger = get_run_logger()
    params = params_from(settings, families, epochs)
    store = open_or_refuse(settings, settings.selected(station))
    if isinstance(store, State):
        return store
    name = model_name(store.station, params)
    try:
        with held(store.sessions, f"retrain {station}", settings.retrain_wait_seconds,
                  lambda holder: logger.info("Waiting for the retrain of %s held by %s (at "
                                             "most %g s)", station, holder,
                                             settings.retrain_wait_seconds),
                  ttl=settings.lease_ttl_seconds) as lease:
            loaded = load_folds(store, params, until)
            if isinstance(loaded, NotEnoughData):  # Prefect logs the message, at ERROR
                return Failed(message=f"not retraining: {loaded}")
            windows, folds, relative, rows = loaded
            logger.info("Backtesting %s on %d rows: %d folds of %g days from %s, %d test "
                        "windows", station, rows, len(folds), params.fold_days,
                        f"{folds[0].cutoff:%Y-%m-%d %H:%M}", sum(len(f.test) for f in folds))
            with tempfile.TemporaryDirectory(prefix="sensorcast-retrain-") as work, \
                    task_runner(settings, params.parallel_folds) as runner:
                leaderboard, covered = fit_and_gate(store, settings, lease, name, loaded,
                                                    params, runner, Path(work), triggered_by)
    except LeaseBusy as busy:
        return Failed(message=f"not retraining: {busy}")
    except LeaseLost as lost:
        return Failed(message=f"not registering: {lost}")
    finally:
        store.close()
    create_table_artifact(key=artifact_key("retrain-leaderboard", station), table=leaderboard,
                          description=f"Candidates for {name} on {covered}")
    return leaderboard


@flow(name="retrain", flow_run_name=run_name("retrain"))
def retrain(data_dir: str | None = None, database_url: str | None = None,
            station_schema: str | None = None, stations_file: str | None = None,
            station: str | None = None, families: list[str] | None = None,
            epochs: int | None = None, until: datetime | None = None,
            triggered_by: str | None = None) -> dict[str, list[dict]] | State:
    """Backtest, register and gate the candidates of every station (or `station`) on the
    data up to `until` (default: now); returns each station's leaderboard. Up to
    `parallel_stations` stations retrain side by side, each fitting `parallel_folds` folds
    at once; one that fails (too little data, a broken champion) fails alone, and the run
    names it."""
    logger = get_run_logger()
    triggered_by = who_started(triggered_by)
    settings = settings_from(data_dir, database_url, station_schema, stations_file)
    try:
        params_from(settings, families, epochs)
        stations = settings.selected(station)
    except ValidationError as invalid:
        logger.error("Not retraining: %s", invalid_settings(invalid))
        return Failed(message=f"not retraining: {invalid_settings(invalid)}")
    except ValueError as unknown:
        return Failed(message=str(unknown))
    store = open_or_refuse(settings, settings.stations)  # the tables, once for all
    if isinstance(store, State):
        return store
    warn_unlisted(store)
    store.close()
    states = map_stations(retrain_station, stations,
                          task_runner(settings, settings.parallel_stations),
                          settings=settings, families=families, epochs=epochs,
                          until=as_utc(until) if until else None, triggered_by=triggered_by)
    return outcome("retrain", states)


def decide(session: Session, name: str, root: Path, versions: dict[str, ModelVersion],
           backtest: Backtest, rows: int, rival: ChampionScores, params: ForecastParams,
           triggered_by: str) -> list[dict]:
    """Gate every candidate, composed with best naive where its win was not consistent,
    against best naive on every fold it was scored at; rank those that pass, and compare
    them with the champion, on the folds they all share (the champion: those it had not
    seen). Promote the one `choose_champion` picks (none when the champion changed since
    the comparison, or could not be scored out of sample); a winner trusted in only some
    horizon groups is registered and promoted as a composed forecast referencing it."""
    verdict = gate_backtest(backtest, tuple(versions), params, rival.by_fold)
    winner, why, gates, plans = verdict.winner, verdict.why, verdict.decisions, verdict.plans
    there, ranking = verdict.champion_folds, verdict.ranking
    entry = {f: f"{COMPOSED}:{f}" for f in versions}
    if rival.by_fold and not there:
        rival = ChampionScores(rival.version, problem=(
            f"champion v{rival.version.version} was trained on data up to "
            f"{rival.version.train_end:%Y-%m-%d %H:%M}, after the cut-off of every fold the "
            "candidates share, so it cannot be compared out of sample; not promoting over it"),
            blocks=True)
    winner = None if rival.blocks else winner
    composed = None
    if winner and plans[winner].composed:
        model = Composed(backtest.models[winner], backtest.models["best_naive"],
                         plans[winner].weights)
        model.references = [reference(name, versions[winner], root)]
        backtest.models[entry[winner]] = model
        composed = register_version(session, root,
                                    new_version(name, entry[winner], backtest, rows), model)
    champion_scores, how = rival.on(there), rival.how(there)
    board = []
    for family in gates:
        version = versions[family]
        reason = (gates[family].reason + f"; evidence: {plans[family].summary}"
                  + (f"; {how}" if how else "") + (f"; {rival.problem}" if rival.problem else ""))
        decision = "promoted" if family == winner and not composed else "rejected"
        if gates[family].promote and winner not in (None, family):
            reason = (f"passed the gate, but {why} ({ranking[winner].mean:.3f} vs "
                      f"{ranking[family].mean:.3f})")
        if family == winner and composed:
            board.append(record(session, name, composed, "promoted", f"{reason}; {why}",
                                triggered_by, entry[family], backtest, champion_scores,
                                params))
            reason = (f"promoted as {COMPOSED} v{composed.version}: its forecast combined "
                      f"with best naive's ({plans[family].weighting})")
        board.append(record(session, name, version, decision, reason, triggered_by, family,
                            backtest, champion_scores, params))
    return board


def record(session: Session, name: str, version: ModelVersion, decision: str, reason: str,
           triggered_by: str, entry: str, backtest: Backtest, champion_scores: Scores | None,
           params: ForecastParams) -> dict:
    """Append the gate's decision on `version` (the backtest's `entry`) and return its
    leaderboard row; every score on the folds it was scored at."""
    folds = backtest.folds_of(entry)
    mine, naive = backtest.scores(entry), backtest.scores("best_naive", folds)
    persistence = backtest.scores("persistence", folds)
    groups = {f: list(backtest.scores(f, folds).groups(params.group_steps)) for f in RIVALS}
    groups["candidate"] = list(mine.groups(params.group_steps))
    groups["champion"] = (list(champion_scores.groups(params.group_steps))
                          if champion_scores else None)
    record_event(session, name, decision, reason, triggered_by, version, {
        "candidate_mean": mine.mean, "candidate_last": mine.last,
        "champion_mean": champion_scores.mean if champion_scores else None,
        "champion_last": champion_scores.last if champion_scores else None,
        "baseline_mean": persistence.mean, "baseline_last": persistence.last,
        "best_naive_mean": naive.mean, "best_naive_last": naive.last}, groups)
    return leaderboard_row(version, mine, naive, persistence, champion_scores, decision,
                           reason, params.group_steps, params.group_hours)


MEAN_RATIO, MEAN_MAE, NAIVE_MAE = "mean / best naive", "mean MAE", "best naive MAE"


def leaderboard_row(version: ModelVersion, scores: Scores, naive: Scores,
                    persistence: Scores, champion_scores: Scores | None, decision: str,
                    reason: str, group_steps: int, group_hours: int) -> dict:
    """One candidate as the UI's table shows it, numbers first (the reason is long): the
    decision, the skill against best naive (ratios below 1 win) on the mean, in each group
    of hours and at the last step, then the MAEs, the version and the reason."""
    row = {"family": version.family, "decision": decision,
           MEAN_RATIO: round(scores.mean / naive.mean, 3)}
    for i, (mine, theirs) in enumerate(zip(scores.groups(group_steps),
                                           naive.groups(group_steps))):
        row[f"{i * group_hours + 1}-{(i + 1) * group_hours} h / best naive"] = \
            round(mine / theirs, 3)
    row.update({
        f"+{len(scores.mae) * group_hours // group_steps} h / best naive":
            round(scores.last / naive.last, 3),
        MEAN_MAE: round(scores.mean, 3), NAIVE_MAE: round(naive.mean, 3),
        "champion MAE": round(champion_scores.mean, 3) if champion_scores else None,
        "persistence MAE": round(persistence.mean, 3),
        "version": version.version, "reason": reason})
    return row
