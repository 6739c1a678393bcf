"""Flow `ingest`: take the stations' new files (their drop folders, or one file) into the
database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State
from sqlalchemy.exc import OperationalError

from flows.network import (artifact_key, database_refusals, map_over_store, outcome,
                           shared_store)
from flows.settings import Settings, run_name, settings_from
from registry.dropfolder import files_to_read, ingest_and_archive
from registry.ingestion import IngestSummary, printable, quarantine_examples
from registry.store import Store


def busy(error: object) -> bool:
    """A database busy with another writer is worth a retry; one that refuses writes
    (read-only, full disk) refuses them the same way a second later."""
    return isinstance(error, OperationalError) and any(
        word in str(error.orig) for word in ("locked", "busy"))


def retry_when_busy(task, task_run, state) -> bool:
    return busy(state.result(raise_on_failure=False))


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10],
      retry_condition_fn=retry_when_busy, task_run_name="ingest {path.name}")
def ingest_one(store: Store, path: Path, chunk_rows: int, done: Path | None) -> IngestSummary:
    """Validate and store one file (then move it to `done`, if given, once all its rows are
    stored); bad rows go to quarantine, a file that is not the station's CSV is refused on
    its own (the others go on). A database that refuses the writes fails the file in one
    line (nothing of it is stored: one transaction a chunk); so does a file system error
    about this file, never costing the other files theirs."""
    try:
        return ingest_and_archive(store, path, chunk_rows, done)
    except OperationalError as exc:
        if busy(exc):
            raise  # retried
        return IngestSummary(printable(path), "", "failed",
                             message=f"the database refused: {exc.orig}")
    except OSError as exc:
        return IngestSummary(printable(path), "", "failed", message=f"{exc.strerror or exc}")


def ingest_source(store: Store, source: Path, chunk_rows: int, done: Path | None,
                  one: Callable[[Store, Path, int, Path | None], IngestSummary]
                  = ingest_and_archive) -> tuple[list[IngestSummary], list[Path]]:
    """Ingest every CSV file of `source` (a file or a folder) with `one`, moving those fully
    stored to `done` if given (and reading again those archived there that changed since):
    each file's summary, and the entries refused because they point outside the folder."""
    files, refused = files_to_read(store, source, done)
    return [one(store, f, chunk_rows, done) for f in files], refused


def describe(summary: IngestSummary) -> str:
    """One file's outcome in one line, as the run's log and the CLI say it."""
    s = summary
    if s.status in ("refused", "failed"):
        return f"{s.source}: {s.status}: {s.message}"
    moved = f"; moved to {s.archived_to}" if s.archived_to else ""
    if s.status == "skipped":
        return f"{s.source}: skipped: {s.message}{moved}"
    ignored = f"; ignored columns: {', '.join(s.extra_columns)}" if s.extra_columns else ""
    ignored += f"; {s.message}" if s.message else ""
    return (f"{s.source}: {s.status}, {s.rows_read} read, {s.rows_inserted} inserted, "
            f"{s.rows_present} already present, {s.rows_quarantined} quarantined; newest "
            f"{s.newest_observation}{ignored}{moved}")


def archive_warning(summaries: list[IngestSummary]) -> str | None:
    """One line for every stored file that could not be moved (None if none)."""
    stuck = [s for s in summaries if s.archive_problem]
    if not stuck:
        return None
    return (f"{len(stuck)} file(s) stored but left in place: {stuck[0].archive_problem}; "
            f"their rows are all stored, and the next run skips them by content")


def refusal(entry: Path) -> str:
    return f"{entry}: refused: it points outside the folder ({entry.resolve()})"


@task(cache_policy=NO_CACHE, task_run_name="ingest {station}")
@database_refusals
def ingest_station(station: str, settings: Settings, path: Path | None
                   ) -> list[dict] | State:
    """One station's new files (its drop folder, or `path`), each its own task; what was
    refused or quarantined is logged with the reason. A refused file fails the station's
    task, after its other files were stored (it stays failed while the file is there)."""
    logger = get_run_logger()
    mine = shared_store(settings, station)
    source = path or settings.drop_dir(station)
    if not path:
        source.mkdir(parents=True, exist_ok=True)
    summaries, refused = ingest_source(mine, source, settings.chunk_rows,
                                       None if path else settings.done_dir(station), ingest_one)
    logger.info("Found %d file(s) in %s", len(summaries), source)
    for entry in refused:
        logger.error(refusal(entry))
    if warning := archive_warning(summaries):
        logger.warning(warning)
    for s in summaries:
        if s.status in ("refused", "failed"):
            logger.error(describe(s))
            continue
        logger.info(describe(s))
        if s.rows_quarantined:
            logger.warning("%s: %d row(s) quarantined, e.g. %s (all of them: select "
                           "line_number, reason, raw from quarantined_rows where station = "
                           "'%s' and sha256 = '%s')", s.source, s.rows_quarantined,
                           "; ".join(f"line {n}: {why}" for n, why in
                                     quarantine_examples(mine, s.sha256)), station, s.sha256)
    rows = [summary_row(station, s) for s in summaries]
    create_table_artifact(key=artifact_key("ingest-summary", station),
                          table=rows or [{"files": 0}], description=f"Ingest of {source}")
    broken = [s for s in summaries if s.status == "failed"]
    if broken:
        return Failed(message=f"{broken[0].message}; {len(broken)} file(s) not stored, run "
                              "again once that is fixed", data=rows)
    bad = [s.source for s in summaries if s.status == "refused"] + [str(e) for e in refused]
    if bad:
        return Failed(message=f"refused {len(bad)} of {len(summaries) + len(refused)} file(s): "
                              f"{', '.join(bad)} (see ingest_runs.message)", data=rows)
    return rows


@flow(name="ingest", flow_run_name=run_name("ingest"))
def ingest(path: str | None = None, data_dir: str | None = None,
           database_url: str | None = None, station_schema: str | None = None,
           stations_file: str | None = None, station: str | None = None
           ) -> dict[str, list[dict]] | State:
    """Ingest every station's new files (each from its drop folder), or one station's, or a
    CSV file `path` of the one station selected; returns each station's file summaries."""
    settings = settings_from(data_dir, database_url, station_schema, stations_file)
    try:
        stations = settings.selected(station)
    except ValueError as unknown:
        return Failed(message=str(unknown))
    if path and len(stations) > 1:
        return Failed(message=f"which station's file is {path}? choose one of "
                              f"{', '.join(s.name for s in stations)}")
    states = map_over_store(ingest_station, settings, stations,
                            path=Path(path) if path else None)
    return outcome("ingest", states)


def summary_row(station: str, summary: IngestSummary) -> dict:
    """What matters first (station, file, outcome, counts, why), the checksum last, so a
    table in the UI shows it without scrolling."""
    row = {"station": station, **asdict(summary)}
    row["extra_columns"] = ", ".join(summary.extra_columns)
    newest = summary.newest_observation
    row["newest_observation"] = newest.isoformat() if newest else None
    row["file"] = Path(summary.source).name
    lead = ["station", "file", "status", "rows_read", "rows_inserted", "rows_present",
            "rows_quarantined", "message", "newest_observation"]
    return {k: row[k] for k in [*lead, *(k for k in row if k not in lead)]}
