"""Ingesting station files: validated, idempotent, chunk-transactional, every row accounted for.

For each file: rows read = inserted + already present + quarantined. A crash loses at most
the chunk in flight (its transaction rolls back); re-running the file completes it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from forecasting.station.csvfile import Header, HeaderError, RawChunk, read_chunks
from forecasting.station.schema import StationSchema
from forecasting.station.validation import FUTURE_TOLERANCE, ValidChunk, same_rows, validate_chunk
from registry.observations import insert_ignore, insert_observations, stored_between
from registry.store import Store
from registry.tables import CellProblemRow, IngestRun, QuarantinedRow, StationRows

CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class IngestSummary:
    source: str
    sha256: str
    status: str  # complete | skipped | refused | failed (a run may also end `interrupted`)
    rows_read: int = 0
    rows_inserted: int = 0
    rows_present: int = 0
    rows_quarantined: int = 0
    extra_columns: tuple[str, ...] = ()
    newest_observation: datetime | None = None
    message: str = ""
    archived_to: str = ""  # where a drop-folder file went once all its rows were stored
    archive_problem: str = ""  # why a fully stored drop-folder file could not be moved

def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def printable(path: Path) -> str:
    """A file name as text that stores and prints safely: bytes that are not UTF-8 as `\\xNN`,
    control characters (a newline could forge a line of a report) as escapes."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def ingest_file(store: Store, path: Path, chunk_rows: int) -> IngestSummary:
    """Ingest one CSV; a file whose content was already fully ingested is skipped. A file that
    cannot be read as the station's CSV, or none of whose rows could be stored (its rows
    stay in quarantine), is refused on its own (status `refused`, with the reason, recorded
    once per content); database errors propagate."""
    sessions, mine, station = store.sessions, store.observations, store.station
    path, source = Path(path), printable(path)
    try:
        sha = file_sha256(path)
    except OSError as exc:
        return IngestSummary(source, "", "refused", message=f"cannot read it: {exc.strerror}")
    with sessions.begin() as session:
        done = session.scalars(select(IngestRun.id).where(
            IngestRun.station == station.name, IngestRun.sha256 == sha,
            IngestRun.status == "complete")).first()
        if done is not None:
            return IngestSummary(source, sha, "skipped", message=f"same content as run {done}")
        run = IngestRun(station=station.name, source=source, sha256=sha, status="running",
                        started_at=_now())
        session.add(run)
        session.flush()
        run_id = run.id
    try:
        header, chunks = read_chunks(path, station, chunk_rows)
        with sessions.begin() as session:
            session.get(IngestRun, run_id).extra_columns = ", ".join(header.extra)
        for valid in _validated_ahead(chunks, header, station):
            with sessions.begin() as session:
                _store_chunk(session, mine, run_id, source, sha, valid)
    except (HeaderError, OSError) as refused:
        message = str(refused).replace(str(path), source)
        return _refuse(sessions, run_id, sha, message)
    except Exception as exc:
        with sessions.begin() as session:
            run = session.get(IngestRun, run_id)
            run.status, run.message, run.finished_at = "failed", str(exc), _now()
        raise
    with sessions.begin() as session:
        run = session.get(IngestRun, run_id)
        if run.rows_read and not run.rows_inserted + run.rows_present:
            first = session.execute(select(QuarantinedRow.line_number, QuarantinedRow.reason)
                                    .where(QuarantinedRow.station == station.name,
                                           QuarantinedRow.sha256 == sha)
                                    .order_by(QuarantinedRow.line_number)).first()
            example = f"; e.g. line {first[0]}: {first[1]}" if first else ""
            useless = (f"none of its {run.rows_read} rows could be stored, all quarantined"
                       f"{example}; is this the station's file, and do its timestamp_format "
                       "and delimiter fit?")
        else:
            # A concurrent ingest of the same file may have marked this run interrupted.
            run.status, run.finished_at, run.message = "complete", _now(), ""
            _close_unfinished(session, run)
            return _summary(run, header.extra)
    return _refuse(sessions, run_id, sha, useless)


def _refuse(sessions, run_id: int, sha: str, message: str) -> IngestSummary:
    """Record the refusal; the same content refused for the same reason before keeps that
    record instead (a bad file in the drop folder is not recorded again every run)."""
    with sessions.begin() as session:
        run = session.get(IngestRun, run_id)
        before = session.scalars(select(IngestRun.id).where(
            IngestRun.station == run.station, IngestRun.sha256 == sha,
            IngestRun.status == "refused",
            IngestRun.message == message)).first()
        if before is not None:
            session.delete(run)
            return IngestSummary(run.source, sha, "refused", message=f"{message} (as in run "
                                 f"{before})")
        run.status, run.message, run.finished_at = "refused", message, _now()
        return _summary(run, ())


def _close_unfinished(session: Session, run: IngestRun) -> None:
    """Earlier runs of the same content still marked `running` died (killed, power cut):
    their committed chunks stand, and this run completed the rest. Say so on both."""
    unfinished = session.scalars(select(IngestRun).where(
        IngestRun.station == run.station, IngestRun.sha256 == run.sha256,
        IngestRun.status == "running", IngestRun.id != run.id
    )).all()
    for old in unfinished:
        old.status, old.finished_at = "interrupted", run.finished_at
        old.message = (f"did not finish ({old.rows_read} rows committed before it stopped); "
                       f"run {run.id} completed the file")
    if unfinished:
        run.message = ("completed the file after interrupted run(s) "
                       f"{', '.join(str(old.id) for old in unfinished)}")


def _validated_ahead(
    chunks: Iterator[RawChunk], header: Header, station: StationSchema
) -> Iterator[ValidChunk]:
    """Read and validate the next chunk on a worker thread while this one is being written.

    Memory holds at most two chunks; the database writes stay on the caller's thread.
    """

    def next_valid() -> ValidChunk | None:
        raw = next(chunks, None)
        if raw is None:
            return None
        not_after = (np.datetime64(_now().replace(tzinfo=None), "s")
                     + FUTURE_TOLERANCE.to_timedelta64())
        return validate_chunk(raw, header, station, not_after)

    with ThreadPoolExecutor(max_workers=1) as worker:
        ahead = worker.submit(next_valid)
        while (valid := ahead.result()) is not None:
            ahead = worker.submit(next_valid)
            yield valid


def _store_chunk(
    session: Session, mine: StationRows, run_id: int, source: str, sha: str, valid: ValidChunk
) -> None:
    """One transaction: new rows, quarantined rows and the run's counters move together."""
    times, values = valid.times, valid.values
    rejected = list(valid.rejected)
    present = valid.duplicates
    if len(times):
        stored_times, stored_values = stored_between(session, mine, times.min(), times.max())
        if len(stored_times):
            where = np.searchsorted(stored_times, times).clip(0, len(stored_times) - 1)
            known = stored_times[where] == times
            same = known & same_rows(stored_values[where], values)
            present += int(same.sum())
            for j in np.flatnonzero(known & ~same).tolist():
                stamp = str(times[j]).replace("T", " ")
                rejected.append(
                    valid.reject(j, f"timestamp {stamp} UTC is already stored with different values")
                )
            times, values = times[~known], values[~known]
    inserted = insert_observations(session, mine, times, values)
    present += len(times) - inserted  # stored concurrently by another ingest
    insert_ignore(
        session,
        QuarantinedRow.__table__,
        [
            {"station": mine.station, "run_id": run_id, "source": source,
             "sha256": sha, "line_number": r.line, "raw": r.raw, "reason": r.reason}
            for r in rejected
        ],
    )
    insert_ignore(session, CellProblemRow.__table__, [
        {"station": mine.station, "run_id": run_id, "sha256": sha,
         "line_number": c.line, "column_name": c.column, "reason": c.reason}
        for c in valid.cells])
    run = session.get(IngestRun, run_id)
    run.rows_read += valid.rows_read
    run.rows_inserted += inserted
    run.rows_present += present
    run.rows_quarantined += len(rejected)
    if len(valid.times):
        newest = valid.times.max().astype("datetime64[s]").item().replace(tzinfo=UTC)
        if run.newest_observation is None or newest > run.newest_observation:
            run.newest_observation = newest


def _summary(run: IngestRun, extra: tuple[str, ...]) -> IngestSummary:
    return IngestSummary(
        source=run.source,
        sha256=run.sha256,
        status=run.status,
        rows_read=run.rows_read,
        rows_inserted=run.rows_inserted,
        rows_present=run.rows_present,
        rows_quarantined=run.rows_quarantined,
        extra_columns=extra,
        newest_observation=run.newest_observation,
        message=run.message,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def quarantine_examples(store: Store, sha256: str, limit: int = 5) -> list[tuple[int, str]]:
    """The first `limit` quarantined lines of the station's file, (line number, reason), for
    the logs."""
    with store.sessions() as session:
        return [tuple(r) for r in session.execute(
            select(QuarantinedRow.line_number, QuarantinedRow.reason)
            .where(QuarantinedRow.station == store.station.name,
                   QuarantinedRow.sha256 == sha256)
            .order_by(QuarantinedRow.line_number).limit(limit))]
