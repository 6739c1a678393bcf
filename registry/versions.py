"""The model registry: immutable numbered versions, a `champion` alias, an event log.

Nothing here is updated in place or deleted: a promotion moves the alias and appends an
event in one transaction. The public functions return frozen dataclasses, not ORM rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from registry.db import Base, int_pk, station_key, utc_time

CHAMPION = "champion"
ALIAS_MOVES = ("promoted", "manual", "rollback")  # decisions that move the alias
DEMOTED = "demoted"  # the skill monitor took the alias away: no champion until the next one


def station_of(model_name: str) -> str:
    """`jena/t_degc_24h` (and its backtests' `jena/t_degc_24h@backtest-3`) -> `jena`: a
    model name begins with its station, so the registry's keys need no other column."""
    return model_name.partition("/")[0]


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_name", "version"),)

    id: Mapped[int_pk]
    station: Mapped[station_key] = mapped_column(index=True)  # for SQL; see station_of
    model_name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int]
    family: Mapped[str] = mapped_column(String(50))
    params: Mapped[str] = mapped_column(Text)  # JSON
    train_start: Mapped[utc_time]
    train_end: Mapped[utc_time]
    rows: Mapped[int]
    holdout_windows: Mapped[int]
    holdout_mae: Mapped[str] = mapped_column(Text)  # JSON list, per horizon
    holdout_mean: Mapped[float]
    holdout_last: Mapped[float]
    persistence_mae: Mapped[str] = mapped_column(Text)
    persistence_mean: Mapped[float]
    persistence_last: Mapped[float]
    # Added with the best-naive gate; NULL on versions registered before it.
    best_naive_mae: Mapped[str | None] = mapped_column(Text)  # JSON list, per horizon
    best_naive_mean: Mapped[float | None]
    best_naive_last: Mapped[float | None]
    seasonal_mae: Mapped[str | None] = mapped_column(Text)  # seasonal persistence, per horizon
    # JSON: prediction interval offsets per level and hour ahead, from the backtest's errors
    # (forecasting.scoring.intervals); NULL on versions registered before intervals existed.
    intervals: Mapped[str | None] = mapped_column(Text)
    artifact_path: Mapped[str] = mapped_column(Text)
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    library_versions: Mapped[str] = mapped_column(Text)  # JSON
    created_at: Mapped[utc_time]


class ModelLockRow(Base):
    """One row per model name, updated first thing by every transaction that writes the
    model's versions: writers of one model take turns (SQLite's write lock, PostgreSQL's row
    lock), so two retrains can never take the same version number."""

    __tablename__ = "model_locks"

    model_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    taken_at: Mapped[utc_time]


class ModelAliasRow(Base):
    __tablename__ = "model_aliases"

    model_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    alias: Mapped[str] = mapped_column(String(50), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[utc_time]


class PromotionEventRow(Base):
    __tablename__ = "promotion_events"

    id: Mapped[int_pk]
    station: Mapped[station_key]
    model_name: Mapped[str] = mapped_column(String(100))
    candidate_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    previous_champion_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    candidate_mean: Mapped[float | None]
    candidate_last: Mapped[float | None]
    champion_mean: Mapped[float | None]
    champion_last: Mapped[float | None]
    baseline_mean: Mapped[float | None]  # persistence
    baseline_last: Mapped[float | None]
    best_naive_mean: Mapped[float | None]
    best_naive_last: Mapped[float | None]
    groups: Mapped[str | None] = mapped_column(Text)  # JSON: MAE per horizon group, each rival
    decision: Mapped[str] = mapped_column(String(20))  # rejected, DEMOTED or an ALIAS_MOVES
    reason: Mapped[str] = mapped_column(Text)
    triggered_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[utc_time]


@dataclass(frozen=True)
class ModelVersion:
    id: int
    model_name: str
    version: int
    family: str
    params: dict
    train_start: datetime
    train_end: datetime
    rows: int
    holdout_windows: int
    holdout_mae: tuple[float, ...]
    holdout_mean: float
    holdout_last: float
    persistence_mean: float
    persistence_last: float
    best_naive_mean: float | None
    best_naive_last: float | None
    artifact_path: str
    artifact_sha256: str
    created_at: datetime
    intervals: dict | None


@dataclass(frozen=True)
class PromotionEvent:
    id: int
    model_name: str
    candidate_version: int | None
    previous_champion_version: int | None
    decision: str
    reason: str
    triggered_by: str
    candidate_mean: float | None
    champion_mean: float | None
    baseline_mean: float | None
    best_naive_mean: float | None
    groups: dict | None
    created_at: datetime


@dataclass(frozen=True)
class NewVersion:
    """What training produced, before the registry numbers it."""

    model_name: str
    family: str
    params: dict
    train_start: datetime
    train_end: datetime
    rows: int
    holdout_windows: int
    holdout_mae: tuple[float, ...]
    persistence_mae: tuple[float, ...]
    best_naive_mae: tuple[float, ...]
    seasonal_mae: tuple[float, ...]
    library_versions: dict
    intervals: dict


def add_version(session: Session, new: NewVersion, version: int, artifact_path: str,
                artifact_sha256: str) -> ModelVersion:
    mae, naive = list(new.holdout_mae), list(new.persistence_mae)
    best = list(new.best_naive_mae)
    row = ModelVersionRow(
        station=station_of(new.model_name), model_name=new.model_name, version=version,
        family=new.family,
        params=json.dumps(new.params, sort_keys=True), train_start=new.train_start,
        train_end=new.train_end, rows=new.rows, holdout_windows=new.holdout_windows,
        holdout_mae=json.dumps(mae), holdout_mean=sum(mae) / len(mae), holdout_last=mae[-1],
        persistence_mae=json.dumps(naive), persistence_mean=sum(naive) / len(naive),
        persistence_last=naive[-1], best_naive_mae=json.dumps(best),
        best_naive_mean=sum(best) / len(best), best_naive_last=best[-1],
        seasonal_mae=json.dumps(list(new.seasonal_mae)), intervals=json.dumps(new.intervals),
        artifact_path=artifact_path,
        artifact_sha256=artifact_sha256,
        library_versions=json.dumps(new.library_versions, sort_keys=True), created_at=_now())
    session.add(row)
    session.flush()
    return _version(row)


def get_version(session: Session, model_name: str, version: int) -> ModelVersion:
    row = session.scalars(select(ModelVersionRow).where(
        ModelVersionRow.model_name == model_name, ModelVersionRow.version == version)).first()
    if row is None:
        raise LookupError(f"model {model_name!r} has no version {version}")
    return _version(row)


def list_versions(session: Session, model_name: str) -> list[ModelVersion]:
    rows = session.scalars(select(ModelVersionRow).where(
        ModelVersionRow.model_name == model_name).order_by(ModelVersionRow.version))
    return [_version(r) for r in rows]


def champion(session: Session, model_name: str) -> ModelVersion | None:
    alias = session.get(ModelAliasRow, (model_name, CHAMPION))
    return None if alias is None else _version(session.get(ModelVersionRow, alias.version_id))


def record_event(session: Session, model_name: str, decision: str, reason: str,
                 triggered_by: str, candidate: ModelVersion | None = None,
                 scores: dict[str, float | None] | None = None,
                 groups: dict | None = None) -> PromotionEvent:
    """Append a decision; when it is a promotion, rollback or manual promotion, also move
    the `champion` alias to the candidate, and when it is a demotion remove the alias (same
    transaction as the caller's)."""
    previous = champion(session, model_name)
    scores = scores or {}
    row = PromotionEventRow(
        station=station_of(model_name), model_name=model_name,
        candidate_version_id=candidate.id if candidate else None,
        previous_champion_id=previous.id if previous else None,
        candidate_mean=scores.get("candidate_mean"), candidate_last=scores.get("candidate_last"),
        champion_mean=scores.get("champion_mean"), champion_last=scores.get("champion_last"),
        baseline_mean=scores.get("baseline_mean"), baseline_last=scores.get("baseline_last"),
        best_naive_mean=scores.get("best_naive_mean"),
        best_naive_last=scores.get("best_naive_last"),
        groups=json.dumps(groups) if groups is not None else None, decision=decision,
        reason=reason, triggered_by=triggered_by, created_at=_now())
    session.add(row)
    if decision in ALIAS_MOVES and candidate is not None:
        alias = session.get(ModelAliasRow, (model_name, CHAMPION))
        if alias is None:
            session.add(ModelAliasRow(model_name=model_name, alias=CHAMPION,
                                      version_id=candidate.id, updated_at=_now()))
        else:
            alias.version_id, alias.updated_at = candidate.id, _now()
    if decision == DEMOTED:
        session.delete(session.get(ModelAliasRow, (model_name, CHAMPION)))
    session.flush()
    return _event(session, row)


def list_events(session: Session, model_name: str) -> list[PromotionEvent]:
    rows = session.scalars(select(PromotionEventRow).where(
        PromotionEventRow.model_name == model_name).order_by(PromotionEventRow.id))
    return [_event(session, r) for r in rows]


def previous_champion(session: Session, model_name: str) -> ModelVersion | None:
    """The champion that the current champion replaced (None when there was none)."""
    current = champion(session, model_name)
    return None if current is None else replaced_by(session, current)


def champion_at(session: Session, model_name: str, moment: datetime) -> ModelVersion | None:
    """The champion at `moment`, from the append-only event log: the version of the last
    promotion, manual promotion or rollback recorded at or before it (None before any, and
    after a demotion until the next)."""
    made = session.scalars(select(PromotionEventRow).where(
        PromotionEventRow.model_name == model_name,
        (PromotionEventRow.decision.in_(ALIAS_MOVES)
         & PromotionEventRow.candidate_version_id.is_not(None))
        | (PromotionEventRow.decision == DEMOTED),
        PromotionEventRow.created_at <= moment,
    ).order_by(PromotionEventRow.created_at.desc(), PromotionEventRow.id.desc())).first()
    if made is None or made.decision == DEMOTED:
        return None
    return _version(session.get(ModelVersionRow, made.candidate_version_id))


def replaced_by(session: Session, version: ModelVersion) -> ModelVersion | None:
    """The champion that `version` replaced when it was last made champion."""
    made = session.scalars(select(PromotionEventRow).where(
        PromotionEventRow.model_name == version.model_name,
        PromotionEventRow.candidate_version_id == version.id,
        PromotionEventRow.decision.in_(ALIAS_MOVES),
    ).order_by(PromotionEventRow.id.desc())).first()
    if made is None or made.previous_champion_id is None:
        return None
    return _version(session.get(ModelVersionRow, made.previous_champion_id))


def _version(row: ModelVersionRow) -> ModelVersion:
    return ModelVersion(
        id=row.id, model_name=row.model_name, version=row.version, family=row.family,
        params=json.loads(row.params), train_start=row.train_start, train_end=row.train_end,
        rows=row.rows, holdout_windows=row.holdout_windows,
        holdout_mae=tuple(json.loads(row.holdout_mae)), holdout_mean=row.holdout_mean,
        holdout_last=row.holdout_last, persistence_mean=row.persistence_mean,
        persistence_last=row.persistence_last, best_naive_mean=row.best_naive_mean,
        best_naive_last=row.best_naive_last, artifact_path=row.artifact_path,
        artifact_sha256=row.artifact_sha256, created_at=row.created_at,
        intervals=json.loads(row.intervals) if row.intervals else None)


def _event(session: Session, row: PromotionEventRow) -> PromotionEvent:
    def number(version_id):
        return None if version_id is None else session.get(ModelVersionRow, version_id).version

    return PromotionEvent(
        id=row.id, model_name=row.model_name,
        candidate_version=number(row.candidate_version_id),
        previous_champion_version=number(row.previous_champion_id), decision=row.decision,
        reason=row.reason, triggered_by=row.triggered_by, candidate_mean=row.candidate_mean,
        champion_mean=row.champion_mean, baseline_mean=row.baseline_mean,
        best_naive_mean=row.best_naive_mean,
        groups=json.loads(row.groups) if row.groups else None, created_at=row.created_at)


def _now() -> datetime:
    return datetime.now(UTC)
