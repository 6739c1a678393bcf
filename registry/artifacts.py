"""The artifact store: one directory per model version, verified by sha256 before loading.

Networks are `.keras` files loaded in safe mode, linear models plain arrays (npz) and JSON,
an ensemble or a composed forecast a JSON list of its members' versions and checksums;
never pickles.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from forecasting.models.families import has_meta, load_model, stored_meta


class ArtifactError(RuntimeError):
    """A version's files are missing or differ from what the registry recorded."""


def read_artifact(directory: Path, label: str) -> dict[str, bytes]:
    """Every file of a version directory by relative name, each read exactly once: what is
    hashed is what is loaded. Regular files only: a symbolic link, FIFO or device is refused
    (opened non-blocking, so a FIFO cannot hang the reader)."""
    files: dict[str, bytes] = {}

    def walk(folder: Path, prefix: str) -> None:
        for entry in os.scandir(folder):
            name = prefix + entry.name
            if entry.is_symlink():
                raise ArtifactError(f"{label}: {name} is a symbolic link; refusing it")
            if entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), name + "/")
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise ArtifactError(f"{label}: {name} is not a regular file; refusing it")
                files[name] = handle.read()

    walk(Path(directory), "")
    has_meta(files, directory)
    return files


def files_digest(files: dict[str, bytes]) -> str:
    """sha256 over names and contents in path order, so an added, removed or changed file
    changes it."""
    digest = hashlib.sha256()
    for name in sorted(files, key=lambda n: n.split("/")):
        digest.update(name.encode())
        digest.update(hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def artifact_digest(directory: Path) -> str:
    return files_digest(read_artifact(directory, str(directory)))


def version_dir(root: Path, model_name: str, version: int) -> Path:
    return Path(root) / model_name / f"v{version:04d}"


def verified_files(path: Path, sha256: str, label: str, root: Path) -> dict[str, bytes]:
    """A version's files, read once, if `path` lies inside the artifact store `root` and they
    match the recorded checksum; ArtifactError otherwise. `path` is inside the store (older
    versions recorded it absolute)."""
    path = Path(root) / path
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise ArtifactError(f"{label}: artifact path {path} is outside the artifact store "
                            f"{root}; refusing to load it")
    try:
        files = read_artifact(path, label)
    except OSError as exc:
        raise ArtifactError(f"{label}: artifact unreadable at {path}: {exc}") from exc
    actual = files_digest(files)
    if actual != sha256:
        raise ArtifactError(
            f"{label}: artifact at {path} has sha256 {actual[:12]}…, the registry recorded "
            f"{sha256[:12]}…; refusing a changed file")
    return files


def verified_copy(path: Path, sha256: str, label: str, root: Path, dest: Path) -> Path:
    """Write the verified bytes of a version into a private `dest`, and those of every
    version it references (an ensemble's or a composed forecast's members) into
    `dest/member0`, ... (verified in turn), for `forecasting.models.families.load_model`.
    Nothing is ever loaded from the store itself."""
    files = verified_files(path, sha256, label, root)
    for name, content in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(content)
    for k, ref in enumerate(stored_meta(files, path).get("members", [])):
        verified_copy(ref["path"], ref["sha256"],
                      f"{label} member {ref['model_name']} v{ref['version']}", root,
                      dest / f"member{k}")
    return dest


def load_verified(path: Path, sha256: str, label: str, root: Path):
    """Load a version only if it is in the store and matches its checksum (Keras safe mode
    for networks); an ensemble only if every member it references does too."""
    with tempfile.TemporaryDirectory(prefix="sensorcast-load-") as private:
        copy = Path(private) / "model"
        verified_copy(path, sha256, label, root, copy)
        try:
            return load_model(copy)
        except Exception as exc:  # files that match their checksum but cannot be read
            raise ArtifactError(f"{label}: artifact at {path} cannot be loaded: {exc}") from exc


def member_reference(model_name: str, version: int, path: str, sha256: str,
                     root: Path) -> dict:
    """How an ensemble names one member: version, path inside the store, checksum."""
    relative = (Path(root) / path).resolve().relative_to(Path(root).resolve()).as_posix()
    return {"model_name": model_name, "version": version, "path": relative, "sha256": sha256}
