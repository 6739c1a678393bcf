"""The real Jena rows go in exactly, once."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta

from sqlalchemy import func, select

from registry.ingestion import ingest_file
from registry.observations import read_observations
from tests.conftest import JENA_SAMPLE


def _sample_rows() -> list[list[str]]:
    with open(JENA_SAMPLE, newline="") as handle:
        return list(csv.reader(handle))


def test_sample_is_stored_with_exact_values_in_utc(store):
    summary = ingest_file(store, JENA_SAMPLE, chunk_rows=7)
    header, *rows = _sample_rows()
    assert (summary.rows_read, summary.rows_inserted, summary.rows_quarantined) == (19, 19, 0)
    with store.sessions() as session:
        frame = read_observations(session, store.observations)
    assert len(frame) == 19
    for stamp, row in zip(frame.index, rows):
        local = datetime.strptime(row[0], "%d.%m.%Y %H:%M:%S")
        assert stamp.to_pydatetime() == local - timedelta(hours=1)  # CET -> UTC
    expected = [[float(v) for v in row[1:]] for row in rows]
    assert frame.to_numpy().tolist() == expected  # exact, not approximately
    assert list(frame.columns) == store.station.columns


def test_reingesting_the_sample_adds_nothing(store, write_csv):
    ingest_file(store, JENA_SAMPLE, chunk_rows=50)
    again = ingest_file(store, JENA_SAMPLE, chunk_rows=50)
    assert again.status == "skipped"
    # Same rows under another name and hash (a re-sent file): counted as already present.
    copy = write_csv(JENA_SAMPLE.read_text().splitlines() + [""])
    resent = ingest_file(store, copy, chunk_rows=5)
    assert (resent.rows_inserted, resent.rows_present, resent.rows_quarantined) == (0, 19, 0)
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(store.observations.table)) == 19
