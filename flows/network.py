"""Running a flow's work over the stations: one mapped task per station, so each station's
failure is its own (the others go on) and the run's state names every station that failed."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Sequence

from prefect import Task, get_run_logger, unmapped
from prefect.states import Failed, State
from sqlalchemy.exc import OperationalError
from prefect.task_runners import TaskRunner

from flows.settings import Settings, task_runner
from forecasting.station.schema import StationSchema
from registry.store import Store, open_store


def map_stations(task: Task, stations: Sequence[StationSchema], on: TaskRunner,
                 **shared) -> dict[str, State]:
    """Run `task(station_name, **shared)` for every station on the runner `on`
    (`task_runner` with `parallel_stations` workers), and return each station's final
    state: one station's failure, or its worker's death, is that station's alone."""
    with on as runner:
        futures = runner.map(task, {"station": [s.name for s in stations],
                                    **{key: unmapped(value) for key, value in shared.items()}})
        for future in futures:
            future.wait()
        return {s.name: future.state for s, future in zip(stations, futures)}


def database_refusals(function: Callable) -> Callable:
    """A task whose database refuses (read-only file, full disk, server down) fails with
    that reason in one line, not a traceback: nothing stored was lost or half-written (each
    write is one transaction), so the cure is to fix the cause and run again."""
    @functools.wraps(function)
    def refusing(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except OperationalError as exc:
            message = (f"the database refused: {exc.orig}; nothing stored was lost or "
                       "half-written, run again once that is fixed")
            get_run_logger().error(message)
            return Failed(message=message)
    return refusing


def open_or_refuse(settings: Settings, stations: Sequence[StationSchema]) -> Store | State:
    """The store, or the reason it cannot be opened as a failed state (a station whose
    meaning changed, a database that refuses), logged in one line."""
    try:
        return open_store(settings.db_url, stations)
    except (ValueError, OperationalError) as exc:
        message = str(getattr(exc, "orig", None) or exc)
        get_run_logger().error("Cannot open the database: %s", message)
        return Failed(message=f"cannot open the database: {message}")


# This process's open stores, by database and stations, with how many runs hold each.
_OPEN: dict[tuple[str, tuple[str, ...]], list] = {}
_OPENING = threading.Lock()


def _store_key(settings: Settings) -> tuple[str, tuple[str, ...]]:
    return settings.db_url, tuple(s.name for s in settings.stations)


def shared_store(settings: Settings, station: str) -> Store:
    """The store seen from `station`: the one `map_over_store` opened for the run, or, on a
    Dask worker, one opened once per worker process for every station it is given."""
    key = _store_key(settings)
    with _OPENING:
        if key not in _OPEN:
            _OPEN[key] = [open_store(settings.db_url, settings.stations), 1]
        return _OPEN[key][0].of(station)


def map_over_store(task: Task, settings: Settings, stations: Sequence[StationSchema],
                   **shared) -> dict[str, State]:
    """`map_stations` for tasks that read the store with `shared_store` (opened once for
    all stations, shared by runs in one process) and take the settings beside their own
    parameters; every station fails with the reason when the store cannot be opened."""
    store = open_or_refuse(settings, settings.stations)
    if isinstance(store, State):
        return {s.name: store for s in stations}
    warn_unlisted(store)
    key = _store_key(settings)
    with _OPENING:
        if key in _OPEN:
            _OPEN[key][1] += 1
            store.close()
        else:
            _OPEN[key] = [store, 1]
    try:
        return map_stations(task, stations, task_runner(settings, settings.parallel_stations),
                            settings=settings, **shared)
    finally:
        with _OPENING:
            _OPEN[key][1] -= 1
            if not _OPEN[key][1]:
                _OPEN.pop(key)[0].close()


def unlisted_warning(names: list[str]) -> str:
    return (f"the database holds station(s) {', '.join(names)} that the configuration does "
            "not list (stations file removed or moved, or a station renamed?): their rows "
            "and models are kept but not served")


def warn_unlisted(store: Store) -> None:
    """Say so when the database holds stations the configuration no longer lists."""
    if names := store.unlisted():
        get_run_logger().warning(unlisted_warning(names))


def outcome(what: str, states: dict[str, State]) -> dict | State:
    """Every station's result by name, or a Failed state naming each station that failed
    and why (its own runs and logs have the details)."""
    failed = {name: _reason(state) for name, state in states.items()
              if not state.is_completed()}
    if not failed:
        return {name: state.result() for name, state in states.items()}
    logger = get_run_logger()
    for name, why in failed.items():
        logger.error("%s of station %s failed: %s", what, name, why)
    return Failed(message=f"{what} failed for {len(failed)} of {len(states)} station(s): "
                          + "; ".join(f"{name}: {why}" for name, why in failed.items()))


def _reason(state: State) -> str:
    raised = state.result(raise_on_failure=False)
    if isinstance(raised, BaseException) and str(raised):
        return str(raised)
    return state.message or state.type.value.lower()


def artifact_key(kind: str, station: str) -> str:
    """`forecast-plot` of station `Jena_2` -> `forecast-plot-jena-2` (keys are lower-case
    letters, digits and dashes)."""
    return f"{kind}-{re.sub(r'[^a-z0-9]+', '-', station.lower()).strip('-')}"
