"""Moving the champion outside the gate: manual promotion and rollback (verified), demotion
by the skill monitor; every move recorded."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from forecasting.models.families import Forecaster
from registry.artifacts import ArtifactError, load_verified, verified_files
from registry.versions import (DEMOTED, ModelVersion, PromotionEvent, champion, champion_at,
                               get_version, previous_champion, record_event, replaced_by)


def verify(version: ModelVersion, root: Path) -> None:
    """Raise ArtifactError unless the version's files are in the store and match its sha256."""
    verified_files(version.artifact_path, version.artifact_sha256,
                   f"{version.model_name} v{version.version}", root)


def promote_version(session: Session, root: Path, model_name: str, version: int, reason: str,
                    triggered_by: str) -> PromotionEvent:
    """Make `version` the champion by hand (its artifact must verify)."""
    target = get_version(session, model_name, version)
    verify(target, root)
    current = champion(session, model_name)
    if current is not None and current.id == target.id:
        raise ValueError(f"{model_name} v{version} is already the champion")
    return record_event(session, model_name, "manual", reason, triggered_by, target,
                        {"candidate_mean": target.holdout_mean,
                         "candidate_last": target.holdout_last,
                         "baseline_mean": target.persistence_mean,
                         "baseline_last": target.persistence_last})


def rollback(session: Session, root: Path, model_name: str, reason: str,
             triggered_by: str) -> PromotionEvent:
    """Give the champion alias back to the version the current champion replaced."""
    previous = previous_champion(session, model_name)
    if previous is None:
        raise LookupError(f"{model_name} has no previous champion to roll back to")
    verify(previous, root)
    return record_event(session, model_name, "rollback", reason, triggered_by, previous,
                        {"candidate_mean": previous.holdout_mean,
                         "candidate_last": previous.holdout_last})


def demote(session: Session, model_name: str, reason: str, triggered_by: str,
           scores: dict[str, float | None], groups: list[dict]) -> PromotionEvent:
    """Take the champion alias away (the skill monitor found it losing to the naive
    forecasts): until a retrain promotes another, forecasts are the labelled best naive
    one. The event names the demoted version as the previous champion."""
    if champion(session, model_name) is None:
        raise LookupError(f"{model_name} has no champion to demote")
    return record_event(session, model_name, DEMOTED, reason, triggered_by, None, scores,
                        {"monitor": groups})


def load_champion(session: Session, root: Path, model_name: str, triggered_by: str,
                  at: datetime | None = None) -> tuple[ModelVersion, Forecaster] | None:
    """The champion's model (the champion at `at`, when given), verified. If its artifact is
    refused, this run uses the champion it replaced (and so on back), recording why in a
    `fallback` event; the alias stays where it is, so a repaired artifact is used again next
    run. None when no usable champion is left (or there was none at `at`)."""
    current = champion(session, model_name) if at is None else \
        champion_at(session, model_name, at)
    refusals, tried = [], set()
    while current is not None and current.id not in tried:
        tried.add(current.id)
        label = f"{model_name} v{current.version}"
        try:
            model = load_verified(current.artifact_path, current.artifact_sha256, label, root)
            if model.params.model_dump(mode="json") != current.params:
                raise ArtifactError(f"{label}: the artifact's parameters differ from those "
                                    "the registry recorded for it")
        except ArtifactError as refused:
            refusals.append(str(refused))
            current = replaced_by(session, current)
            continue
        if refusals:
            record_event(session, model_name, "fallback", f"{'; '.join(refusals)}; this run "
                         f"forecasts with v{current.version}", triggered_by, current)
        return current, model
    if refusals:
        record_event(session, model_name, "fallback", f"{'; '.join(refusals)}; no usable "
                     "champion before it, forecasting with the best naive forecast",
                     triggered_by)
    return None
