"""Forecasts as a public SQL surface: the `forecasts` table, its views, and the run log.

Views are plain SQL over the tables so that any SQL client can read and score forecasts,
each row led by its station: `latest_forecast` (the rows of each station's newest issue),
`forecast_skill` (each forecast next to what was observed at its target time, next to
persistence and seasonal persistence from the same issue time, and next to the champion's
uncorrected forecast and best naive's that the self-correcting issue combined) and
`backtest_skill` (the same for backtests' forecasts, by backtest id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import (JSON, Connection, Index, String, Text, bindparam, func, inspect,
                        select, text)
from sqlalchemy.orm import Mapped, Session, mapped_column

from forecasting.models.naive import BestNaive, Persistence
from forecasting.scoring.correction import Verified
from forecasting.scoring.intervals import LEVELS, Misses
from forecasting.station.schema import TIMESTAMP_SQL_COLUMN
from registry.db import Base, UTCDateTime, int_pk, station_key, utc_time
from registry.tables import target_columns
from registry.observations import insert_ignore
from registry.versions import ModelVersion

PERSISTENCE = Persistence.name  # model_name of persistence forecasts; model_version is NULL
BEST_NAIVE = BestNaive.name  # the naive forecast written when there is no usable champion
BOUNDS = [f"{side}_{level}" for level in LEVELS for side in ("lower", "upper")]
NAIVE_BOUNDS = [f"naive_{bound}" for bound in BOUNDS]
VIEW_COLUMNS = {
    "latest_forecast": ["station", "issued_at", "target_time", "horizon_hours", "value",
                        "model_name", "model_version", "created_at", "out_of_sample", "target",
                        *BOUNDS],
    "forecast_skill": ["station", "issued_at", "target_time", "horizon_hours", "model_name",
                       "model_version", "forecast", "actual", "error", "abs_error",
                       "persistence_forecast", "persistence_abs_error",
                       "seasonal_persistence_forecast", "seasonal_persistence_abs_error",
                       "out_of_sample", "target", *BOUNDS, "champion_value",
                       "champion_abs_error", "naive_value", "naive_abs_error", "weight",
                       "interval_factors", *NAIVE_BOUNDS],
    "forecast_coverage": ["station", "horizon_hours", "level", "verified", "inside", "coverage"],
    "forecast_coverage_by_group": ["station", "first_hour", "last_hour", "level", "verified",
                                   "inside", "coverage", "below", "above"],
    "forecast_interval_skill": ["station", "first_hour", "last_hour", "level", "verified",
                                "interval_score", "naive_interval_score", "pinball_loss",
                                "naive_pinball_loss", "skill"],
}
VIEW_COLUMNS["backtest_skill"] = ["backtest_id", *VIEW_COLUMNS["forecast_skill"]]
VIEW_COLUMNS["backtest_coverage_by_group"] = ["backtest_id",
                                              *VIEW_COLUMNS["forecast_coverage_by_group"]]
VIEW_COLUMNS["backtest_interval_skill"] = ["backtest_id",
                                           *VIEW_COLUMNS["forecast_interval_skill"]]
GROUP_HOURS = 6  # the coverage views' horizon groups, as the gate's (1-6 h, 7-12 h, ...)


class ForecastColumns:
    """One forecast value, as `forecasts` and `backtest_forecasts` both hold it."""

    station: Mapped[station_key]
    issued_at: Mapped[utc_time]  # time of the last observation used
    target_time: Mapped[utc_time] = mapped_column(index=True)
    horizon_hours: Mapped[int]
    value: Mapped[float]
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[int | None]
    created_at: Mapped[utc_time]
    # True when the model's training and validation data ended at or before issued_at (naive
    # forecasts always); NULL on rows written before this column existed.
    out_of_sample: Mapped[bool | None]
    # The station's target column (`t_degc`); NULL on rows written before it was recorded.
    target: Mapped[str | None] = mapped_column(String(100))
    # Central prediction intervals (forecasting.scoring.intervals); NULL where not configured, for
    # a forecaster without calibration, and on rows written before they existed.
    lower_50: Mapped[float | None]
    upper_50: Mapped[float | None]
    lower_80: Mapped[float | None]
    upper_80: Mapped[float | None]
    lower_95: Mapped[float | None]
    upper_95: Mapped[float | None]
    # The self-correcting issue (forecasting.scoring.correction): value = naive_value +
    # weight * (champion_value - naive_value), the champion's uncorrected forecast and best
    # naive's at the issue time; NULL for a naive forecast and on rows from before.
    champion_value: Mapped[float | None]
    naive_value: Mapped[float | None]
    weight: Mapped[float | None]
    # The factors the bounds' offsets were issued with, tracked from the verified coverage
    # of the station's earlier intervals (forecasting.scoring.intervals.tracked_factors):
    # {"80": [lower, upper], ...}; NULL without intervals and on rows from before.
    interval_factors: Mapped[dict | None] = mapped_column(JSON)
    # The naive interval, the yardstick of the interval score: best naive's forecast plus the
    # quantiles of its own errors over the 28 days before the issue, from around its hour of
    # day, untracked; NULL where best naive had too few of those and on rows from before.
    naive_lower_50: Mapped[float | None]
    naive_upper_50: Mapped[float | None]
    naive_lower_80: Mapped[float | None]
    naive_upper_80: Mapped[float | None]
    naive_lower_95: Mapped[float | None]
    naive_upper_95: Mapped[float | None]


class ForecastRow(ForecastColumns, Base):
    """One forecast value; (station, issued_at, target_time, model_name, model_version) is
    unique, with a NULL model_version (naive) counted as one value, so re-runs add nothing.
    The key leads with (station, issued_at): "latest forecast of station S" is one seek."""

    __tablename__ = "forecasts"

    id: Mapped[int_pk]


Index("uq_forecasts_station_issue", ForecastRow.station, ForecastRow.issued_at,
      ForecastRow.target_time,
      ForecastRow.model_name, func.coalesce(ForecastRow.model_version, 0), unique=True)


class ForecastRunRow(Base):
    """Every attempt to issue a forecast, including refusals and their reasons."""

    __tablename__ = "forecast_runs"

    id: Mapped[int_pk]
    station: Mapped[station_key]
    as_of: Mapped[utc_time]  # the time the forecast was asked for
    issued_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))  # issued | refused
    model_name: Mapped[str | None] = mapped_column(String(100))
    model_version: Mapped[int | None]
    rows_written: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    triggered_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[utc_time]


@dataclass(frozen=True)
class ForecastRun:
    station: str
    as_of: datetime
    issued_at: datetime | None
    status: str
    model_name: str | None
    model_version: int | None
    rows_written: int
    message: str


def create_forecast_views(connection: Connection, rebuild: bool = False) -> None:
    """Create `latest_forecast`, `forecast_skill`, `backtest_skill` and `forecast_coverage`
    (per station, hour ahead and interval, the share of verified out-of-sample actuals
    inside the bounds), or recreate them all when a view's columns are not the current ones
    or `rebuild` (a station was added: the views name each station's target column). Views
    hold no data. Portable SQL but for the one-day shift; COALESCE makes the NULL naive
    version comparable."""
    ts = TIMESTAMP_SQL_COLUMN
    day_before = ("datetime(f.target_time, '-1 day')" if connection.dialect.name == "sqlite"
                  else "f.target_time - INTERVAL '1 day'")
    # Each forecast is scored on its own target column (`forecasts.target`); the columns
    # are validated SQL names, so they can stand in the views' text.
    targets = sorted(set(target_columns(connection).values())) or ["NULL"]

    def target_of(alias: str) -> str:
        cases = " ".join(f"WHEN '{t}' THEN {alias}.{t}" for t in targets)
        return f"(CASE f.target {cases} END)"

    actual, persisted, seasonal = target_of("o"), target_of("p"), target_of("s")
    bounds = ", ".join(f"f.{b}" for b in BOUNDS)
    naive_bounds = ", ".join(f"f.{b}" for b in NAIVE_BOUNDS)

    def skill(table: str, leading: str) -> str:
        return f"""
            SELECT {leading}f.station, f.issued_at, f.target_time, f.horizon_hours,
                   f.model_name, f.model_version, f.value AS forecast, {actual} AS actual,
                   f.value - {actual} AS error, ABS(f.value - {actual}) AS abs_error,
                   {persisted} AS persistence_forecast,
                   ABS({persisted} - {actual}) AS persistence_abs_error,
                   {seasonal} AS seasonal_persistence_forecast,
                   ABS({seasonal} - {actual}) AS seasonal_persistence_abs_error,
                   f.out_of_sample, f.target, {bounds}, f.champion_value,
                   ABS(f.champion_value - {actual}) AS champion_abs_error, f.naive_value,
                   ABS(f.naive_value - {actual}) AS naive_abs_error, f.weight,
                   f.interval_factors, {naive_bounds}
            FROM {table} f
            JOIN observations o ON o.station = f.station AND o.{ts} = f.target_time
            LEFT JOIN observations p ON p.station = f.station AND p.{ts} = f.issued_at
            LEFT JOIN observations s ON s.station = f.station AND s.{ts} = {day_before}"""

    def inside(level: int) -> str:
        """The `inside` count and the `coverage` share of the level's interval."""
        within = f"actual BETWEEN lower_{level} AND upper_{level}"
        return (f"SUM(CASE WHEN {within} THEN 1 ELSE 0 END) AS inside, "
                f"AVG(CASE WHEN {within} THEN 1.0 ELSE 0.0 END) AS coverage")

    def per_group(view: str, leading: str, measures, rows) -> str:
        """Per station, 6-hour group of hours ahead and level: the verified out-of-sample
        `rows(level)` and `measures(level)` over them."""
        first = f"((horizon_hours - 1) / {GROUP_HOURS}) * {GROUP_HOURS} + 1"
        return " UNION ALL ".join(f"""
            SELECT {leading}station, {first} AS first_hour,
                   {first} + {GROUP_HOURS - 1} AS last_hour, {level} AS level,
                   COUNT(*) AS verified, {measures(level)}
            FROM {view} WHERE {rows(level)} AND out_of_sample
            GROUP BY {leading}station, {first}""" for level in LEVELS)

    def coverage_by_group(view: str, leading: str) -> str:
        return per_group(view, leading, lambda level: f"""{inside(level)},
                   SUM(CASE WHEN actual < lower_{level} THEN 1 ELSE 0 END) AS below,
                   SUM(CASE WHEN actual > upper_{level} THEN 1 ELSE 0 END) AS above""",
                         lambda level: f"lower_{level} IS NOT NULL")

    def interval_score(level: int, prefix: str = "") -> str:
        """The interval (Winkler) score of the level's central interval: its width, plus
        2 / alpha times how far the observation fell outside (Gneiting & Raftery 2007)."""
        low, high = f"{prefix}lower_{level}", f"{prefix}upper_{level}"
        scale = 200 / (100 - level)
        return (f"({high} - {low} + {scale:g} * (CASE WHEN actual < {low} THEN {low} - actual "
                f"ELSE 0 END + CASE WHEN actual > {high} THEN actual - {high} ELSE 0 END))")

    def interval_skill(view: str, leading: str) -> str:
        # The pinball loss at the interval's two quantiles, averaged, is alpha / 4 times its
        # interval score: the same ratio against the naive interval's, in other units.
        def measures(level: int) -> str:
            mine, naive = interval_score(level), interval_score(level, "naive_")
            pinball = (100 - level) / 400
            return (f"AVG({mine}) AS interval_score, AVG({naive}) AS naive_interval_score, "
                    f"AVG({mine}) * {pinball:g} AS pinball_loss, "
                    f"AVG({naive}) * {pinball:g} AS naive_pinball_loss, "
                    f"AVG({mine}) / NULLIF(AVG({naive}), 0) AS skill")

        return per_group(view, leading, measures, lambda level: (
            f"lower_{level} IS NOT NULL AND naive_lower_{level} IS NOT NULL"))

    views = {
        # Each station's newest issue, one index seek per station; `station` is the station
        # table's key, so `where station = 'jena'` reads that one station alone.
        "latest_forecast": f"""
            SELECT st.name AS station, f.issued_at, f.target_time, f.horizon_hours, f.value,
                   f.model_name, f.model_version, f.created_at, f.out_of_sample, f.target,
                   {bounds}
            FROM station st
            JOIN forecasts newest ON newest.id = (
                SELECT g.id FROM forecasts g WHERE g.station = st.name
                ORDER BY g.issued_at DESC, g.created_at DESC, g.id DESC LIMIT 1)
            JOIN forecasts f ON f.station = newest.station AND f.issued_at = newest.issued_at
             AND f.model_name = newest.model_name
             AND COALESCE(f.model_version, 0) = COALESCE(newest.model_version, 0)""",
        "forecast_skill": skill("forecasts", ""),
        "backtest_skill": skill("backtest_forecasts", "f.backtest_id, "),
        "forecast_coverage": " UNION ALL ".join(f"""
            SELECT station, horizon_hours, {level} AS level, COUNT(*) AS verified,
                   {inside(level)}
            FROM forecast_skill WHERE lower_{level} IS NOT NULL AND out_of_sample
            GROUP BY station, horizon_hours""" for level in LEVELS),
        "forecast_coverage_by_group": coverage_by_group("forecast_skill", ""),
        "backtest_coverage_by_group": coverage_by_group("backtest_skill", "backtest_id, "),
        "forecast_interval_skill": interval_skill("forecast_skill", ""),
        "backtest_interval_skill": interval_skill("backtest_skill", "backtest_id, "),
    }
    inspector = inspect(connection)
    existing = set(inspector.get_view_names())
    current = all(name in existing and [c["name"] for c in inspector.get_columns(name)]
                  == VIEW_COLUMNS[name] for name in views)
    if current and not rebuild:
        return
    for name in reversed(views):  # dependants first
        if name in existing:
            connection.execute(text(f"DROP VIEW {name}"))
    for name, body in views.items():
        connection.execute(text(f"CREATE VIEW {name} AS {body}"))


def write_forecast(session: Session, *forecast, **named) -> int:
    """Insert one issue's rows (the arguments of `forecast_rows`); rows already there are
    kept. Returns how many were new."""
    return insert_ignore(session, ForecastRow.__table__, forecast_rows(*forecast, **named))


def forecast_rows(station: str, issued_at: datetime, target_times: list[datetime],
                  values: list[float], model_name: str, model_version: int | None,
                  out_of_sample: bool, target: str,
                  bounds: dict[int, tuple[list[float], list[float]]] | None = None,
                  parts: dict[str, list[float]] | None = None,
                  factors: dict[str, list[list[float]]] | None = None,
                  naive_bounds: dict[int, tuple[list[float], list[float]]] | None = None
                  ) -> list[dict]:
    """One issue's values as rows of `forecasts` (and of `backtest_forecasts`), with the
    (lower, upper) bounds of each interval level given and the factors their offsets were
    issued with (per level, a [lower, upper] pair per hour ahead), the naive interval's
    bounds (`naive_bounds`, as `bounds`), and the `parts` of a self-corrected issue
    (`champion_value`, `naive_value`, `weight`: a list each)."""
    now = datetime.now(UTC)
    intervals = [{f"{prefix}{side}_{level}": float(edge[i])
                  for prefix, given in (("", bounds), ("naive_", naive_bounds))
                  for level, pair in (given or {}).items()
                  for side, edge in zip(("lower", "upper"), pair)}
                 | {name: float(column[i]) for name, column in (parts or {}).items()}
                 | ({"interval_factors": {level: [round(float(f), 4) for f in pairs[i]]
                                         for level, pairs in factors.items()}}
                    if factors else {})
                 for i in range(len(values))]
    return [
        {"station": station, "issued_at": issued_at, "target_time": t, "value": float(v),
         "model_name": model_name, "model_version": model_version, "created_at": now,
         "out_of_sample": out_of_sample, "target": target,
         "horizon_hours": round((t - issued_at).total_seconds() / 3600), **interval}
        for t, v, interval in zip(target_times, values, intervals)
    ]


def record_run(session: Session, run: ForecastRun, triggered_by: str) -> None:
    session.add(ForecastRunRow(
        station=run.station, as_of=run.as_of, issued_at=run.issued_at, status=run.status,
        model_name=run.model_name, model_version=run.model_version,
        rows_written=run.rows_written, message=run.message,
        triggered_by=triggered_by, created_at=datetime.now(UTC)))


def list_runs(session: Session, station: str) -> list[ForecastRun]:
    rows = session.scalars(select(ForecastRunRow).where(ForecastRunRow.station == station)
                           .order_by(ForecastRunRow.id)).all()
    return [ForecastRun(r.station, r.as_of, r.issued_at, r.status, r.model_name, r.model_version,
                        r.rows_written, r.message) for r in rows]


def verified_residuals(session: Session, version: ModelVersion, at: datetime, station: str,
                       issues: int = 90, hours: frozenset[int] | None = None) -> pd.DataFrame:
    """The errors (actual − forecast) of the version's newest `issues` verified
    out-of-sample forecasts of `station` whose targets were observed by `at` (the network
    model forecasts several stations, each in its own units), of those issued from `hours`
    of the day (UTC) when given: one row per issue (naive UTC), a column per hour ahead."""
    query = text("SELECT issued_at, horizon_hours, actual - forecast AS residual "
                 "FROM forecast_skill WHERE model_name = :name AND model_version = :version "
                 "AND station = :station AND out_of_sample AND target_time <= :at").bindparams(
        bindparam("at", at, type_=UTCDateTime()), name=version.model_name,
        version=version.version, station=station)
    verified = pd.DataFrame(session.execute(query).all(),
                            columns=["issued_at", "horizon_hours", "residual"])
    horizons = range(1, version.params["horizon_hours"] + 1)
    residuals = verified.pivot_table(index="issued_at", columns="horizon_hours",
                                     values="residual").reindex(columns=horizons)
    residuals.index = pd.DatetimeIndex(pd.to_datetime(residuals.index, utc=True)
                                       .tz_localize(None))
    if hours is not None:
        residuals = residuals[residuals.index.hour.isin(sorted(hours))]
    return residuals.sort_index().iloc[-issues:]


def verified_issues(session: Session, station: str, at: datetime, days: float,
                    backtest_id: int | None = None) -> Verified:
    """The station's self-corrected issues of the `days` before `at` whose targets were
    observed by `at`, as the correction reads them (a backtest's own, given its id): what
    was known at `at`, so a backfill or a backtest uses exactly that."""
    view = "backtest_skill" if backtest_id is not None else "forecast_skill"
    query = text(
        f"SELECT issued_at, horizon_hours, champion_value, naive_value, actual FROM {view} "
        "WHERE station = :station AND champion_value IS NOT NULL AND target_time <= :at "
        "AND issued_at >= :since" + (" AND backtest_id = :backtest_id"
                                      if backtest_id is not None else "")).bindparams(
        bindparam("at", at, type_=UTCDateTime()),
        bindparam("since", at - timedelta(days=days), type_=UTCDateTime()), station=station,
        **({"backtest_id": backtest_id} if backtest_id is not None else {}))
    rows = pd.DataFrame(session.execute(query).all(), columns=[
        "issued_at", "horizon_hours", "champion_value", "naive_value", "actual"])
    horizons = range(1, int(rows.horizon_hours.max() if len(rows) else 0) + 1)
    wide = {name: rows.pivot_table(index="issued_at", columns="horizon_hours", values=name,
                                   dropna=False).reindex(columns=horizons)
            for name in ("champion_value", "naive_value", "actual")}
    issued = pd.to_datetime(wide["actual"].index, utc=True)
    ages = (pd.Timestamp(at) - issued) / pd.Timedelta(days=1)
    return Verified(np.asarray(ages, np.float64), wide["champion_value"].to_numpy(),
                    wide["naive_value"].to_numpy(), wide["actual"].to_numpy())


def interval_misses(session: Session, station: str, at: datetime, horizon: int,
                    backtest_id: int | None = None) -> Misses:
    """How every interval the station issued (a backtest's own, given its id) did, per
    level and hour ahead, counting only the targets observed by `at` and out of sample:
    the state the tracked interval factors are computed from, so a backfill or a backtest
    uses exactly what was known at `at`."""
    view = "backtest_skill" if backtest_id is not None else "forecast_skill"
    counts = ", ".join(
        f"COUNT(lower_{level}), "
        f"SUM(CASE WHEN actual < lower_{level} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN actual > upper_{level} THEN 1 ELSE 0 END)" for level in LEVELS)
    query = text(
        f"SELECT horizon_hours, {counts} FROM {view} WHERE station = :station "
        "AND target_time <= :at AND actual IS NOT NULL AND out_of_sample"
        + (" AND backtest_id = :backtest_id" if backtest_id is not None else "")
        + " GROUP BY horizon_hours").bindparams(
        bindparam("at", at, type_=UTCDateTime()), station=station,
        **({"backtest_id": backtest_id} if backtest_id is not None else {}))
    table = np.zeros((horizon, 3 * len(LEVELS)))
    for hours, *numbers in session.execute(query).all():
        if 1 <= hours <= horizon:
            table[hours - 1] = [n or 0 for n in numbers]
    parts = [{level: table[:, 3 * i + k] for i, level in enumerate(LEVELS)} for k in range(3)]
    return Misses(*parts)


VIEWS = tuple(VIEW_COLUMNS)
READABLE = (*VIEWS, "forecasts")  # the views, and every forecast issued


def read_view(session: Session, view: str, station: str | None = None,
              since: datetime | None = None, backtest_id: int | None = None,
              until: datetime | None = None) -> pd.DataFrame:
    """A forecast view (or the `forecasts` table) as a frame, optionally only one station's
    rows, issues since `since` and before `until` (and, for `backtest_skill`, one backtest):
    times naive UTC, plus a `model` label (`jena/t_degc_24h v3`, or `persistence`)."""
    if view not in READABLE:
        raise ValueError(f"unknown forecast view {view!r}; choose from {READABLE}")
    conditions = {"station = :station": station, "issued_at >= :since": since,
                  "issued_at < :until": until, "backtest_id = :backtest_id": backtest_id}
    where = " AND ".join(c for c, value in conditions.items() if value is not None)
    order = {"forecast_coverage": "level, horizon_hours"}.get(
        view, "level, first_hour" if "_by_group" in view or "interval_skill" in view
        else "issued_at, target_time")
    query = text(f"SELECT * FROM {view} {'WHERE ' + where if where else ''} ORDER BY {order}")
    for name, moment in (("since", since), ("until", until)):
        if moment is not None:
            query = query.bindparams(bindparam(name, moment, type_=UTCDateTime()))
    if backtest_id is not None:
        query = query.bindparams(backtest_id=backtest_id)
    if station is not None:
        query = query.bindparams(station=station)
    result = session.execute(query)
    frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    for name in ("issued_at", "target_time", "created_at"):  # stored as UTC
        if name in frame:
            frame[name] = pd.to_datetime(frame[name], utc=True).dt.tz_localize(None)
    if "model_name" in frame:
        frame["model"] = frame.model_name + frame.model_version.map(
            lambda v: f" v{int(v)}" if pd.notna(v) else "")
    return frame
