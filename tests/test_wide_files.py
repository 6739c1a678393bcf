"""A network published as wide files (one per quantity, a column per station) is split into
each station's drop folder and ingested by the product: every cell reaches validation as
written, faults are quarantined or refused with their reasons, nothing is stored twice."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.app import app
from forecasting.station.network import load_stations

SCHEMA = Path(__file__).parents[1] / "bench" / "us_cities.toml"
STAMPS = ["01-10-2012 13:00", "01-10-2012 14:00", "01-10-2012 15:00", "01-10-2012 16:00"]


def stations_file(tmp_path: Path) -> Path:
    path = tmp_path / "stations.toml"
    path.write_text(
        f'[[stations]]\nname = "san_diego"\nschema = "{SCHEMA}"\nwide_column = "San Diego"\n'
        f'latitude = 32.7153\nlongitude = -117.1573\n\n'
        f'[[stations]]\nname = "phoenix"\nschema = "{SCHEMA}"\nwide_column = "Phoenix"\n')
    return path


def wide(path: Path, rows: list[str], header: str = "datetime,San Diego,Phoenix") -> Path:
    text = "\n".join([header, *rows]) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def quantity_files(folder: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    return [
        wide(folder / "temperature.csv.gz",
             [f"{STAMPS[0]},18.38,23.45", f"{STAMPS[1]},18.36,", f"{STAMPS[2]},18.30,24.1",
              f"{STAMPS[3]},abc,24.5"]),
        wide(folder / "humidity.csv", [f"{s},80,20" for s in STAMPS]),
        wide(folder / "pressure.csv", [f"{STAMPS[0]},1013,810"]
             + [f"{s},1013,1012" for s in STAMPS[1:]]),
        wide(folder / "wind_speed.csv", [f"{s},1,2" for s in STAMPS[:3]]),  # one stamp short
    ]


def cli(data: Path, stations: Path, *args: str):
    return CliRunner().invoke(app, ["--data-dir", str(data), "--stations-file", str(stations),
                                    *args])


def sql(data: Path, query: str) -> list[tuple]:
    with sqlite3.connect(data / "sensorcast.db") as connection:
        return connection.execute(query).fetchall()


def test_wide_files_are_split_per_station_and_ingested_with_faults_kept_and_explained(
        tmp_path):
    data, stations = tmp_path / "data", stations_file(tmp_path)
    files = [str(f) for f in quantity_files(tmp_path / "wide")]
    split = cli(data, stations, "split-wide", *files)
    assert split.exit_code == 0, split.output
    assert "san_diego: 4 rows" in split.output and "phoenix: 4 rows" in split.output
    ingested = cli(data, stations, "ingest")
    assert ingested.exit_code == 0, ingested.output

    stored = sql(data, "SELECT station, observed_at, temperature, humidity, pressure, "
                       "wind_speed FROM observations ORDER BY station, observed_at")
    assert stored == [
        ("phoenix", "2012-10-01 13:00:00", 23.45, 20.0, None, 2.0),
        ("phoenix", "2012-10-01 15:00:00", 24.1, 20.0, 1012.0, 2.0),
        ("phoenix", "2012-10-01 16:00:00", 24.5, 20.0, 1012.0, None),
        ("san_diego", "2012-10-01 13:00:00", 18.38, 80.0, 1013.0, 1.0),
        ("san_diego", "2012-10-01 14:00:00", 18.36, 80.0, 1013.0, 1.0),
        ("san_diego", "2012-10-01 15:00:00", 18.3, 80.0, 1013.0, 1.0),
    ]
    quarantined = sql(data, "SELECT station, reason FROM quarantined_rows ORDER BY station")
    assert [(s, r.split(":")[0]) for s, r in quarantined] == [("phoenix", "temperature"),
                                                              ("san_diego", "temperature")]
    assert "empty" in quarantined[0][1] and "abc" in quarantined[1][1]
    problems = {(s, r) for s, r in sql(data, "SELECT station, reason FROM cell_problems")}
    assert ("phoenix", "pressure: 810 outside the valid range [870, 1085] hPa") in problems
    assert any(s == "phoenix" and r.startswith("wind_speed: empty") for s, r in problems)

    again = cli(data, stations, "split-wide", *files)
    assert again.exit_code == 0 and cli(data, stations, "ingest").exit_code == 0
    assert sql(data, "SELECT count(*) FROM observations") == [(6,)]


@pytest.mark.parametrize("fault, message", [
    ("header", "lacks column(s) ['Phoenix']"),
    ("fields", "line 3 has 2 fields, the header 3"),
    ("quantity", "needs the quantities"),
])
def test_a_wide_file_that_cannot_be_split_is_refused_by_name_and_nothing_is_written(
        tmp_path, fault, message):
    data, stations = tmp_path / "data", stations_file(tmp_path)
    files = quantity_files(tmp_path / "wide")
    if fault == "header":
        wide(files[1], [f"{s},80" for s in STAMPS], header="datetime,San Diego")
    elif fault == "fields":
        wide(files[1], [f"{STAMPS[0]},80,20", f"{STAMPS[1]},80"])
    else:
        files[3] = files[3].rename(files[3].with_name("wind.csv"))
    refused = cli(data, stations, "split-wide", *map(str, files))
    assert refused.exit_code == 2
    assert message in refused.output
    assert not list(data.rglob("*.csv"))


def test_a_stations_file_says_where_a_station_is_and_its_wide_column(tmp_path):
    sites = load_stations(stations_file(tmp_path))
    assert [(s.column, s.latitude, s.longitude) for s in sites] == [
        ("San Diego", 32.7153, -117.1573), ("Phoenix", None, None)]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[stations]]\nname = "x"\nlatitude = 95\n')
    with pytest.raises(ValueError, match=r"stations\[0\]: `latitude` must be degrees"):
        load_stations(bad)
