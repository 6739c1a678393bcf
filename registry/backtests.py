"""Backtests: operations replayed over a past period, kept apart from live state.

A backtest has its own rows here (`backtests`, `backtest_steps`, `backtest_forecasts`, the
`backtest_skill` view); its models are registered under a model name of their own
(`jena/t_degc_24h@backtest-3`), so the live champion and live `forecasts` never move. Each step
(a retrain, or a forecast) is recorded as done in the transaction that writes its
results, so an interrupted backtest resumes exactly where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from registry.db import Base, UTCDateTime, int_pk, station_key, utc_time
from registry.forecasts import ForecastColumns, forecast_rows
from registry.observations import insert_ignore
from registry.versions import station_of

RETRAIN, FORECAST = "retrain", "forecast"
DAILY = timedelta(days=1)


class BacktestRow(Base):
    __tablename__ = "backtests"

    id: Mapped[int_pk]
    station: Mapped[station_key]
    model_name: Mapped[str] = mapped_column(String(100))  # the live model it replays
    start: Mapped[utc_time]
    end: Mapped[utc_time]
    retrain_every_hours: Mapped[float]
    issue_every_hours: Mapped[float | None]  # NULL: daily (backtests from before it existed)
    params: Mapped[str] = mapped_column(Text)  # JSON: the ForecastParams it trains with
    status: Mapped[str] = mapped_column(String(16))  # running | complete
    created_at: Mapped[utc_time]
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BacktestStepRow(Base):
    """A finished step; written in the same transaction as the step's results."""

    __tablename__ = "backtest_steps"
    __table_args__ = (UniqueConstraint("backtest_id", "kind", "at"),)

    id: Mapped[int_pk]
    backtest_id: Mapped[int] = mapped_column(ForeignKey("backtests.id"))
    kind: Mapped[str] = mapped_column(String(16))  # retrain | forecast
    at: Mapped[utc_time]
    outcome: Mapped[str] = mapped_column(Text)
    finished_at: Mapped[utc_time]


class BacktestForecastRow(ForecastColumns, Base):
    """A backtest's forecast value: the columns of `forecasts`, plus the backtest id."""

    __tablename__ = "backtest_forecasts"

    id: Mapped[int_pk]
    backtest_id: Mapped[int] = mapped_column(ForeignKey("backtests.id"))


Index("uq_backtest_forecasts_issue", BacktestForecastRow.backtest_id,
      BacktestForecastRow.issued_at, BacktestForecastRow.target_time,
      BacktestForecastRow.model_name, func.coalesce(BacktestForecastRow.model_version, 0),
      unique=True)


@dataclass(frozen=True)
class Step:
    kind: str  # RETRAIN or FORECAST
    at: datetime


@dataclass(frozen=True)
class BacktestRun:
    id: int
    model_name: str  # the name its own models are registered under
    start: datetime
    end: datetime
    retrain_every: timedelta
    status: str
    done: frozenset[Step]


MAX_STEPS = 20_000  # 50 years of daily forecasts and weekly retrains


def plan(start: datetime, end: datetime, retrain_every: timedelta,
         issue_every: timedelta = DAILY) -> list[Step]:
    """What the scheduler would have run from `start` to `end`: a retrain at `start` and
    every `retrain_every` after, and a forecast at `start` and every `issue_every` after
    (daily: at `start`'s time of day), each retrain before the forecast of the same moment."""
    if end < start:
        raise ValueError(f"the backtest ends ({end:%Y-%m-%d %H:%M}) before it starts "
                         f"({start:%Y-%m-%d %H:%M})")
    for name, every in (("retrain_every", retrain_every), ("issue_every", issue_every)):
        if every <= timedelta(0):
            raise ValueError(f"{name} must be positive, not {every}")
    steps = (end - start) // issue_every + (end - start) // retrain_every + 2
    if steps > MAX_STEPS:
        raise ValueError(f"the backtest would plan {steps:,} steps (a retrain every "
                         f"{retrain_every} and a forecast every {issue_every} from "
                         f"{start:%Y-%m-%d} to {end:%Y-%m-%d}); at most {MAX_STEPS:,}: "
                         "shorten it, or retrain or issue less often")
    moments = {Step(FORECAST, start + k * issue_every)
               for k in range((end - start) // issue_every + 1)}
    moments |= {Step(RETRAIN, start + k * retrain_every)
                for k in range((end - start) // retrain_every + 1)}
    return sorted(moments, key=lambda s: (s.at, s.kind != RETRAIN))


def backtest_model_name(model_name: str, backtest_id: int) -> str:
    return f"{model_name}@backtest-{backtest_id}"


def start_or_resume(session: Session, model_name: str, start: datetime, end: datetime,
                    retrain_every: timedelta, params: dict,
                    issue_every: timedelta = DAILY) -> BacktestRun:
    """The unfinished backtest of exactly this specification (to resume it), else a new one.
    A finished one is never reopened: asking again starts a fresh backtest."""
    row = _newest(session, model_name, start, end, retrain_every, params, issue_every)
    if row is None or row.status != "running":
        row = BacktestRow(station=station_of(model_name), model_name=model_name,
                          start=start, end=end,
                          retrain_every_hours=retrain_every / timedelta(hours=1),
                          issue_every_hours=issue_every / timedelta(hours=1),
                          params=json.dumps(params, sort_keys=True), status="running",
                          created_at=datetime.now(UTC))
        session.add(row)
        session.flush()
    return _run(session, row)


def progress(session: Session, model_name: str, start: datetime, end: datetime,
             retrain_every: timedelta, params: dict, issue_every: timedelta = DAILY) -> int:
    """Steps done by the newest backtest of this specification (0 before it starts)."""
    row = _newest(session, model_name, start, end, retrain_every, params, issue_every)
    return 0 if row is None else steps_done(session, row.id)


def _newest(session: Session, model_name: str, start: datetime, end: datetime,
            retrain_every: timedelta, params: dict, issue_every: timedelta
            ) -> BacktestRow | None:
    return session.scalars(select(BacktestRow).where(
        BacktestRow.model_name == model_name, BacktestRow.start == start,
        BacktestRow.end == end,
        BacktestRow.retrain_every_hours == retrain_every / timedelta(hours=1),
        func.coalesce(BacktestRow.issue_every_hours, DAILY / timedelta(hours=1))
        == issue_every / timedelta(hours=1),
        BacktestRow.params == json.dumps(params, sort_keys=True),
    ).order_by(BacktestRow.id.desc())).first()


def finish_step(session: Session, backtest_id: int, step: Step, outcome: str) -> None:
    """Record `step` as done (in the caller's transaction, beside its results)."""
    session.add(BacktestStepRow(backtest_id=backtest_id, kind=step.kind, at=step.at,
                                outcome=outcome, finished_at=datetime.now(UTC)))


def finish(session: Session, backtest_id: int) -> None:
    row = session.get(BacktestRow, backtest_id)
    row.status, row.finished_at = "complete", datetime.now(UTC)


def steps_done(session: Session, backtest_id: int) -> int:
    return session.scalar(select(func.count()).where(BacktestStepRow.backtest_id ==
                                                      backtest_id))


def write_backtest_forecast(session: Session, backtest_id: int, *forecast, **named) -> int:
    """Insert one issue's rows (the arguments of `forecast_rows`) under the backtest's id;
    rows already there are kept. Returns how many were new."""
    rows = [row | {"backtest_id": backtest_id} for row in forecast_rows(*forecast, **named)]
    return insert_ignore(session, BacktestForecastRow.__table__, rows)


def _run(session: Session, row: BacktestRow) -> BacktestRun:
    done = session.execute(select(BacktestStepRow.kind, BacktestStepRow.at).where(
        BacktestStepRow.backtest_id == row.id)).all()
    return BacktestRun(row.id, backtest_model_name(row.model_name, row.id), row.start,
                       row.end, timedelta(hours=row.retrain_every_hours), row.status,
                       frozenset(Step(kind, at) for kind, at in done))
