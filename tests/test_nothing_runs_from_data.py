"""Nothing runs from data: drop-folder entries cannot reach outside the folder, values are
bound parameters, models load in Keras safe mode, and no user file is unpickled."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import keras
import pytest
from typer.testing import CliRunner

from flows.cli import app
import registry.artifacts as artifacts
from registry.artifacts import ArtifactError, artifact_digest, load_verified
from tests.conftest import JENA_HEADER, JENA_SAMPLE, tiny_blend

ROOT = Path(__file__).resolve().parents[1]
GOOD = JENA_SAMPLE.read_text().splitlines()[1]


def test_drop_folder_symlink_to_a_file_outside_is_refused(tmp_path):
    data = tmp_path / "data"
    drop = data / "incoming"
    drop.mkdir(parents=True)
    secret = tmp_path / "elsewhere.csv"
    secret.write_bytes(JENA_SAMPLE.read_bytes())
    (drop / "link.csv").symlink_to(secret)
    (drop / "real.csv").write_text(JENA_HEADER + "\n" + GOOD + "\n")
    result = CliRunner().invoke(app, ["--data-dir", str(data), "ingest"])
    assert result.exit_code == 1
    assert "link.csv: refused: it points outside the folder" in result.output
    with sqlite3.connect(data / "sensorcast.db") as connection:
        assert connection.execute("select count(*) from observations").fetchone() == (1,)
        assert connection.execute("select source from ingest_runs").fetchall() == [
            (str(drop / "real.csv"),)]


def test_sql_in_a_field_is_stored_as_text_and_runs_nothing(store, write_csv):
    from registry.ingestion import ingest_file

    attack = GOOD.replace(GOOD.split(",")[2], "1); DROP TABLE observations; --", 1)
    summary = ingest_file(store, write_csv([JENA_HEADER, GOOD, attack]), 100)
    assert (summary.rows_inserted, summary.rows_quarantined) == (1, 1)
    with store.sessions() as session:
        raw = session.connection().exec_driver_sql("select raw from quarantined_rows").scalar()
    assert raw == attack


def test_model_file_with_code_is_refused_even_with_a_matching_checksum(tmp_path):
    """A `.keras` holding a Lambda layer (arbitrary Python) is not deserialised."""
    root = tmp_path / "artifacts"
    version = root / "t_degc_24h" / "v0001"
    version.mkdir(parents=True)
    inputs = keras.Input((4, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(version / "model.keras")
    (version / "model.json").write_text(json.dumps({
        "family": "gru", "params": {}, "columns": [], "epochs_run": 0,
        "normalization": {"scale": [], "relative": []}}))
    with pytest.raises(ArtifactError, match="safe_mode"):
        load_verified(version, artifact_digest(version), "t_degc_24h v1", root)


def test_no_code_path_unpickles_or_evaluates_data():
    pattern = re.compile(r"\bimport pickle\b|\bpickle\.loads?\(|allow_pickle\s*=\s*True|"
                         r"\bjoblib\b|\beval\(|\bexec\(|safe_mode\s*=\s*False")
    sources = [p for folder in ("forecasting", "registry", "flows", "deployments")
               for p in (ROOT / folder).rglob("*.py")]
    assert len(sources) > 20
    offending = [f"{p.relative_to(ROOT)}: {m.group()}" for p in sources
                 for m in pattern.finditer(p.read_text())]
    assert offending == []


def _linear_version(root: Path) -> Path:
    """A stored blend model (no TensorFlow needed) in version folder v0001."""
    version = root / "t" / "v0001"
    tiny_blend().save(version)
    return version


def test_an_artifact_file_that_is_a_symlink_or_a_fifo_is_refused_without_hanging(tmp_path):
    root = tmp_path / "artifacts"
    version = _linear_version(root)
    sha = artifact_digest(version)
    assert load_verified(version, sha, "t v1", root).predict is not None
    arrays = version / "model.npz"
    outside = tmp_path / "elsewhere.npz"
    arrays.rename(outside)
    arrays.symlink_to(outside)  # same bytes, but from outside the store
    with pytest.raises(ArtifactError, match="t v1: model.npz is a symbolic link"):
        load_verified(version, sha, "t v1", root)
    arrays.unlink()
    os.mkfifo(arrays)  # no writer: opening it blocking would hang for ever
    with pytest.raises(ArtifactError, match="t v1: model.npz is not a regular file"):
        load_verified(version, sha, "t v1", root)


def test_the_bytes_loaded_are_the_bytes_hashed(tmp_path, monkeypatch):
    """Each file is read once; the model is built from a private copy of those bytes, so a
    file that changes between the check and the load cannot be loaded."""
    root = tmp_path / "artifacts"
    version = _linear_version(root)
    sha = artifact_digest(version)
    good = (version / "model.json").read_text()
    reads = []
    real_read = artifacts.read_artifact

    def read_then_swap(directory, label):
        files = real_read(directory, label)
        reads.append(directory)
        (version / "model.json").write_text(good.replace('"horizon_hours": 3',
                                                         '"horizon_hours": 9'))
        return files

    monkeypatch.setattr(artifacts, "read_artifact", read_then_swap)
    model = load_verified(version, sha, "t v1", root)
    assert reads == [version] and model.params.horizon_hours == 3
