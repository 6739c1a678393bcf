"""Moving the champion by hand: manual promotion and rollback, both verified and recorded."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from forecasting.evaluation import Forecaster
from registry.artifacts import ArtifactError, load_verified, verified_files
from registry.versions import (ModelVersion, PromotionEvent, champion, get_version,
                               previous_champion, record_event)


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


def load_champion(session: Session, root: Path, model_name: str,
                  triggered_by: str) -> tuple[ModelVersion, Forecaster] | None:
    """The champion's model, verified; if its artifact is refused, fall back to the champion
    before it (moving the alias and recording why). None when no usable champion is left."""
    refused_ids: set[int] = set()
    while (current := champion(session, model_name)) is not None:
        try:
            label = f"{model_name} v{current.version}"
            return current, load_verified(current.artifact_path, current.artifact_sha256,
                                          label, root)
        except ArtifactError as refused:
            refused_ids.add(current.id)
            previous = previous_champion(session, model_name)
            if previous is None or previous.id in refused_ids:
                record_event(session, model_name, "fallback", f"{refused}; no previous "
                             "champion, forecasting with the best naive forecast", triggered_by)
                return None
            record_event(session, model_name, "fallback", f"{refused}; falling back to "
                         f"v{previous.version}", triggered_by, previous)
    return None
