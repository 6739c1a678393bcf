"""Many stations in one database, under the real Prefect engine: each station's rows,
quarantine, models, champion and forecasts stay its own; a failing station fails alone."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from forecasting.config import COMPOSED
from forecasting.station.schema import JENA
from forecasting.station.simulate import simulate_station, write_station_csv
from tests.conftest import HOURLY_TOML, small_settings

START, DAYS = "2021-01-01", 60
AT = datetime(2021, 3, 1, 12, tzinfo=UTC)  # after the last rows: 2021-03-01 23:50 local


def hilltop_csv(path: Path, days: int, seed: int, bad_line: bool = True) -> Path:
    """An hourly station of another format: two channels, ISO times in UTC."""
    frame = simulate_station(START, days, seed)
    hourly = frame[frame.index.minute == 0]
    lines = ["time,air_temp,pressure"] + [
        f"{t:%Y-%m-%d %H:%M},{temp - 4:.2f},{p - 60:.2f}"
        for t, temp, p in zip(hourly.index, hourly["T (degC)"], hourly["p (mbar)"])]
    if bad_line:
        lines.insert(5, "2021-01-01 04:30,not a number,930.0")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def network(tmp_path: Path, entries: dict[str, str]) -> Path:
    """A stations file: name -> schema file name ("" for the built-in Jena schema)."""
    (tmp_path / "hilltop.toml").write_text(HOURLY_TOML)
    text = "".join(f'[[stations]]\nname = "{name}"\n'
                   + (f'schema = "{schema}"\n' if schema else "") for name, schema in
                   entries.items())
    path = tmp_path / "stations.toml"
    path.write_text(text)
    return path


def sql(data: Path, query: str) -> list[tuple]:
    with sqlite3.connect(data / "sensorcast.db") as connection:
        return connection.execute(query).fetchall()


def test_two_stations_of_different_schemas_keep_their_own_rows_models_and_forecasts(
        prefect_harness, tmp_path):
    from flows.forecast import forecast
    from flows.ingest import ingest
    from flows.retrain import retrain

    data = tmp_path / "data"
    stations = network(tmp_path, {"jena": "", "hilltop": "hilltop.toml"})
    write_station_csv(data / "incoming" / "jena" / "a.csv", simulate_station(START, DAYS, 1))
    with open(data / "incoming" / "jena" / "a.csv", "a") as feed:
        feed.write("02.03.2021 00:00:00,oops\n")
    hilltop_csv(data / "incoming" / "hilltop" / "a.csv", DAYS, seed=2)
    common = {"data_dir": str(data), "stations_file": str(stations)}

    ingested = ingest(**common)
    assert {name: [(r["rows_inserted"], r["rows_quarantined"]) for r in rows]
            for name, rows in ingested.items()} == {"jena": [(DAYS * 144, 1)],
                                                    "hilltop": [(DAYS * 24, 1)]}
    with small_settings():
        boards = retrain(**common, families=["blend", "ridge"])
    assert set(boards) == {"jena", "hilltop"}
    assert forecast(**common, at=AT, days=1, model="current").keys() == {"jena", "hilltop"}

    assert sql(data, "select station, count(*), count(t_degc), count(air_temp) "
                     "from observations group by station order by station") == [
        ("hilltop", DAYS * 24, 0, DAYS * 24), ("jena", DAYS * 144, DAYS * 144, 0)]
    assert sql(data, "select station, raw from quarantined_rows order by station") == [
        ("hilltop", "2021-01-01 04:30,not a number,930.0"),
        ("jena", "02.03.2021 00:00:00,oops")]
    versions = sql(data, "select station, model_name, version, family from model_versions "
                         "order by station, version")
    assert {row[:2] for row in versions} == {("hilltop", "hilltop/air_temp_24h"),
                                             ("jena", "jena/t_degc_24h")}
    for name in ("hilltop", "jena"):  # its own numbering; a composed winner comes third
        mine = [(version, family) for station, _, version, family in versions
                if station == name]
        assert mine[:2] == [(1, "blend"), (2, "ridge")] and mine[2:] in ([], [(3, COMPOSED)])
    champions = sql(data, "select a.model_name, v.station from model_aliases a "
                          "join model_versions v on v.id = a.version_id order by 1")
    assert champions == [("hilltop/air_temp_24h", "hilltop"), ("jena/t_degc_24h", "jena")]
    latest = sql(data, "select station, count(*), min(model_name), max(target), "
                       "min(issued_at) = max(issued_at) from latest_forecast group by station "
                       "order by station")
    assert latest == [("hilltop", 24, "hilltop/air_temp_24h", "air_temp", 1),
                      ("jena", 24, "jena/t_degc_24h", "t_degc", 1)]
    # Each station's forecasts are scored against its own target column.
    skill = sql(data, "select f.station, count(*), sum(f.actual = coalesce(o.t_degc, "
                      "o.air_temp)) from forecast_skill f join observations o on o.station = "
                      "f.station and o.observed_at = f.target_time group by f.station")
    assert {station: (n >= 24, n == same) for station, n, same in skill} == {
        "hilltop": (True, True), "jena": (True, True)}
    one = sql(data, "select station, model_name from latest_forecast where station = 'jena' "
                    "limit 1")
    assert one == [("jena", "jena/t_degc_24h")]


def test_a_station_with_a_refused_file_or_too_little_data_fails_alone(prefect_harness,
                                                                     tmp_path):
    from flows.ingest import ingest
    from flows.retrain import retrain

    data = tmp_path / "data"
    stations = network(tmp_path, {"good": "", "bad-file": "", "too-short": "hilltop.toml"})
    write_station_csv(data / "incoming" / "good" / "a.csv", simulate_station(START, DAYS, 1))
    write_station_csv(data / "incoming" / "bad-file" / "a.csv",
                      simulate_station(START, DAYS, 3))
    (data / "incoming" / "bad-file" / "b.csv").write_text("this is not a station file\n")
    hilltop_csv(data / "incoming" / "too-short" / "a.csv", 3, seed=4, bad_line=False)
    common = {"data_dir": str(data), "stations_file": str(stations)}

    state = ingest(**common, return_state=True)
    assert state.is_failed()
    assert state.message.startswith("ingest failed for 1 of 3 station(s): bad-file: refused "
                                    "1 of 2 file(s): ")
    assert sql(data, "select station, count(*) from observations group by station "
                     "order by station") == [("bad-file", DAYS * 144), ("good", DAYS * 144),
                                             ("too-short", 3 * 24)]
    with small_settings():
        state = retrain(**common, families=["blend"], return_state=True)
    assert state.is_failed()
    assert state.message.startswith("retrain failed for 1 of 3 station(s): too-short: not "
                                    "retraining: ")
    assert sql(data, "select station, count(*) from model_versions where family = 'blend' "
                     "group by station order by station") == [("bad-file", 1), ("good", 1)]


def test_a_retrain_waits_while_another_retrain_of_its_station_runs(prefect_harness, tmp_path):
    """Whoever started it (a schedule, a person), a station's retrain takes its turn on the
    station's lease: here the test holds it, as a running retrain would."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    from flows.ingest import ingest
    from flows.retrain import retrain
    from registry.leases import held
    from registry.store import open_store

    data = tmp_path / "data"
    write_station_csv(data / "incoming" / "jena.csv", simulate_station(START, DAYS, 1))
    ingest(data_dir=str(data))
    started = datetime.now(UTC)
    with small_settings():
        waiting = threading.Thread(target=retrain, kwargs={"data_dir": str(data),
                                                           "families": ["blend"]})
        store = open_store(f"sqlite:///{data / 'sensorcast.db'}", JENA)
        with held(store.sessions, "retrain jena", 0):
            waiting.start()
            time.sleep(8)
            released = datetime.now(UTC)
        store.close()
        waiting.join()
    with get_client(sync_client=True) as client:
        (load,) = [t for t in client.read_task_runs(task_run_filter=TaskRunFilter(
            name=TaskRunFilterName(any_=["load windows"]))) if t.start_time >= started]
    assert load.start_time >= released
    assert sql(data, "select count(*) from model_versions where family = 'blend'") == [(1,)]


REFUSED_NETWORKS = {
    "names equal but for case": ('[[stations]]\nname = "station-001"\n[[stations]]\n'
                                 'name = "Station-001"\n',
                                 "station 'Station-001' and 'station-001' differ only in case"),
    "one drop folder for two": ('[[stations]]\nname = "a"\ndrop_dir = "feed"\n'
                                '[[stations]]\nname = "b"\ndrop_dir = "./feed/"\n',
                                "stations 'a' and 'b' share the drop folder"),
}


@pytest.mark.parametrize("case", REFUSED_NETWORKS)
def test_a_stations_file_whose_stations_would_collide_is_refused_before_anything_is_written(
        case, tmp_path):
    """Names that differ only in case share their Prefect keys; two stations reading one
    drop folder would each store the other's files."""
    from typer.testing import CliRunner

    from flows.cli import app

    text, phrase = REFUSED_NETWORKS[case]
    stations = tmp_path / "stations.toml"
    stations.write_text(text)
    write_station_csv(tmp_path / "feed" / "x.csv", simulate_station(START, 2, 1))
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path / "data"), "--stations-file",
                                      str(stations), "ingest"])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert phrase in result.output
    assert not (tmp_path / "data" / "sensorcast.db").exists()


def test_stations_the_configuration_no_longer_lists_are_named_with_a_warning(tmp_path):
    """The stations file removed (or a station renamed): sensorcast would serve the built-in
    station alone, while the other stations' rows and models sit unserved, unsaid."""
    from typer.testing import CliRunner

    from flows.cli import app

    data = tmp_path / "data"
    stations = network(tmp_path, {"north": "", "south": ""})
    write_station_csv(tmp_path / "n.csv", simulate_station(START, 1, 1))
    runner = CliRunner()
    listed = ["--data-dir", str(data), "--stations-file", str(stations)]
    assert runner.invoke(app, [*listed, "ingest", "--station", "north",
                               str(tmp_path / "n.csv")]).exit_code == 0
    assert "warning" not in runner.invoke(app, [*listed, "models"]).output
    result = runner.invoke(app, ["--data-dir", str(data), "models"])  # no stations file
    assert result.exit_code == 0
    assert ("warning: the database holds station(s) north, south that the configuration "
            "does not list") in result.output


def test_stations_with_the_same_channels_read_through_one_compiled_statement(tmp_path):
    """Each station's reads compiled statements of their own, kept for every station: a
    process reading a thousand stations held 60 MiB more than one reading a hundred. Reading
    thirty stations of one format now costs what reading two does, and each reads only its
    own rows."""
    from dataclasses import replace

    from registry.observations import insert_observations, read_observations
    from registry.store import open_store

    stations = [replace(JENA, name=f"s{i:02d}") for i in range(30)]
    store = open_store(f"sqlite:///{tmp_path / 'many.db'}", stations)
    times = np.array(["2021-01-01T00:00", "2021-01-01T00:10"], "datetime64[s]")
    values = np.full((2, len(JENA.channels)), 1.0)

    def read(names: list[str]) -> int:
        for name in names:
            mine = store.of(name)
            with mine.sessions.begin() as session:
                insert_observations(session, mine.observations, times, values * int(name[1:]))
            with mine.sessions() as session:
                frame = read_observations(session, mine.observations)
            assert len(frame) == 2 and (frame.iloc[:, 0] == int(name[1:])).all()
        return len(store.engine._compiled_cache)

    assert read(["s00", "s01"]) == read([s.name for s in stations[2:]])
    store.close()
