"""Each validation rule quarantines the bad row with its reason and keeps its neighbours."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from registry.ingestion import ingest_file
from registry.observations import read_observations
from registry.tables import IngestRun, QuarantinedRow
from tests.conftest import JENA_HEADER

GOOD = [
    "01.01.2009 00:10:00,996.52,-8.02,265.40,-8.90,93.30,3.33,3.11,0.22,1.94,3.12,1307.75,1.03,1.75,152.30",
    "01.01.2009 00:20:00,996.57,-8.41,265.01,-9.28,93.40,3.23,3.02,0.21,1.89,3.03,1309.80,0.72,1.50,136.10",
    "01.01.2009 00:40:00,996.51,-8.31,265.12,-9.07,94.20,3.26,3.07,0.19,1.92,3.08,1309.19,0.34,0.50,198.00",
]
TAIL = "996.53,-8.51,264.91,-9.31,93.90,3.21,3.01,0.20,1.88,3.02,1310.24,0.19,0.63,171.60"


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("2009-01-01 00:30:00," + TAIL, "Date Time: '2009-01-01 00:30:00' does not match"),
        ("31.04.2009 00:30:00," + TAIL, "Date Time: '31.04.2009 00:30:00' does not match"),
        ("01.01.2009 00:30:00," + TAIL.replace("-8.51", "warm"), "T (degC): 'warm' is not a number"),
        ("01.01.2009 00:30:00," + TAIL.replace("-8.51", ""), "T (degC): empty value"),
        ("01.01.2009 00:30:00," + TAIL.replace("0.19,0.63", "-9999.00,0.63"),
         "wv (m/s): -9999.00 outside the valid range [0, 80] m/s"),
        ("01.01.2009 00:30:00," + TAIL.replace("-8.51", "-50.00000000000001"),
         "T (degC): -50.00000000000001 outside the valid range [-50, 50] degC"),
        ("01.01.2009 00:30:00," + TAIL.replace("-8.51", "inf"), "T (degC): 'inf' is not a finite"),
        ("01.01.2009 00:35:00," + TAIL, "is off the 10-minute cadence grid"),
        ("01.01.0001 00:30:00," + TAIL, "is outside the supported years 1900-2199"),
        ("01.01.2150 00:30:00," + TAIL,
         "Date Time: 2150-01-01T00:30:00 (2149-12-31 23:30:00 UTC) is in the future: later "
         "than the ingest time plus 1 h"),
        ("01.01.2009 00:20:00," + TAIL, "already on line 3 with different values"),
        ("01.01.2009 00:30:00," + TAIL + ",1.0", "expected 15 fields, found 16"),
        ("01.01.2009 00:30:00;" + TAIL.replace(",", ";"), "expected 15 fields, found 1"),
    ],
    ids=["timestamp-format", "impossible-date", "non-numeric", "empty", "sentinel", "just-outside",
         "infinite", "off-grid", "ancient-year", "future", "conflicting-duplicate", "too-many-fields", "wrong-delimiter"],
)
def test_bad_row_is_quarantined_with_reason_and_neighbours_kept(store, write_csv, bad_line, reason):
    path = write_csv([JENA_HEADER, GOOD[0], GOOD[1], bad_line, GOOD[2]])
    summary = ingest_file(store, path, chunk_rows=100)
    assert (summary.rows_read, summary.rows_inserted, summary.rows_quarantined) == (4, 3, 1)
    with store.sessions() as session:
        quarantined = session.scalars(select(QuarantinedRow)).one()
        stored = read_observations(session, store.observations)
    assert quarantined.line_number == 4
    assert quarantined.raw == bad_line
    assert reason in quarantined.reason
    assert len(stored) == 3


def test_identical_duplicate_is_counted_not_quarantined(store, write_csv):
    path = write_csv([JENA_HEADER, GOOD[0], GOOD[1], GOOD[1], GOOD[2]])
    summary = ingest_file(store, path, chunk_rows=100)
    assert (summary.rows_inserted, summary.rows_present, summary.rows_quarantined) == (3, 1, 0)


def test_conflict_with_stored_row_keeps_the_stored_row(store, write_csv):
    ingest_file(store, write_csv([JENA_HEADER, GOOD[0]]), chunk_rows=100)
    changed = GOOD[0].replace("-8.02", "-7.00")
    summary = ingest_file(store, write_csv([JENA_HEADER, changed, GOOD[1]]), chunk_rows=100)
    assert (summary.rows_inserted, summary.rows_quarantined) == (1, 1)
    with store.sessions() as session:
        reason = session.scalars(select(QuarantinedRow.reason)).one()
        stored = read_observations(session, store.observations)
    assert "already stored with different values" in reason
    assert stored["t_degc"].iloc[0] == -8.02


def test_missing_header_columns_refuse_the_file_and_name_them(store, write_csv):
    ingest_file(store, write_csv([JENA_HEADER, GOOD[0]]), chunk_rows=100)
    header = JENA_HEADER.replace(',"rh (%)"', "").replace('"wd (deg)"', '"wind dir"')
    path = write_csv([header, GOOD[1]])
    summary = ingest_file(store, path, chunk_rows=100)
    assert summary.status == "refused"
    assert "lacks column(s) ['rh (%)', 'wd (deg)']" in summary.message
    again = ingest_file(store, path, chunk_rows=100)  # the drop folder's next run
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(store.observations.table)) == 1
        refused = session.scalars(select(IngestRun).where(IngestRun.status == "refused")).one()
    assert "rh (%)" in refused.message  # recorded once, not once per run
    assert again.message == f"{summary.message} (as in run {refused.id})"


def test_empty_file_is_refused_with_a_clear_message(store, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    summary = ingest_file(store, path, chunk_rows=100)
    assert summary.status == "refused" and "empty" in summary.message


def test_rows_are_accounted_for_across_chunks(store, write_csv):
    lines = [JENA_HEADER, GOOD[0], GOOD[1], "garbage", GOOD[1], GOOD[2], GOOD[0]]
    summary = ingest_file(store, write_csv(lines), chunk_rows=2)
    assert summary.rows_read == 6
    assert summary.rows_read == (
        summary.rows_inserted + summary.rows_present + summary.rows_quarantined
    )
    assert (summary.rows_inserted, summary.rows_present, summary.rows_quarantined) == (3, 2, 1)
