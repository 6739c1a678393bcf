"""The drop folder: which files a run reads, and where a file goes once all its rows are
stored (`<drop folder>/<ingested_folder>/<UTC date>/`), so each run reads only new files.

A writer must write a file elsewhere and rename it in, or close it when done: a file is
moved only when it has not changed for SETTLE_SECONDS and its last line ends. One that a
writer still held open and appended to after its move is read again where it lies (its
new rows stored, nothing twice) for WATCH_DAYS.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.ingestion import IngestSummary, file_sha256, ingest_file, printable
from registry.store import Store
from registry.tables import ArchivedFile, IngestRun

# A file changed this recently may still be being written: it stays in the drop folder.
SETTLE_SECONDS = 60
# An archived file is watched this long for rows its writer added after the move.
WATCH_DAYS = 7


def files_to_ingest(path: Path) -> tuple[list[Path], list[Path]]:
    """(files to ingest, entries refused): a file, or the `*.csv` files of a drop folder in
    name order. A folder entry that resolves outside the folder (a symlink elsewhere) is
    refused, so what lands in the drop folder cannot make the job read other files."""
    path = Path(path)
    if path.is_dir():
        root = path.resolve()
        entries = sorted(p for p in path.glob("*.csv") if p.is_file())
        escaping = [p for p in entries if not p.resolve().is_relative_to(root)]
        return [p for p in entries if p not in escaping], escaping
    if path.exists() and not path.is_file():
        raise OSError(f"{path} is not a regular file (a FIFO, device or socket?); ingest a "
                      "CSV file or a folder of them")
    if not path.is_file():
        raise FileNotFoundError(f"no such file or folder: {path}")
    return [path], []


def ingest_and_archive(store: Store, path: Path, chunk_rows: int, done: Path | None
                       ) -> IngestSummary:
    """`ingest_file`, then, with `done`, move the file there (`archive`) when every row of it
    is stored (complete, or already ingested), so the next run reads only new files. A file
    already in `done` (it changed after its move) is read again where it lies. A file that
    another run moved away meanwhile is that run's; a file that cannot be moved (a folder
    the ingest may not write) keeps its rows stored and says why in `archive_problem`."""
    try:
        seen = path.stat()
    except FileNotFoundError:
        return gone(path)
    summary = ingest_file(store, path, chunk_rows)
    if summary.status == "refused" and not path.exists():
        return gone(path)
    if not done or summary.status not in ("complete", "skipped"):
        return summary
    if inside(path, done):
        with store.sessions.begin() as session:
            watch(session, store.station.name, path, seen)
        return summary
    try:
        moved = archive(path, done, seen, datetime.now(UTC))
    except FileNotFoundError:
        return replace(summary, message=_joined(summary.message, "moved by another run"))
    except OSError as exc:
        return replace(summary, archive_problem=f"cannot move it to {done}: "
                       f"{exc.strerror or exc}")
    if moved is None:
        return summary
    with store.sessions.begin() as session:
        watch(session, store.station.name, moved, seen)
    return replace(summary, archived_to=str(moved))


def gone(path: Path) -> IngestSummary:
    return IngestSummary(printable(path), "", "skipped",
                         message="moved away by another run meanwhile")


def _joined(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def archive(path: Path, done: Path, seen: os.stat_result, now: datetime,
            settle_seconds: float = SETTLE_SECONDS) -> Path | None:
    """Move an ingested file into `done/<UTC date>/`, unless it changed since `seen` (its
    state before the ingest), within `settle_seconds`, or its last line has no line end:
    its writer may not be finished, so it stays, and a later run skips it by content and
    moves it then. Never deleted, never overwritten: a name already there gets a numbered
    suffix; on another file system it is copied, verified and then removed."""
    now_stat = path.stat()
    if ((now_stat.st_size, now_stat.st_mtime_ns) != (seen.st_size, seen.st_mtime_ns)
            or now.timestamp() - now_stat.st_mtime < settle_seconds
            or not ends_with_line_end(path)):
        return None
    folder = done / f"{now:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    target, n = folder / path.name, 0
    while target.exists():
        n += 1
        target = folder / f"{path.stem}.{n}{path.suffix}"
    move(path, target)
    return target


def ends_with_line_end(path: Path) -> bool:
    """True for an empty file or one whose last byte ends a line."""
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) in (b"\n", b"\r")


def move(path: Path, target: Path) -> None:
    """Rename `path` to `target`; across file systems, copy to a hidden name beside the
    target, check the copy's checksum, rename it in, and only then remove the original."""
    try:
        os.replace(path, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    partial = target.with_name(f".{target.name}.partial")
    shutil.copy2(path, partial)
    if file_sha256(partial) != file_sha256(path):
        partial.unlink()
        raise OSError(f"the copy of {path} in {target.parent} differs from it; not moved")
    os.replace(partial, target)
    path.unlink()


def inside(path: Path, folder: Path) -> bool:
    """Whether `path` lies in `folder`, by absolute paths (links kept as they are, so a done
    folder that links to another file system still counts)."""
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def watch(session: Session, station: str, path: Path, seen: os.stat_result) -> None:
    """Remember an archived file, by its absolute path, as it was when its rows were
    stored."""
    key = os.path.abspath(path)
    row = session.get(ArchivedFile, key)
    if row is None:
        row = ArchivedFile(path=key, station=station, archived_at=datetime.now(UTC))
        session.add(row)
    row.size, row.mtime_ns = seen.st_size, seen.st_mtime_ns


def files_to_read(store: Store, source: Path, done: Path | None
                  ) -> tuple[list[Path], list[Path]]:
    """`files_to_ingest(source)`, and with `done`, the archived files that changed since."""
    files, refused = files_to_ingest(source)
    if done and source.is_dir():
        files += changed_archives(store, done)
    return files, refused


def changed_archives(store: Store, done: Path) -> list[Path]:
    """Files archived to `done` in the last WATCH_DAYS that changed since their rows were
    stored (a writer appended through a handle it kept open): they are read again."""
    since = datetime.now(UTC) - timedelta(days=WATCH_DAYS)
    with store.sessions() as session:
        rows = session.scalars(select(ArchivedFile).where(
            ArchivedFile.station == store.station.name, ArchivedFile.archived_at >= since))
        changed = []
        for row in rows:
            path = Path(row.path)
            try:
                now = path.stat()
            except OSError:  # removed or moved on by the operator
                continue
            if inside(path, done) and (now.st_size, now.st_mtime_ns) != (
                    row.size, row.mtime_ns):
                changed.append(path)
    return changed


def waiting(session: Session, station: str, drop: Path) -> list[Path]:
    """The drop folder's files whose content is not all stored yet (one just ingested but
    not moved, e.g. still settling, is not waiting)."""
    if not drop.is_dir():
        return []
    files, _ = files_to_ingest(drop)
    stored = set(session.scalars(select(IngestRun.sha256).where(
        IngestRun.station == station, IngestRun.status == "complete")))
    unread = []
    for path in files:
        try:
            if file_sha256(path) in stored:
                continue
        except OSError:
            pass
        unread.append(path)
    return unread
