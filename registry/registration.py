"""Registering new versions safely beside other writers and after crashes.

Every registration runs in one transaction that first takes the model's lock; inside it,
folders left by a crashed registration (a version folder with no row, a staging folder) are
moved aside, each version is saved to a private staging folder and renamed to a number no
row or folder has, and its row is written. A crash before the commit leaves rows unwritten
and at most an orphan folder, which the next registration moves aside.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.artifacts import ArtifactError, artifact_digest, verified_files, version_dir
from registry.observations import upsert_insert
from registry.versions import (ModelLockRow, ModelVersion, ModelVersionRow, NewVersion,
                               add_version)

ORPHANS_DIR = ".orphaned"
STAGING_PREFIX = ".staging-"
VERSION_DIR = re.compile(r"v(\d{4,})")


def lock_model(session: Session, model_name: str) -> None:
    """Take the model's write lock until the transaction ends. Must be the transaction's
    first statement: SQLite then waits for the lock instead of failing on a stale read."""
    now = datetime.now(UTC)
    insert = upsert_insert(session, ModelLockRow.__table__)
    session.execute(insert.values(model_name=model_name, taken_at=now)
                    .on_conflict_do_update(index_elements=["model_name"],
                                           set_={"taken_at": now}))


def move_orphans_aside(session: Session, root: Path, model_name: str) -> list[Path]:
    """Under the lock, any folder of the model without a version row was left by a crash:
    move it into `.orphaned/` (kept for inspection, never loaded) and return where."""
    folder = Path(root) / model_name
    if not folder.is_dir():
        return []
    recorded = {Path(p).name for p in session.scalars(
        select(ModelVersionRow.artifact_path).where(ModelVersionRow.model_name == model_name))}
    moved = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for entry in sorted(folder.iterdir()):
        left = entry.name.startswith(STAGING_PREFIX) or (
            VERSION_DIR.fullmatch(entry.name) and entry.name not in recorded)
        if left:
            target = folder / ORPHANS_DIR / f"{entry.name}-{stamp}"
            target.parent.mkdir(exist_ok=True)
            entry.rename(target)
            moved.append(target)
    return moved


def register_version(session: Session, root: Path, new: NewVersion, model) -> ModelVersion:
    """Save `model` as the model's next version and record it (the caller holds the lock)."""
    folder = Path(root) / new.model_name
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
    try:
        model.save(staging / "version")
        sha = artifact_digest(staging / "version")
        numbers = [int(m.group(1)) for e in folder.iterdir()
                   if (m := VERSION_DIR.fullmatch(e.name))]
        rows = session.scalars(select(ModelVersionRow.version).where(
            ModelVersionRow.model_name == new.model_name)).all()
        version = max([0, *numbers, *rows]) + 1
        target = version_dir(root, new.model_name, version)
        if target.exists():  # only a writer that ignored the lock could have made it
            raise ArtifactError(f"{target} already exists; versions never share a folder")
        os.rename(staging / "version", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return add_version(session, new, version, target.relative_to(root).as_posix(), sha)


def inconsistencies(session: Session, root: Path) -> list[str]:
    """What breaks the registry's promise: a version row whose artifact does not verify, or
    a version folder without a row (folders moved aside into `.orphaned/` are fine)."""
    problems = []
    rows = session.scalars(select(ModelVersionRow)).all()
    for row in rows:
        try:
            verified_files(row.artifact_path, row.artifact_sha256,
                           f"{row.model_name} v{row.version}", root)
        except ArtifactError as exc:
            problems.append(str(exc))
    recorded = {(Path(root) / r.artifact_path).resolve() for r in rows}
    for folder in version_folders(Path(root)):
        if folder.resolve() not in recorded:
            problems.append(f"{folder} has no version row")
    return problems


def version_folders(root: Path) -> list[Path]:
    """Every version folder in the store, at the depth of its model's name (`t/v0001`,
    `jena/t_degc_24h/v0001`), none inside another version or moved aside or staging."""
    found = []
    for folder in sorted(root.rglob("v*")):
        parents = folder.relative_to(root).parts[:-1]
        if (VERSION_DIR.fullmatch(folder.name) and folder.is_dir() and parents
                and not any(VERSION_DIR.fullmatch(p) or p.startswith(".") for p in parents)):
            found.append(folder)
    return found
