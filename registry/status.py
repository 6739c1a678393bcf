"""Where a station stands, from the system of record alone: its newest observation, its
champion and since when, its last forecast, the last run of each flow and the rows it
quarantined lately. `sensorcast status` prints it and judges what is stale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.forecasts import ForecastRunRow
from registry.observations import newest_time
from registry.tables import IngestRun, QuarantinedRow, StationRows
from registry.versions import (CHAMPION, ModelAliasRow, ModelVersionRow, PromotionEventRow,
                               champion)


RETRAIN_DECISIONS = ("promoted", "rejected")  # what a retrain records on each candidate


@dataclass(frozen=True)
class LastRun:
    at: datetime
    outcome: str  # an ingest's status, a retrain's decision, a forecast's status


@dataclass(frozen=True)
class StationStatus:
    station: str
    newest_observation: datetime | None
    champion: str | None  # "jena/t_degc_24h v4 (ridge)"
    champion_since: datetime | None
    # without a champion of its own: the network model's that forecasts it (cold start)
    network_champion: str | None
    last_forecast: datetime | None  # the newest time a forecast was issued for (its as-of)
    last_forecast_by: str | None
    last_runs: dict[str, LastRun]  # "ingest", "retrain", "forecast"
    quarantined_last_day: int


def station_status(session: Session, observations: StationRows, station: str, model_name: str,
                   now: datetime, network_model: str | None = None) -> StationStatus:
    current = champion(session, model_name)
    network = None if current or network_model is None else champion(session, network_model)
    alias = session.get(ModelAliasRow, (model_name, CHAMPION)) if current else None
    issued = session.scalars(
        select(ForecastRunRow).where(ForecastRunRow.station == station,
                                     ForecastRunRow.status == "issued")
        .order_by(ForecastRunRow.issued_at.desc(), ForecastRunRow.id.desc()).limit(1)).first()
    runs = {}
    ingest = session.scalars(select(IngestRun).where(IngestRun.station == station)
                             .order_by(IngestRun.id.desc()).limit(1)).first()
    if ingest:
        runs["ingest"] = LastRun(ingest.started_at, ingest.status)
    event = session.scalars(
        select(PromotionEventRow).where(PromotionEventRow.model_name == model_name,
                                        PromotionEventRow.decision.in_(RETRAIN_DECISIONS))
        .order_by(PromotionEventRow.id.desc()).limit(1)).first()
    if event:
        runs["retrain"] = LastRun(event.created_at, retrain_outcome(session, event))
    forecast = session.scalars(
        select(ForecastRunRow).where(ForecastRunRow.station == station)
        .order_by(ForecastRunRow.id.desc()).limit(1)).first()
    if forecast:
        runs["forecast"] = LastRun(forecast.created_at, forecast.status)
    quarantined = session.scalar(
        select(func.count()).select_from(QuarantinedRow)
        .join(IngestRun, IngestRun.id == QuarantinedRow.run_id)
        .where(QuarantinedRow.station == station,
               IngestRun.started_at >= now - timedelta(days=1)))
    by = None
    if issued:
        by = issued.model_name + (f" v{issued.model_version}" if issued.model_version else "")
    return StationStatus(
        station, newest_time(session, observations, until=now),
        f"{model_name} v{current.version} ({current.family})" if current else None,
        alias.updated_at if alias else None,
        f"{network_model} v{network.version} ({network.family})" if network else None,
        issued.issued_at if issued else None, by, runs, int(quarantined or 0))


def retrain_outcome(session: Session, newest: PromotionEventRow) -> str:
    """What the retrain that recorded `newest` decided: `promoted <family> v<n>` when it
    promoted any of its candidates (their versions share its cut-off and its minute), else
    the newest decision."""
    cutoff = session.scalar(select(ModelVersionRow.train_end).where(
        ModelVersionRow.id == newest.candidate_version_id))
    promoted = session.execute(
        select(ModelVersionRow.family, ModelVersionRow.version)
        .join(PromotionEventRow, PromotionEventRow.candidate_version_id == ModelVersionRow.id)
        .where(PromotionEventRow.model_name == newest.model_name,
               PromotionEventRow.decision == "promoted",
               PromotionEventRow.created_at >= newest.created_at - timedelta(minutes=1),
               ModelVersionRow.train_end == cutoff)
        .order_by(PromotionEventRow.id.desc()).limit(1)).first()
    return f"promoted {promoted[0]} v{promoted[1]}" if promoted else newest.decision


def stale_reasons(status: StationStatus, max_data_age: timedelta, max_forecast_age: timedelta,
                  now: datetime) -> list[str]:
    """Why the station needs a look, in words; none when its data and forecast are current."""
    reasons = []
    if status.newest_observation is None:
        reasons.append("no observation stored")
    elif now - status.newest_observation > max_data_age:
        reasons.append(f"newest observation {age(now - status.newest_observation)} old "
                       f"(a forecast refuses data older than {age(max_data_age)})")
    if status.last_forecast is None:
        reasons.append("no forecast issued")
    elif now - status.last_forecast > max_forecast_age:
        reasons.append(f"newest forecast is as of {age(now - status.last_forecast)} ago "
                       f"(more than {age(max_forecast_age)})")
    return reasons


def age(span: timedelta) -> str:
    """A duration the way a person says it: 12 min, 5.5 h, 3.2 days."""
    minutes = span.total_seconds() / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h" if minutes < 48 * 60 else f"{minutes / 1440:.1f} days"
