"""The artifact store: one directory per model version, verified by sha256 before loading.

Networks are `.keras` files loaded in safe mode, linear models plain arrays (npz) and JSON,
an ensemble a JSON list of its members' versions and checksums; never pickles.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from forecasting.candidates import ENSEMBLE, Ensemble, load_candidate
from forecasting.linear import META_FILE


class ArtifactError(RuntimeError):
    """A version's files are missing or differ from what the registry recorded."""


def artifact_digest(directory: Path) -> str:
    """sha256 over every file of a version directory (names and contents, in name order),
    so an added, removed or changed file changes it."""
    directory = Path(directory)
    if not (directory / META_FILE).is_file():
        raise FileNotFoundError(f"no {META_FILE} in {directory}")
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if not p.is_dir()):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def version_dir(root: Path, model_name: str, version: int) -> Path:
    return Path(root) / model_name / f"v{version:04d}"


def store_artifact(forecaster, root: Path, model_name: str,
                   version: int) -> tuple[Path, str]:
    """Save into a fresh version directory (never reused) and return (path, sha256)."""
    target = version_dir(root, model_name, version)
    if target.exists():
        raise ArtifactError(f"{target} already exists; versions never share a directory")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    forecaster.save(staging)
    staging.rename(target)
    return target, artifact_digest(target)


def verify_artifact(path: Path, sha256: str, label: str, root: Path) -> None:
    """Raise ArtifactError unless `path` lies inside the artifact store `root` and its files
    match the recorded checksum."""
    path = Path(path)
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise ArtifactError(f"{label}: artifact path {path} is outside the artifact store "
                            f"{root}; refusing to load it")
    try:
        actual = artifact_digest(path)
    except OSError as exc:
        raise ArtifactError(f"{label}: artifact unreadable at {path}: {exc}") from exc
    if actual != sha256:
        raise ArtifactError(
            f"{label}: artifact at {path} has sha256 {actual[:12]}…, the registry recorded "
            f"{sha256[:12]}…; refusing a changed file")


def load_verified(path: Path, sha256: str, label: str, root: Path):
    """Load a version only if it is in the store and matches its checksum (Keras safe mode
    for networks); an ensemble only if every member it references does too."""
    verify_artifact(path, sha256, label, root)
    try:
        meta = json.loads((Path(path) / META_FILE).read_text())
        if meta.get("family") != ENSEMBLE:
            return load_candidate(Path(path))
    except Exception as exc:  # a file that matches its checksum but cannot be read
        raise ArtifactError(f"{label}: artifact at {path} cannot be loaded: {exc}") from exc
    members = [load_verified(Path(root) / ref["path"], ref["sha256"],
                             f"{label} member {ref['model_name']} v{ref['version']}", root)
               for ref in meta["members"]]
    return Ensemble.from_meta(meta, members)


def member_reference(model_name: str, version: int, path: str, sha256: str,
                     root: Path) -> dict:
    """How an ensemble names one member: version, path inside the store, checksum."""
    relative = Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    return {"model_name": model_name, "version": version, "path": relative, "sha256": sha256}
