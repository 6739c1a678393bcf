"""The ingest flow runs under the real Prefect engine and drains the drop folder once."""

from __future__ import annotations

from sqlalchemy import func, select

from forecasting.schema import JENA
from forecasting.simulate import simulate_station, write_station_csv
from registry.store import open_store
from tests.conftest import JENA_SAMPLE


def test_ingest_flow_takes_the_drop_folder_and_skips_it_next_time(prefect_harness, tmp_path):
    from flows.ingest import ingest

    data = tmp_path / "data"
    drop = data / "incoming"
    write_station_csv(drop / "a.csv", simulate_station("2020-01-01", 2, seed=1))
    write_station_csv(drop / "b.csv", simulate_station("2020-01-03", 1, seed=2))
    (drop / "c.csv").write_bytes(JENA_SAMPLE.read_bytes())

    first = ingest(data_dir=str(data))
    assert [r["status"] for r in first] == ["complete"] * 3
    assert sum(r["rows_inserted"] for r in first) == 3 * 144 + 19

    second = ingest(data_dir=str(data))
    assert [r["status"] for r in second] == ["skipped"] * 3

    store = open_store(f"sqlite:///{data / 'sensorcast.db'}", JENA)
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(store.observations)) == 451
    store.close()
