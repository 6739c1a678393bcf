"""Flow `retrain`: train every candidate family on the rolling window, register each,
promote the best only if it beats persistence and the champion on the same holdout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, timedelta

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.settings import run_name, settings_from
from forecasting.baselines import Persistence
from forecasting.config import ForecastParams, Settings
from forecasting.evaluation import Scores, score
from forecasting.promotion import decide_promotion
from forecasting.training import (NetworkForecaster, Split, library_versions, model_name,
                                  set_tensorflow_threads, split_windows, station_windows)
from forecasting.windows import NotEnoughData
from registry.artifacts import ArtifactError, load_verified, store_artifact
from registry.observations import newest_time, read_observations
from registry.store import Store, open_store
from registry.versions import (ModelVersion, NewVersion, add_version, champion, next_version,
                               record_event)


@dataclass(frozen=True)
class Trained:
    forecaster: NetworkForecaster
    scores: Scores


@task(cache_policy=NO_CACHE)
def load_split(store: Store,
               params: ForecastParams) -> tuple[Split, np.ndarray, int] | NotEnoughData:
    """The most recent `window_days` of observations, split train/validation/holdout; too
    little data is returned as the refusal (an expected outcome, not a crash to trace)."""
    with store.sessions() as session:
        newest = newest_time(session, store.observations)
        if newest is None:
            return NotEnoughData("no observations stored yet; ingest data before retraining")
        frame = read_observations(session, store.observations,
                                  start=newest - timedelta(days=params.window_days))
    windows, relative = station_windows(frame, store.station, params)
    try:
        split = split_windows(windows, params.validation_fraction, params.holdout_fraction)
    except NotEnoughData as refused:
        return refused
    return split, relative, len(frame)


@task(cache_policy=NO_CACHE, task_run_name="train {family}", tags=["training"])
def train_candidate(family: str, split: Split, relative: np.ndarray,
                    params: ForecastParams) -> Trained:
    """Fit one family with early stopping and score it on the holdout."""
    forecaster = NetworkForecaster(family, params, relative).fit(split.train, split.validation)
    return Trained(forecaster, score(forecaster, split.holdout))


@task(cache_policy=NO_CACHE)
def score_champion(store: Store, settings: Settings, name: str,
                   split: Split) -> tuple[ModelVersion | None, Scores | None, str]:
    """Re-score the current champion on this holdout (verified load)."""
    with store.sessions() as session:
        current = champion(session, name)
    if current is None:
        return None, None, ""
    label = f"{name} v{current.version}"
    try:
        model = load_verified(current.artifact_path, current.artifact_sha256, label,
                              settings.artifact_dir)
    except ArtifactError as exc:
        return current, None, str(exc)
    if model.columns != split.holdout.columns:
        return current, None, f"{label} was trained on other features {model.columns}"
    return current, score(model, split.holdout), ""


@task(cache_policy=NO_CACHE, task_run_name="register {trained.forecaster.family}")
def register(store: Store, settings: Settings, name: str, trained: Trained, split: Split,
             baseline: Scores, rows: int) -> ModelVersion:
    """Save the artifact in a fresh version directory and record the version."""
    holdout = split.holdout
    new = NewVersion(
        model_name=name, family=trained.forecaster.family,
        params=trained.forecaster.params.model_dump(mode="json"),
        train_start=split.train.times[0].to_pydatetime().replace(tzinfo=UTC),
        train_end=holdout.times[-1].to_pydatetime().replace(tzinfo=UTC),
        rows=rows, holdout_windows=len(holdout), holdout_mae=trained.scores.mae,
        persistence_mae=baseline.mae, library_versions=library_versions())
    with store.sessions.begin() as session:
        version = next_version(session, name)
        path, sha = store_artifact(trained.forecaster, settings.artifact_dir, name, version)
        return add_version(session, new, version, str(path), sha)


@flow(name="retrain", flow_run_name=run_name("retrain"))
def retrain(data_dir: str | None = None, database_url: str | None = None,
            station_schema: str | None = None, families: list[str] | None = None,
            epochs: int | None = None, triggered_by: str = "retrain flow") -> list[dict] | State:
    """Train, register and gate the candidates; returns the leaderboard rows. Too little
    data ends the run Failed with the reason, before anything is written."""
    logger = get_run_logger()
    settings = settings_from(data_dir, database_url, station_schema)
    overrides = {k: v for k, v in {"families": families, "epochs": epochs}.items() if v}
    params = ForecastParams(**{**settings.forecast.model_dump(), **overrides})
    if not set_tensorflow_threads(settings.tensorflow_threads):
        logger.warning("TensorFlow already runs in this process with another thread setting; "
                       "tensorflow_threads=%d applies from the next process",
                       settings.tensorflow_threads)
    store = open_store(settings.db_url, settings.station)
    name = model_name(settings.station, params)
    try:
        loaded = load_split(store, params)
        if isinstance(loaded, NotEnoughData):
            logger.error("Not retraining: %s", loaded)
            return Failed(message=f"not retraining: {loaded}")
        split, relative, rows = loaded
        logger.info("Training on %d rows: %d train, %d validation, %d holdout windows",
                    rows, len(split.train), len(split.validation), len(split.holdout))
        baseline = score(Persistence().fit(split.train), split.holdout)
        current, champion_scores, champion_problem = score_champion(store, settings, name, split)
        if champion_problem:
            logger.warning("Champion not comparable: %s", champion_problem)
        runner = ThreadPoolTaskRunner(max_workers=params.parallel_candidates)
        with runner:
            futures = [runner.submit(train_candidate, {"family": f, "split": split,
                                                       "relative": relative,
                                                       "params": params})
                       for f in params.families]
            trained = [f.result() for f in futures]
        versions = [register(store, settings, name, t, split, baseline, rows) for t in trained]
        leaderboard = decide(store, name, versions, trained, baseline, current,
                             champion_scores, champion_problem, params, triggered_by)
    finally:
        store.close()
    for row in leaderboard:
        logger.info("%s v%s: mean MAE %.3f (persistence %.3f) -> %s", row["family"],
                    row["version"], row["mean_mae"], row["persistence_mean_mae"],
                    row["decision"])
    create_table_artifact(key="retrain-leaderboard", table=leaderboard,
                          description=f"Candidates for {name} on {len(split.holdout)} "
                                      "holdout windows")
    return leaderboard


@task(cache_policy=NO_CACHE)
def decide(store: Store, name: str, versions: list[ModelVersion], trained: list[Trained],
           baseline: Scores, current: ModelVersion | None, champion_scores: Scores | None,
           champion_problem: str, params: ForecastParams, triggered_by: str) -> list[dict]:
    """Gate every candidate; promote the lowest mean MAE among those that pass."""
    order = sorted(range(len(trained)), key=lambda i: trained[i].scores.mean)
    gates = {i: decide_promotion(trained[i].scores, baseline, champion_scores,
                                 params.min_improvement) for i in order}
    winner = next((i for i in order if gates[i].promote), None)
    rows = []
    with store.sessions.begin() as session:
        for i in order:
            scores, version = trained[i].scores, versions[i]
            reason = gates[i].reason + (f"; {champion_problem}" if champion_problem else "")
            decision = "promoted" if i == winner else "rejected"
            if gates[i].promote and i != winner:
                reason = (f"passed the gate, but {versions[winner].family} has the lower "
                          f"mean MAE ({trained[winner].scores.mean:.3f} vs {scores.mean:.3f})")
            record_event(session, name, decision, reason, triggered_by, version, {
                "candidate_mean": scores.mean, "candidate_last": scores.last,
                "champion_mean": champion_scores.mean if champion_scores else None,
                "champion_last": champion_scores.last if champion_scores else None,
                "baseline_mean": baseline.mean, "baseline_last": baseline.last})
            rows.append(leaderboard_row(version, scores, baseline, champion_scores,
                                        decision, reason))
    return rows


def leaderboard_row(version: ModelVersion, scores: Scores, baseline: Scores,
                    champion_scores: Scores | None, decision: str, reason: str) -> dict:
    mae = np.asarray(scores.mae)
    thirds = np.array_split(mae, 3)
    return {
        "family": version.family, "version": version.version,
        "mae_first_third": round(float(thirds[0].mean()), 3),
        "mae_middle_third": round(float(thirds[1].mean()), 3),
        "mae_last_third": round(float(thirds[2].mean()), 3),
        "mean_mae": round(scores.mean, 3), "last_mae": round(scores.last, 3),
        "persistence_mean_mae": round(baseline.mean, 3),
        "persistence_last_mae": round(baseline.last, 3),
        "champion_mean_mae": round(champion_scores.mean, 3) if champion_scores else None,
        "decision": decision, "reason": reason,
    }

