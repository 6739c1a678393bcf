"""Flow `forecast`: each station's champion's next 24 hours into `forecasts`; a station
without a champion of its own (too new for its own models) gets the network model's cold
start when there is one, and the best naive forecast, labelled, when there is none or the
input window has holes; optionally backfilled for the days before."""

from __future__ import annotations

import base64
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

from flows.network import (artifact_key, database_refusals, map_over_store, outcome,
                           shared_store)
from flows.settings import Settings, as_utc, run_name, settings_from, utc_datetime, who_started
from forecasting.issue import Forecast, StaleData, forecast_as_of, input_span
from forecasting.config import model_name, network_model_name
from forecasting.features import build_features
from forecasting.models.pooled import station_scale
from forecasting.models.families import Forecaster
from forecasting.plotting import plot_forecast, plot_skill
from forecasting.scoring.intervals import verified_calibration
from forecasting.station.schema import StationSchema
from registry.champions import load_champion
from registry.forecasts import (BEST_NAIVE, ForecastRun, interval_misses, read_view,
                                record_run, verified_issues, verified_residuals,
                                write_forecast)
from registry.observations import newest_time, read_observations
from registry.store import Store
from registry.versions import ModelVersion, champion, champion_at

PLOT_FILE = "forecast.png"
SKILL_FILE = "skill.png"
SKILL_DAYS = 30
CORRECTION_DAYS = 70  # verified issues older than this weigh under 0.1 % (7-day half-life)


def load_model(store: Store, settings: Settings, name: str, triggered_by: str,
               at: datetime | None, moment: datetime | None = None
               ) -> tuple[ModelVersion | None, Forecaster | None]:
    """The verified champion (at `at`, when given); without one, and given the `moment`
    of the issue, the network model's champion as a new station's forecaster, scaled on
    the station's data up to `moment` (`cold_start`; a backtest replays the station's own
    models only); else (None, None) for the naive forecast."""
    with store.sessions.begin() as session:
        loaded = load_champion(session, settings.artifact_dir, name, triggered_by, at)
        network = None if loaded or moment is None else load_champion(
            session, settings.artifact_dir, network_model_name(store.station, settings.forecast),
            triggered_by, at)
    if loaded:
        return loaded
    return cold_start(store, settings, network, moment) if network else (None, None)


def cold_start(store: Store, settings: Settings, loaded: tuple[ModelVersion, Forecaster],
               at: datetime) -> tuple[ModelVersion | None, Forecaster | None]:
    """The network model as this station's forecaster: in the station's units (its scale
    from the history it has by `at`, at most the network model's `history_days`) and
    combined with best naive at the weights its replays of new stations supported."""
    version, network = loaded
    params = network.params
    with store.sessions() as session:
        frame = read_observations(session, store.observations, end=at, start=at - timedelta(
            days=settings.network_model.history_days))
    if frame.empty:
        return None, None  # the issue refuses: no observations
    features, _, _ = build_features(frame, store.station, params)
    target = store.station.target_channel.column
    scale = station_scale(features[target].to_numpy(), params.samples_per_day)
    return version, network.for_new_station(scale, tuple(features.columns),
                                            features.columns.get_loc(target))


# Why a past forecast may have no champion though one exists now, and what to run instead.
PAST_CHAMPION = (". The champion as of a time is the version promoted before that time (a "
                 "model promoted later was not in service then); `--model current` forecasts "
                 "with today's champion, `sensorcast backtest` replays retrains over the past")


def issue(store: Store, settings: Settings, at: datetime, version: ModelVersion | None,
          network: Forecaster | None, triggered_by: str) -> ForecastRun:
    """Forecast from observations at or before `at`; a refusal is recorded, not written.
    When the champion's input window has holes the rows are the naive forecast, labelled so."""
    try:
        forecast = forecast_at(store, settings, at, version, network)
    except StaleData as refused:
        label = (version.model_name, version.version) if version else (BEST_NAIVE, None)
        run = ForecastRun(store.station.name, at, None, "refused", *label, 0, str(refused))
    else:
        rows = issue_rows(forecast, version, store.station, settings.intervals)
        with store.sessions.begin() as session:
            written = write_forecast(session, **rows)
        run = ForecastRun(store.station.name, at, rows["issued_at"], "issued", rows["model_name"],
                          rows["model_version"], written,
                          issue_message(forecast, version, rows, written))
    with store.sessions.begin() as session:
        record_run(session, run, triggered_by)
    return run


def forecast_at(store: Store, settings: Settings, at: datetime, version: ModelVersion | None,
                network: Forecaster | None, backtest_id: int | None = None) -> Forecast:
    """The forecast from observations at or before `at` (raises StaleData when refused),
    with the intervals of the version as of `at`, self-corrected by the station's issues
    verified by `at` (a backtest's own, given its id): the one path of live forecasts,
    backfills and backtests."""
    # The champion's windows and features, under today's limit on the age of the data.
    params = (network.params if network else settings.forecast).model_copy(
        update={"max_data_age_minutes": settings.forecast.max_data_age_minutes})
    with store.sessions() as session:
        # Reach back to the newest observation even when it is old, so a refusal can say when.
        newest = newest_time(session, store.observations, until=at) or at
        frame = read_observations(session, store.observations,
                                  start=min(at - input_span(params), newest), end=at)
        # Where the product issues at several hours, only the issues from around this one.
        around = params.hours_around(at.hour) if params.issue_neighbourhoods else None
        calibration = version and calibration_as_of(session, version, at, store.station.name,
                                                    settings.interval_min_verified, around)
        verified = verified_issues(session, store.station.name, at, CORRECTION_DAYS,
                                   backtest_id) if network else None
        misses = interval_misses(session, store.station.name, at, params.horizon_hours,
                                 backtest_id)
    return forecast_as_of(frame, store.station, params, _naive(at), network, calibration,
                          verified, misses)


def calibration_as_of(session, version: ModelVersion, at: datetime, station: str,
                      min_verified: int, hours: frozenset[int] | None = None):
    """The version's interval offsets at `station` as of `at`: from its verified
    out-of-sample errors there (of the issues from `hours` of the day, when given) once
    every hour ahead has `min_verified` of them, else from its registration backtest (None
    for versions older than intervals, and for the network model, whose backtest is in no
    one station's units)."""
    return (verified_calibration(verified_residuals(session, version, at, station,
                                                    hours=hours), min_verified)
            or version.intervals or None)


def issue_rows(forecast: Forecast, version: ModelVersion | None, station: StationSchema,
               levels: tuple[int, ...]) -> dict:
    """The arguments of `write_forecast`: labelled by the model that made the values (the
    naive forecast's name when it stood in), out of sample when the model's training data
    ended at or before the issue time, with the bounds of the interval `levels` and of the
    naive intervals at those levels."""
    bounds = {level: forecast.bounds(level) for level in levels}
    naive_bounds = {level: forecast.naive_bounds(level) for level in levels}
    issued_at = utc_datetime(forecast.issued_at)
    label = (version.model_name, version.version) if forecast.by_model else \
        (forecast.naive, None)
    return {"station": station.name, "issued_at": issued_at,
            "target_times": [utc_datetime(t) for t in forecast.target_times],
            "values": forecast.values.tolist(), "model_name": label[0],
            "model_version": label[1],
            "out_of_sample": not forecast.by_model or version.train_end <= issued_at,
            "target": station.target_channel.column,
            "bounds": as_lists(bounds),
            "parts": forecast.parts(),
            "factors": {level: f.tolist() for level, f in (forecast.factors or {}).items()
                        if int(level) in bounds and bounds[int(level)]} or None,
            "naive_bounds": as_lists(naive_bounds)}


def as_lists(bounds: dict) -> dict[int, tuple[list[float], list[float]]]:
    """Each level's (lower, upper) arrays as lists, leaving out the levels without them."""
    return {level: (pair[0].tolist(), pair[1].tolist()) for level, pair in bounds.items()
            if pair}


def issue_message(forecast: Forecast, version: ModelVersion | None, rows: dict,
                  written: int) -> str:
    in_sample = "" if rows["out_of_sample"] else (
        f"in sample: v{version.version} was trained on data up to "
        f"{version.train_end:%Y-%m-%d %H:%M} UTC")
    return "; ".join(m for m in (forecast.note, in_sample,
                                 "" if written else "already in the database") if m)


def draw(store: Store, settings: Settings, days: int = 7) -> tuple[Path | None, Path]:
    """PNGs of the station's latest forecast against recent observations and past
    forecasts, and of its skill over the last 30 days."""
    folder = plot_dir(settings, store.station.name)
    return (render_plot(store, folder / PLOT_FILE, days),
            render_skill_plot(store, folder / SKILL_FILE, SKILL_DAYS))


def plot_dir(settings: Settings, station: str) -> Path:
    """Where a station's plots go: the plot folder itself for a single station (as before
    stations were keys), else a folder per station."""
    return settings.plot_dir if len(settings.stations) == 1 else settings.plot_dir / station


def render_skill_plot(store: Store, path: Path, days: int) -> Path:
    """MAE by horizon of the forecasts issued in the last `days` (before the newest issue)
    and verified since, against persistence and seasonal persistence."""
    mine = store.station.name
    with store.sessions() as session:
        latest = read_view(session, "latest_forecast", mine)
        since = utc_datetime(latest.issued_at.iloc[0]) - timedelta(days=days) \
            if not latest.empty else None
        skill = read_view(session, "forecast_skill", mine, since=since)
    target = store.station.target_channel
    return plot_skill(skill, path, f"{target.source} at {store.station.name}: skill of the "
                                   f"forecasts of the last {days} days", target.unit)


def render_plot(store: Store, path: Path, days: int) -> Path | None:
    """Read what the plot shows and draw it; None when there is no forecast yet."""
    mine = store.station.name
    with store.sessions() as session:
        latest = read_view(session, "latest_forecast", mine)
        if latest.empty:
            return None
        since = utc_datetime(latest.issued_at.iloc[0]) - timedelta(days=days)
        observed = read_observations(session, store.observations, start=since)
        skill = read_view(session, "forecast_skill", mine, since=since - timedelta(days=30))
    target = store.station.target_channel
    return plot_forecast(observed[target.column], latest, skill, path,
                         f"{target.source} at {store.station.name}", target.unit)


@task(cache_policy=NO_CACHE, task_run_name="forecast {station}")
@database_refusals
def forecast_station(station: str, settings: Settings, end: datetime,
                     days: int, model: str, triggered_by: str) -> list[dict] | State:
    """One station's forecast as of `end` and the `days` before it; fails, with the reason
    and no traceback, when any of them was refused."""
    logger = get_run_logger()
    mine = shared_store(settings, station)
    name = model_name(mine.station, settings.forecast)
    loaded: dict[int | None, tuple] = {}
    runs = []
    for moment in (end - timedelta(days=k) for k in range(days, -1, -1)):
        with mine.sessions() as session:
            wanted = champion(session, name) if model == "current" else \
                champion_at(session, name, moment)
        key = wanted and wanted.id
        if key not in loaded:
            loaded[key] = load_model(
                mine, settings, name, triggered_by, None if model == "current" else moment,
                moment)
            if loaded[key][0] is not None and loaded[key][0].model_name != name:
                logger.info("%s has no champion of its own as of %s: the network model %s "
                            "v%d forecasts it (cold start)", station,
                            f"{moment:%Y-%m-%d %H:%M}", loaded[key][0].model_name,
                            loaded[key][0].version)
            if loaded[key][0] is None:
                logger.warning("No usable champion for %s as of %s: writing the best naive "
                               "forecast, labelled model_name='%s'%s", name,
                               f"{moment:%Y-%m-%d %H:%M}", BEST_NAIVE,
                               "" if model == "current" else PAST_CHAMPION)
        runs.append(issue(mine, settings, moment, *loaded[key], triggered_by))
    plot, skill_plot = draw(mine, settings)
    with mine.sessions() as session:
        latest = read_view(session, "latest_forecast", station)
    for run in runs:
        if run.status == "refused":
            logger.error("Refused the forecast of %s as of %s: %s", station,
                         f"{run.as_of:%Y-%m-%d %H:%M}", run.message)
        else:
            logger.info("Forecast of %s issued at %s by %s%s: %d new rows%s", station,
                        run.issued_at, run.model_name,
                        f" v{run.model_version}" if run.model_version else "",
                        run.rows_written, f" ({run.message})" if run.message else "")
    if not latest.empty:
        create_table_artifact(
            key=artifact_key("forecast", station),
            description=f"Latest forecast of {name}; plot: {plot}",
            table=[forecast_row(r, settings.intervals) for r in latest.itertuples()])
    for kind, picture in (("forecast-plot", plot), ("skill-plot", skill_plot)):
        if picture:  # the picture itself, inline: the Prefect UI shows it without a server
            image = base64.b64encode(picture.read_bytes()).decode()
            create_markdown_artifact(key=artifact_key(kind, station),
                                     description=f"Saved as {picture}",
                                     markdown=f"![{kind} of {name}](data:image/png;base64,"
                                              f"{image})")
    refused = [r for r in runs if r.status == "refused"]
    if refused:
        return Failed(message=f"refused {len(refused)} of {len(runs)} forecast(s); "
                              f"last: {refused[-1].message}")
    return [asdict(r) for r in runs]


def forecast_row(row, levels: tuple[int, ...]) -> dict:
    """One hour of the latest forecast as the UI's table shows it: its time (UTC), the
    value and each interval's bounds, then the model."""
    shown = {"target time (UTC)": f"{row.target_time:%Y-%m-%d %H:%M}",
             "hours ahead": row.horizon_hours, "value": round(row.value, 2)}
    for level in levels:
        low, high = getattr(row, f"lower_{level}"), getattr(row, f"upper_{level}")
        shown[f"{level} % interval"] = (f"{low:.2f} .. {high:.2f}" if pd.notna(low)
                                        else "not calibrated")
    return {**shown, "model": row.model_name, "version": row.model_version}


@flow(name="forecast", flow_run_name=run_name("forecast"))
def forecast(data_dir: str | None = None, database_url: str | None = None,
             station_schema: str | None = None, stations_file: str | None = None,
             station: str | None = None, at: datetime | None = None, days: int = 0,
             model: str = "as_of", triggered_by: str | None = None
             ) -> dict[str, list[dict]] | State:
    """Issue every station's (or `station`'s) forecast as of `at` (default: now), and for
    each of the `days` days before it at the same time of day, each with the champion of
    its time (`model="as_of"`), so a backfill never uses a model that saw what it
    forecasts; `model="current"` uses today's champion and marks rows inside its training
    span in sample. A station with a refused forecast fails alone; the run names it."""
    triggered_by = who_started(triggered_by)
    settings = settings_from(data_dir, database_url, station_schema, stations_file)
    if model not in ("as_of", "current"):
        return Failed(message=f"model must be 'as_of' or 'current', not {model!r}")
    try:
        stations = settings.selected(station)
    except ValueError as unknown:
        return Failed(message=str(unknown))
    states = map_over_store(forecast_station, settings, stations,
                            end=as_utc(at) if at else datetime.now(UTC), days=days,
                            model=model, triggered_by=triggered_by)
    return outcome("forecast", states)


def _naive(moment: datetime) -> pd.Timestamp:
    return pd.Timestamp(moment.astimezone(UTC).replace(tzinfo=None))
