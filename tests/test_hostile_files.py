"""Hostile station files: every case ends in stored rows + quarantined rows + a clear
message, never a traceback, never a stored invalid value."""

from __future__ import annotations

import os
import resource
import sqlite3
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from forecasting.station.csvfile import MAX_LINE_BYTES
from forecasting.station.schema import JENA
from registry.dropfolder import files_to_ingest
from registry.ingestion import ingest_file
from registry.store import open_store
from tests.conftest import JENA_HEADER, JENA_SAMPLE

VALID = JENA_SAMPLE.read_text().splitlines()[1:]
BERLIN = replace(JENA, timezone="Europe/Berlin")  # a station clock with DST changes
ODD_VALUES = ["", "nan", "NaN", "inf", "-inf", "Infinity", "1e308", "1e999", "-1e999", "-9999",
              "9" * 400, "0x1F", " 5 ", "1,5", "5.", ".5", "+-1", "'; drop table observations; --",
              "\x00", "\u00e9", '"3.2"']
ODD_TIMES = ["31.02.2009 00:10:00", "01.01.2009 24:00:00", "01.01.2009 00:10:60",
             "28.03.2010 02:10:00", "31.10.2010 02:30:00", "1.1.2009 0:10:00",
             "2009-01-01 00:10:00", "01.01.2009 00:15:00", "01.01.0001 00:00:00",
             "31.12.9999 23:50:00", ""]


def mutated(line: str, field: int, value: str) -> str:
    fields = line.split(",")
    fields[field % len(fields)] = value
    return ",".join(fields)


text_lines = st.one_of(
    st.sampled_from(VALID),
    st.builds(mutated, st.sampled_from(VALID), st.integers(1, 14), st.sampled_from(ODD_VALUES)),
    st.builds(mutated, st.sampled_from(VALID), st.just(0), st.sampled_from(ODD_TIMES)),
    st.builds(lambda line, n: line[:n], st.sampled_from(VALID), st.integers(0, 120)),
    st.sampled_from(VALID).map(lambda line: line.replace(",", ";")),
    st.text(max_size=80),
).map(lambda line: line.encode("utf-8", "surrogatepass"))
lines = st.one_of(text_lines, st.binary(max_size=120))
headers = st.sampled_from([JENA_HEADER.encode(), JENA_HEADER.replace(",", ";").encode(),
                           JENA_HEADER.replace('"T (degC)",', "").encode(), b"", b"\x00\xff",
                           JENA_HEADER.encode().replace(b'"', b"")])


@st.composite
def station_files(draw) -> bytes:
    body = draw(st.lists(st.tuples(lines, st.sampled_from([b"\n", b"\r\n", b"\r"])),
                         max_size=40))
    data = draw(headers) + draw(st.sampled_from([b"\n", b"\r\n"]))
    data += b"".join(line + end for line, end in body)
    if draw(st.booleans()):
        data = data.rstrip(b"\r\n")  # no final line break
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + data


def assert_only_valid_values_stored(db: Path, station) -> None:
    with sqlite3.connect(db) as connection:
        rows = connection.execute("select * from observations").fetchall()
        reasons = connection.execute("select reason from quarantined_rows").fetchall()
    assert all(reason for (reason,) in reasons)
    if not rows:
        return
    values = np.array([r[2:] for r in rows], np.float64)  # after station and time
    assert np.isfinite(values).all()
    for k, channel in enumerate(station.channels):
        assert (values[:, k] >= channel.minimum).all() and (values[:, k] <= channel.maximum).all()
    minutes = np.array([r[1] for r in rows], "datetime64[m]").astype(np.int64)
    assert (minutes % station.cadence_minutes == 0).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=station_files(), station=st.sampled_from([JENA, BERLIN]),
       chunk_rows=st.sampled_from([3, 1000]))
def test_any_file_ends_in_stored_and_quarantined_rows_or_a_clear_refusal(data, station,
                                                                        chunk_rows):
    with tempfile.TemporaryDirectory() as tmp:
        path, db = Path(tmp) / "station.csv", Path(tmp) / "sensorcast.db"
        path.write_bytes(data)
        store = open_store(f"sqlite:///{db}", station)
        try:
            summary = ingest_file(store, path, chunk_rows)
        finally:
            store.close()
        if summary.status == "refused":
            assert summary.message  # a clear message, and nothing stored
            with sqlite3.connect(db) as connection:
                assert connection.execute("select count(*) from observations").fetchone() == (0,)
            return
        assert summary.status == "complete"
        assert summary.rows_read == (summary.rows_inserted + summary.rows_present
                                     + summary.rows_quarantined)
        assert_only_valid_values_stored(db, station)


def test_header_only_file_completes_with_no_rows(store, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(JENA_HEADER + "\n")
    summary = ingest_file(store, path, 1000)
    assert (summary.status, summary.rows_read) == ("complete", 0)


def test_two_gigabyte_file_of_nothing_is_read_in_flat_memory(store, tmp_path):
    """A sparse file: a few real rows, then 2 GiB of NUL bytes with no line break."""
    path = tmp_path / "huge.csv"
    path.write_bytes(JENA_SAMPLE.read_bytes() + b"\n")
    os.truncate(path, 2 << 30)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    summary = ingest_file(store, path, 50_000)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 512 * 1024
    assert summary.rows_inserted == len(VALID)
    assert summary.rows_quarantined == 1
    with store.sessions() as session:
        (raw, reason), = session.execute(text("select raw, reason from quarantined_rows")).all()
    assert reason == f"line longer than {MAX_LINE_BYTES} bytes (binary or corrupt data)"
    assert len(raw) < 2100  # kept short in quarantine


def test_a_header_of_ten_million_columns_is_refused_in_flat_memory(store, tmp_path):
    """It took 1.7 GB and stored 99 MB of column names in `ingest_runs`."""
    path = tmp_path / "wide.csv"
    with open(path, "wb") as handle:  # written in pieces, so this test's own peak stays low
        for start in range(0, 10_000_000, 100_000):
            handle.write(b"".join(b"c%d," % i for i in range(start, start + 100_000)))
        handle.write(b"\n")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    summary = ingest_file(store, path, 50_000)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 64 * 1024
    assert summary.status == "refused"
    assert "the first line is longer than 64 KiB" in summary.message
    with store.sessions() as session:
        extra = session.execute(text("select extra_columns from ingest_runs")).scalar()
    assert extra == ""


def test_a_utf16_or_zip_file_is_refused_saying_what_it_is(store, tmp_path):
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes(JENA_SAMPLE.read_text().encode("utf-16"))
    summary = ingest_file(store, utf16, 1000)
    assert summary.status == "refused" and "is UTF-16 (or binary); save it as UTF-8" in \
        summary.message
    with zipfile.ZipFile(tmp_path / "zipped.csv", "w") as archive:
        archive.write(JENA_SAMPLE, "station.csv")
    summary = ingest_file(store, tmp_path / "zipped.csv", 1000)
    assert summary.status == "refused" and "is a ZIP archive" in summary.message


def test_random_bytes_a_fifo_and_a_huge_header_get_messages_that_name_the_real_problem(
        store, tmp_path):
    noise = tmp_path / "noise.csv"
    noise.write_bytes(np.random.default_rng(0).bytes(10 << 20))
    summary = ingest_file(store, noise, 1000)
    assert summary.status == "refused" and "the file is binary" in summary.message
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert ingest_file(store, empty, 1000).message.endswith("file is empty")
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(9000)) + "\n")
    summary = ingest_file(store, wide, 1000)
    assert summary.status == "refused" and "and 8,980 more (9,000 in all)" in summary.message
    assert len(summary.message) < 2000
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="is not a regular file"):
        files_to_ingest(fifo)
