"""The demo's simulated feed under the real Prefect engine: rows arrive as time passes, each
once, and ingestion takes them like any station file."""

from __future__ import annotations

from datetime import UTC, datetime

from forecasting.station.simulate import simulate_station, write_station_csv


def test_the_demo_station_is_fed_its_due_rows_once_as_time_passes(prefect_harness, tmp_path):
    from flows.feed import DEMO_FEED, simulate_feed
    from flows.ingest import ingest

    data = tmp_path / "data"
    frame = simulate_station("2021-01-01", 3, seed=7)  # station time, UTC+1
    past = frame.index <= "2021-01-02 12:00"
    write_station_csv(data / "incoming" / "demo-station.csv", frame[past])
    write_station_csv(data / DEMO_FEED, frame[~past])
    assert ingest(data_dir=str(data))["jena"][0]["rows_inserted"] == past.sum()

    def feed(hour: int, minute: int) -> str | None:
        return simulate_feed(data_dir=str(data), now=datetime(2021, 1, 2, hour, minute,
                                                               tzinfo=UTC))

    assert feed(11, 5) is None  # 12:05 station time: the next row is stamped 12:10
    first = feed(11, 35)
    assert first.endswith("feed-20210102T1230.csv")
    assert feed(11, 39) is None  # nothing new, nothing twice
    assert feed(12, 0).endswith("feed-20210102T1300.csv")
    runs = [r for r in ingest(data_dir=str(data))["jena"] if r["status"] != "skipped"]
    assert [(r["file"], r["rows_inserted"], r["rows_quarantined"]) for r in runs] == [
        ("feed-20210102T1230.csv", 3, 0), ("feed-20210102T1300.csv", 3, 0)]
    assert runs[-1]["newest_observation"] == "2021-01-02T12:00:00+00:00"


def test_without_the_demo_the_feed_does_nothing(prefect_harness, tmp_path):
    from flows.feed import simulate_feed

    assert simulate_feed(data_dir=str(tmp_path)) is None
    assert not (tmp_path / "incoming").exists()
