"""What every command shares: one-line refusals, the store, the stations chosen, Prefect's
home and running a flow."""

from __future__ import annotations

import os
import signal
from contextvars import ContextVar
from pathlib import Path

import typer
from sqlalchemy.engine import make_url

from flows import sigterm
from flows.logs import drop_temporary_server_notices
from flows.settings import Settings


def local_prefect_api() -> str:
    """The API of the server `make serve` starts (on PREFECT_PORT, default 4200)."""
    return f"http://127.0.0.1:{os.environ.get('PREFECT_PORT') or 4200}/api"


DAMAGED_EXIT = 3  # the database is damaged or not sensorcast's (1 is `status`'s "stale")


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_flow(flow, **parameters):
    """Run a flow; a failed run exits non-zero with its message (refusals carry no traceback).
    Prefect's temporary API server too slow to start (a loaded machine) is one line too."""
    try:
        state = flow(**parameters, return_state=True)
    except RuntimeError as exc:
        if "ephemeral" not in str(exc).lower():
            raise
        fail(f"{exc}; the machine is too busy for Prefect's temporary server to start in "
             "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (180): retry, raise it, or "
             "start a server (make serve) so runs attach to it")
    if state.is_failed() or state.is_crashed():
        fail(state.message)
    return state.result()


def timestamp(text: str, option: str):
    import pandas as pd

    try:
        moment = pd.Timestamp(text)
    except ValueError as exc:
        fail(f"{option} {text!r} is not a timestamp (e.g. 2016-06-01T12:00): {exc}")
    return (moment.tz_localize("UTC") if moment.tzinfo is None else moment).to_pydatetime()


def writable(folder: Path, what: str) -> None:
    """Refuse, in one line, to start work that must write into `folder` when it cannot."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        fail(f"{what} {folder} is not writable ({exc.strerror or exc}); nothing was done. "
             "Point --data-dir (or PREFECT_HOME) at a folder this user can write")


def settings_store(settings: Settings, read_only: bool = False):
    """The store. A read-only command never creates or changes a database: a SQLite file is
    opened read-only (reading its write-ahead log, so what is committed is what it sees),
    and a missing or empty one is refused. Other commands first check that they can
    write."""
    from flows.network import unlisted_warning
    from registry.store import open_store

    url = settings.db_url
    opened_database.set(database_name(settings))
    parsed = make_url(url)
    if read_only and parsed.get_backend_name() == "sqlite" and not parsed.query.get("uri"):
        url = read_only_sqlite(Path(parsed.database))
    elif not read_only:
        writable(settings.data_dir, "the data directory")
    try:
        store = open_store(url, settings.stations, read_only=read_only)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    if names := store.unlisted():
        typer.echo(f"warning: {unlisted_warning(names)}", err=True)
    return store


# The database a command opened, for a refusal raised where the settings are not at hand.
opened_database: ContextVar[str] = ContextVar("opened_database", default="the database")


def database_name(settings: Settings) -> str:
    """The database, in words: a SQLite file's path, or a server URL without its password."""
    url = make_url(settings.db_url)
    if url.get_backend_name() == "sqlite":
        return str(url.database)
    return url.render_as_string(hide_password=True)


def read_only_sqlite(path: Path) -> str:
    """The URL that opens an existing SQLite file read-only, reading its write-ahead log; a
    missing or empty file is refused in one line (opening it would create a database).
    Where there is no log and none can be made (a folder no one may write), the file alone
    holds everything committed and is opened as immutable."""
    if not path.is_file():
        fail(f"no database at {path}: ingest data first (nothing was created)")
    if path.stat().st_size == 0:
        fail(f"{path} is empty, not a sensorcast database; nothing was written",
             DAMAGED_EXIT)
    wal = path.with_name(path.name + "-wal")
    frozen = not wal.exists() and not os.access(path.parent, os.W_OK)
    return (f"sqlite:///file:{path.resolve()}?mode=ro" + ("&immutable=1" if frozen else "")
            + "&uri=true")


def chosen_stations(settings: Settings, station: str | None, one: bool = False) -> tuple:
    """The stations a command works on: `--station`, or all (`one`: the only one)."""
    if one and station is None and len(settings.stations) > 1:
        fail(f"this command works on one station: add --station (one of "
             f"{', '.join(s.name for s in settings.stations)})")
    try:
        return settings.selected(station)
    except ValueError as exc:
        fail(str(exc))


def flow_settings(settings: Settings) -> dict:
    """The settings a flow run is given, as plain parameters (they show in the UI)."""
    return {"data_dir": str(settings.data_dir), "database_url": settings.database_url,
            "station_schema": as_str(settings.station_schema),
            "stations_file": as_str(settings.stations_file)}


def prefect_home(settings: Settings) -> None:
    """Keep Prefect's own state under the data directory unless the user set it. Runs go to
    the local server of `make serve` when one is up (they show in its UI, and no server is
    started per command); otherwise to an ephemeral server, given minutes rather than
    Prefect's 20 s to start on a loaded machine (set the variable to change it)."""
    writable(settings.data_dir, "the data directory")
    os.environ.setdefault("PREFECT_HOME", str((settings.data_dir / "prefect").resolve()))
    writable(Path(os.environ["PREFECT_HOME"]), "Prefect's home (PREFECT_HOME)")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    stop_orphaned_servers(os.environ["PREFECT_HOME"])
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    drop_temporary_server_notices()
    local = local_prefect_api()
    if "PREFECT_API_URL" not in os.environ and healthy(local):
        os.environ["PREFECT_API_URL"] = local
    if "PREFECT_API_URL" not in os.environ:
        detach_temporary_server()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    sigterm.watch()


def stop_on_sigterm(signum: int, _frame) -> None:
    """SIGTERM (a service manager stopping the command, `kill`): Prefect first records the
    run as crashed, then this ends the command in one line, through the normal exit (the
    temporary server is stopped, leases are given back). Finished steps are kept."""
    typer.echo("stopped (SIGTERM); what finished is stored: run the same command again to "
               "go on", err=True)
    raise SystemExit(128 + signum)


def detach_temporary_server() -> None:
    """Start Prefect's temporary API server in a session of its own: a SIGTERM to the
    command's process group then stops the command, which reports its run to a server
    still up and stops it on exit, within seconds, instead of retrying a dead server for
    minutes with tracebacks. One left behind by a SIGKILL is stopped by the next command
    (`stop_orphaned_servers`)."""
    import subprocess
    import sys

    import prefect
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    class Detached(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen:
            """Prefect 3.9's command for its temporary server, in a new session."""
            return subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--app-dir",
                 str(prefect.__module_path__.parent), "--factory",
                 "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port",
                 str(self.port), "--log-level", "error", "--lifespan", "on"],
                env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                     "PREFECT__SERVER_FINAL": "1",
                     **get_current_settings().to_environment_variables(exclude_unset=True)},
                start_new_session=True)

    Detached()  # Prefect's SubprocessASGIServer() returns this one (one per port)


def stop_orphaned_servers(prefect_home: str) -> None:
    """A CLI killed mid-run (SIGKILL) cannot stop the ephemeral Prefect server it started,
    which then runs on for ever (about 200 MB). The next CLI call stops those of this
    PREFECT_HOME whose parent is gone; `make serve`'s server is another command line."""
    import psutil

    for process in psutil.process_iter(["ppid", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if process.info["ppid"] != 1 or "uvicorn" not in command \
                or "prefect.server.api.server:create_app" not in command:
            continue
        try:
            if process.environ().get("PREFECT_HOME") == prefect_home:
                process.terminate()
        except psutil.Error:
            continue


def healthy(api_url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def as_str(path: Path | None) -> str | None:
    return str(path) if path else None


def station_view(settings: Settings, name: str, station: str):
    from registry.forecasts import read_view

    store = settings_store(settings)
    with store.sessions() as session:
        frame = read_view(session, name, station)
    store.close()
    return frame


def newest_observation(settings: Settings, station: str):
    from registry.observations import newest_time

    store = settings_store(settings).of(station)
    with store.sessions() as session:
        newest = newest_time(session, store.observations)
    store.close()
    return newest
