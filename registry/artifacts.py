"""The artifact store: one directory per model version, verified by sha256 before loading."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from forecasting.training import META_FILE, MODEL_FILE, NetworkForecaster


class ArtifactError(RuntimeError):
    """A version's files are missing or differ from what the registry recorded."""


def artifact_digest(directory: Path) -> str:
    """sha256 over the model file and its metadata, in a fixed order."""
    digest = hashlib.sha256()
    for name in (MODEL_FILE, META_FILE):
        digest.update(name.encode())
        digest.update(hashlib.sha256((Path(directory) / name).read_bytes()).digest())
    return digest.hexdigest()


def version_dir(root: Path, model_name: str, version: int) -> Path:
    return Path(root) / model_name / f"v{version:04d}"


def store_artifact(forecaster: NetworkForecaster, root: Path, model_name: str,
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


def load_verified(path: Path, sha256: str, label: str, root: Path) -> NetworkForecaster:
    """Load a version only if it is in the store and matches its checksum (Keras safe mode)."""
    verify_artifact(path, sha256, label, root)
    try:
        return NetworkForecaster.load(Path(path))
    except Exception as exc:  # a file that matches its checksum but Keras cannot read
        raise ArtifactError(f"{label}: artifact at {path} cannot be loaded: {exc}") from exc
