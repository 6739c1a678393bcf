"""Moving the champion by hand: manual promotion and rollback, both verified and recorded."""

from __future__ import annotations

from sqlalchemy.orm import Session

from registry.artifacts import ArtifactError, artifact_digest
from registry.versions import (ModelVersion, PromotionEvent, champion, get_version,
                               previous_champion, record_event)


def verify(version: ModelVersion) -> None:
    """Raise ArtifactError unless the version's files match the recorded sha256."""
    label = f"{version.model_name} v{version.version}"
    try:
        actual = artifact_digest(version.artifact_path)
    except OSError as exc:
        raise ArtifactError(f"{label}: artifact unreadable at {version.artifact_path}: "
                            f"{exc}") from exc
    if actual != version.artifact_sha256:
        raise ArtifactError(f"{label}: artifact at {version.artifact_path} changed since it "
                            "was registered (sha256 mismatch)")


def promote_version(session: Session, model_name: str, version: int, reason: str,
                    triggered_by: str) -> PromotionEvent:
    """Make `version` the champion by hand (its artifact must verify)."""
    target = get_version(session, model_name, version)
    verify(target)
    current = champion(session, model_name)
    if current is not None and current.id == target.id:
        raise ValueError(f"{model_name} v{version} is already the champion")
    return record_event(session, model_name, "manual", reason, triggered_by, target,
                        {"candidate_mean": target.holdout_mean,
                         "candidate_last": target.holdout_last,
                         "baseline_mean": target.persistence_mean,
                         "baseline_last": target.persistence_last})


def rollback(session: Session, model_name: str, reason: str,
             triggered_by: str) -> PromotionEvent:
    """Give the champion alias back to the version the current champion replaced."""
    previous = previous_champion(session, model_name)
    if previous is None:
        raise LookupError(f"{model_name} has no previous champion to roll back to")
    verify(previous)
    return record_event(session, model_name, "rollback", reason, triggered_by, previous,
                        {"candidate_mean": previous.holdout_mean,
                         "candidate_last": previous.holdout_last})
