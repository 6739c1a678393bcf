"""The ingest flow runs under the real Prefect engine and drains the drop folder once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from forecasting.station.schema import JENA
from forecasting.station.simulate import simulate_station, write_station_csv
from registry.store import open_store
from registry.tables import IngestRun
from tests.conftest import JENA_SAMPLE, flow_run_logs


def test_ingest_flow_takes_the_drop_folder_and_skips_it_next_time(prefect_harness, tmp_path):
    from flows.ingest import ingest

    data = tmp_path / "data"
    drop = data / "incoming"
    write_station_csv(drop / "a.csv", simulate_station("2020-01-01", 2, seed=1))
    write_station_csv(drop / "b.csv", simulate_station("2020-01-03", 1, seed=2))
    (drop / "c.csv").write_bytes(JENA_SAMPLE.read_bytes())

    first = ingest(data_dir=str(data))["jena"]
    assert [r["status"] for r in first] == ["complete"] * 3
    assert sum(r["rows_inserted"] for r in first) == 3 * 144 + 19

    second = ingest(data_dir=str(data))["jena"]
    assert [r["status"] for r in second] == ["skipped"] * 3

    store = open_store(f"sqlite:///{data / 'sensorcast.db'}", JENA)
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(store.observations.table)) == 451
    store.close()


def test_fully_stored_files_leave_the_drop_folder_so_a_run_reads_only_new_ones(
        prefect_harness, tmp_path):
    """A run's work follows the new files, not the history: each file whose rows are all
    stored moves to incoming/done/<UTC date>/ (never deleted); a refused file, and one
    written in the last minute (its writer may not be done), stay."""
    import os
    import time

    from flows.ingest import ingest

    data = tmp_path / "data"
    drop = data / "incoming"
    write_station_csv(drop / "a.csv", simulate_station("2020-01-01", 2, seed=1))
    write_station_csv(drop / "b.csv", simulate_station("2020-01-03", 1, seed=2))
    (drop / "bad.csv").write_text("not,a,station,file\n1,2,3,4\n")
    old = time.time() - 300
    for name in ("a.csv", "b.csv", "bad.csv"):
        os.utime(drop / name, (old, old))
    write_station_csv(drop / "fresh.csv", simulate_station("2020-01-04", 1, seed=3))

    first = ingest(data_dir=str(data), return_state=True)
    assert first.is_failed()  # bad.csv is refused, the others go on
    def archived() -> list[str]:  # under done/<UTC date>/, whichever dates the runs saw
        return sorted(p.name for p in (drop / "done").glob("*/*"))

    assert archived() == ["a.csv", "b.csv"]
    assert sorted(p.name for p in drop.glob("*.csv")) == ["bad.csv", "fresh.csv"]

    (drop / "bad.csv").unlink()  # the operator removes it
    os.utime(drop / "fresh.csv", (old, old))
    write_station_csv(drop / "a.csv", simulate_station("2020-01-01", 2, seed=1))  # again
    os.utime(drop / "a.csv", (old, old))
    second = ingest(data_dir=str(data))["jena"]
    # fresh.csv was stored by the first run, but stayed: now it only moves
    assert [(r["file"], r["status"]) for r in second] == [("a.csv", "skipped"),
                                                          ("fresh.csv", "skipped")]
    moved = Path(second[0]["archived_to"])  # a name already there gets a suffix
    (first_a,) = [p for p in (drop / "done").glob("*/a.csv") if p != moved]
    assert moved.exists() and (moved.name == "a.1.csv") == (first_a.parent == moved.parent)
    assert archived() in (["a.1.csv", "a.csv", "b.csv", "fresh.csv"],  # the same day
                          ["a.csv", "a.csv", "b.csv", "fresh.csv"])  # across UTC midnight
    assert ingest(data_dir=str(data))["jena"] == []  # nothing new: no file read, no task


def test_bad_files_in_the_drop_folder_are_refused_on_their_own_and_the_rest_ingested(
        prefect_harness, tmp_path):
    """What used to stop the scheduled ingest for ever: each bad file is refused with its
    reason and the good ones around it are stored; the run fails, naming the station and
    the refused files, until they are taken away."""
    import gzip

    from flows.ingest import ingest

    data = tmp_path / "data"
    drop = data / "incoming"
    write_station_csv(drop / "a-good.csv", simulate_station("2020-01-01", 1, seed=1))
    header, *rows = JENA_SAMPLE.read_bytes().split(b"\n")
    (drop / "b-missing-column.csv").write_bytes(
        header.replace(b',"rh (%)"', b"") + b"\n" + rows[0])
    (drop / "c-lone-cr.csv").write_bytes(b"\r".join([header, *rows[:5]]))
    (drop / "d-huge-header.csv").write_bytes(b'"' + b"x" * 200_000 + b'"\n' + rows[0])
    (drop / "e-gzip.csv").write_bytes(gzip.compress(JENA_SAMPLE.read_bytes()))
    write_station_csv(drop / "f-good.csv", simulate_station("2020-01-02", 1, seed=2))

    state = ingest(data_dir=str(data), return_state=True)
    assert state.is_failed()
    assert state.message.startswith("ingest failed for 1 of 1 station(s): jena: refused 3 of "
                                    "6 file(s): ")
    store = open_store(f"sqlite:///{data / 'sensorcast.db'}", JENA)
    with store.sessions() as session:
        runs = session.scalars(select(IngestRun).where(IngestRun.station == "jena")).all()
    by_file = {r.source.rsplit("/", 1)[1]: {"status": r.status, "message": r.message,
                                             "rows_inserted": r.rows_inserted} for r in runs}
    assert {f: r["status"] for f, r in by_file.items()} == {
        "a-good.csv": "complete", "b-missing-column.csv": "refused",
        "c-lone-cr.csv": "complete", "d-huge-header.csv": "refused",
        "e-gzip.csv": "refused", "f-good.csv": "complete"}
    assert "lacks column(s) ['rh (%)']" in by_file["b-missing-column.csv"]["message"]
    assert "first line is longer than 64 KiB" in by_file["d-huge-header.csv"]["message"]
    assert "gzip-compressed" in by_file["e-gzip.csv"]["message"]
    assert by_file["c-lone-cr.csv"]["rows_inserted"] == 5
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(store.observations.table)) == \
            2 * 144 + 5
    store.close()


def test_the_run_log_says_why_rows_were_quarantined(prefect_harness, tmp_path):
    """Read back from the Prefect API, as the UI shows it."""
    from flows.ingest import ingest
    from forecasting.station.simulate import Faults

    data = tmp_path / "data"
    write_station_csv(data / "incoming" / "a.csv", simulate_station("2020-01-01", 2, seed=1),
                      Faults(sentinels=0.05, garbled=0.02), seed=1)
    state = ingest(data_dir=str(data), return_state=True)
    (summary,) = state.result()["jena"]
    assert summary["rows_quarantined"] > 0
    logs = flow_run_logs(state.state_details.flow_run_id, "row(s) quarantined")
    (warning,) = [message for level, message in logs if level == 30 and "quarantined" in message]
    assert f"{summary['rows_quarantined']} row(s) quarantined, e.g. line " in warning
    assert "-9999.00 outside the valid range" in warning  # the rule each line broke
    assert f"where station = 'jena' and sha256 = '{summary['sha256']}'" in warning


def test_a_database_that_refuses_fails_the_run_in_one_line_without_a_traceback(
        prefect_harness, tmp_path):
    """A read-only database file, and a station whose meaning changed since its rows were
    stored (schema drift): each run fails saying why, and no log holds a traceback."""
    from flows.ingest import ingest

    data = tmp_path / "data"
    write_station_csv(data / "incoming" / "a.csv", simulate_station("2021-01-01", 2, 1))
    assert ingest(data_dir=str(data), return_state=True).is_completed()
    write_station_csv(data / "incoming" / "b.csv", simulate_station("2021-01-03", 2, 1))
    read_only = f"sqlite:///file:{data / 'sensorcast.db'}?mode=ro&uri=true"
    refused = ingest(data_dir=str(data), database_url=read_only, return_state=True)
    assert refused.is_failed()
    assert "the database refused: attempt to write a readonly database" in refused.message
    logs = flow_run_logs(refused.state_details.flow_run_id, "the database refused")
    assert not [m for _, m in logs if "Traceback" in m]

    drifted = tmp_path / "drifted.toml"  # the same station name, another meaning
    drifted.write_text('name = "jena"\ntimestamp_column = "time"\ntimestamp_format = '
                       '"%Y-%m-%d %H:%M"\ntimezone = "UTC"\ncadence_minutes = 60\ntarget = '
                       '"air_temp"\n[[channels]]\nsource = "air_temp"\nunit = "degC"\n'
                       'min = -60\nmax = 50\n')
    refused = ingest(data_dir=str(data), station_schema=str(drifted), return_state=True)
    assert refused.is_failed() and "cannot open the database: " in refused.message
    assert refused.message.count("\n") == 0
    logs = flow_run_logs(refused.state_details.flow_run_id, "Cannot open the database")
    assert not [m for _, m in logs if "Traceback" in m]
