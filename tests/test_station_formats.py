"""Files from the station's download pages and from other stations ingest without help."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from flows.cli import app

from forecasting.station.schema import load_station
from registry.ingestion import ingest_file
from registry.observations import read_observations
from registry.store import open_store
from tests.conftest import HOURLY_TOML, JENA_HEADER
from tests.test_validation_rules import GOOD


def _stored(store):
    with store.sessions() as session:
        return read_observations(session, store.observations)


def test_unquoted_header_padded_numbers_crlf_and_bom(store, tmp_path):
    header = JENA_HEADER.replace('"', "")
    padded = GOOD[0].replace(",996.52,", ",  996.52,").replace(",-8.02,", ", -8.02 ,")
    path = tmp_path / "download.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([header, padded, GOOD[1]]).encode() + b"\r\n")
    summary = ingest_file(store, path, chunk_rows=100)
    assert (summary.rows_inserted, summary.rows_quarantined) == (2, 0)
    stored = _stored(store)
    assert stored["p_mbar"].tolist() == [996.52, 996.57]
    assert stored["t_degc"].tolist() == [-8.02, -8.41]


def test_latin1_header_with_extra_channels_is_ignored_and_named(store, write_csv):
    extra = ',"rain (mm)","SWDR (W/m²)","PAR (µmol/m²/s)","CO2 (ppm)"'
    lines = [JENA_HEADER + extra] + [g + ",0.00,12.5,30.1,410.2" for g in GOOD]
    path = write_csv(lines, encoding="latin-1")
    summary = ingest_file(store, path, chunk_rows=100)
    assert summary.rows_inserted == 3
    assert summary.extra_columns == ("rain (mm)", "SWDR (W/m²)", "PAR (µmol/m²/s)", "CO2 (ppm)")
    assert _stored(store)["wd_deg"].tolist() == [152.3, 136.1, 198.0]


def test_reordered_columns_are_mapped_by_name(store, write_csv):
    names = JENA_HEADER.split(",")
    order = [0, *range(14, 0, -1)]
    lines = [",".join(names[i] for i in order)]
    lines += [",".join(row.split(",")[i] for i in order) for row in GOOD]
    ingest_file(store, write_csv(lines), chunk_rows=100)
    assert _stored(store)["p_mbar"].tolist() == [996.52, 996.57, 996.51]




def test_hourly_station_described_in_toml_ingests(tmp_path, write_csv):
    schema_path = tmp_path / "hilltop.toml"
    schema_path.write_text(HOURLY_TOML)
    station = load_station(schema_path)
    store = open_store(f"sqlite:///{tmp_path / 'hill.db'}", station)
    path = write_csv([
        "time,pressure,air_temp",
        "2021-03-01 00:00,1001.5,3.5",
        "2021-03-01 01:00,1001.2,3.1",
        "2021-03-01 01:30,1001.0,3.0",
        "2021-03-01 02:00,1000.9,99.0",
        "2021-03-01 03:00,1000.7,2.2",
    ])
    summary = ingest_file(store, path, chunk_rows=100)
    stored = _stored(store)
    store.close()
    assert (summary.rows_inserted, summary.rows_quarantined) == (3, 2)
    assert list(stored.columns) == ["air_temp", "pressure_hpa"]
    assert stored["air_temp"].tolist() == [3.5, 3.1, 2.2]
    assert [t.hour for t in stored.index] == [0, 1, 3]


def test_a_column_another_station_stores_in_another_unit_is_refused(tmp_path):
    """Stations share `observations`: a column holds one quantity in one unit."""
    schema_path = tmp_path / "hilltop.toml"
    schema_path.write_text(HOURLY_TOML)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    open_store(url, load_station(schema_path)).close()
    fahrenheit = tmp_path / "valley.toml"
    fahrenheit.write_text(HOURLY_TOML.replace('name = "hilltop"', 'name = "valley"')
                          .replace('unit = "degC"', 'unit = "degF"'))
    with pytest.raises(ValueError) as refused:
        open_store(url, load_station(fahrenheit))
    assert str(refused.value).startswith(
        "station 'valley': column 'air_temp' is in degF, but station 'hilltop' stores "
        "'air_temp' in degC")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('target = "air_temp"', 'target = "wind"'), "not a channel"),
        (lambda t: t.replace("cadence_minutes = 60", "cadence_minutes = 7"), "must divide a day"),
        (lambda t: t.replace('name = "hilltop"\n', ""), "missing keys ['name']"),
        (lambda t: t.replace("max = 50", "max = -70"), "empty range"),
        (lambda t: 'delimiter = ""\n' + t, "delimiter '' must be one character"),
        (lambda t: 'delimiter = ";;"\n' + t, "delimiter ';;' must be one character"),
        (lambda t: t.replace('"%Y-%m-%d %H:%M"', '"%Y-%m-%d %H:%M%z"'),
         "has a UTC offset or zone name (%z, %Z), which is not supported"),
        (lambda t: t.replace('timezone = "UTC"', 'timezone = "Asia/Shangai"'),
         "timezone 'Asia/Shangai' is not a known IANA time zone"),
    ],
)
def test_invalid_station_description_is_explained(tmp_path, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(edit(HOURLY_TOML))
    with pytest.raises(ValueError) as err:
        load_station(path)
    assert message in str(err.value)


@pytest.mark.parametrize("keyword", ["select", "order", "index", "xmin", "ctid", "tableoid",
                                     "station"])
def test_a_channel_named_like_an_sql_keyword_is_refused_before_any_table_exists(
        tmp_path, keyword):
    path = tmp_path / "keyword.toml"
    path.write_text(HOURLY_TOML.replace('column = "pressure_hpa"', f'column = "{keyword}"'))
    database = tmp_path / "k.db"
    result = CliRunner().invoke(app, ["--station-schema", str(path), "--data-dir",
                                      str(tmp_path), "--database-url",
                                      f"sqlite:///{database}", "models"])
    assert result.exit_code == 2, result.output
    assert (f"station 'hilltop': channel 'pressure' would be column '{keyword}'"
            in result.output)
    assert "Traceback" not in result.output
    with sqlite3.connect(database) as connection:
        assert connection.execute("select name from sqlite_master").fetchall() == []


def test_a_mistyped_time_zone_is_one_line_from_the_cli(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text(HOURLY_TOML.replace('timezone = "UTC"', 'timezone = "Asia/Shangai"'))
    result = CliRunner().invoke(app, ["--station-schema", str(path), "--data-dir",
                                      str(tmp_path), "models"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: station 'hilltop': timezone 'Asia/Shangai' is not a known IANA time zone "
        "(e.g. \"Europe/Berlin\", \"UTC\", \"Etc/GMT-1\" for UTC+1 all year)"]


def test_a_schema_with_the_same_channels_but_another_target_is_refused(tmp_path):
    """It used to drop the temperature forecast as already present and score pressure
    against temperature."""
    schema_path = tmp_path / "hilltop.toml"
    schema_path.write_text(HOURLY_TOML)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    open_store(url, load_station(schema_path)).close()
    other = tmp_path / "pressure.toml"
    other.write_text(HOURLY_TOML.replace('target = "air_temp"', 'target = "pressure"'))
    with pytest.raises(ValueError) as refused:
        open_store(url, load_station(other))
    assert str(refused.value) == (
        "this database holds station 'hilltop' forecasting 'air_temp'; the settings describe "
        "station 'hilltop' forecasting 'pressure'; give it another station name (or "
        "database_url)")
    slower = tmp_path / "slower.toml"  # used to end in "have 0 samples" at the retrain
    slower.write_text(HOURLY_TOML.replace("cadence_minutes = 60", "cadence_minutes = 120"))
    with pytest.raises(ValueError, match="with other channels, units, clock or cadence; give "
                                         "it another station name"):
        open_store(url, load_station(slower))
    widened = tmp_path / "widened.toml"  # a wider valid range changes no stored meaning
    widened.write_text(HOURLY_TOML.replace("max = 50", "max = 60"))
    open_store(url, load_station(widened)).close()


BEIJING_TOML = """
name = "beijing"
timestamp_column = ["year", "month", "day", "hour"]
timestamp_format = "%Y %m %d %H"
timezone = "Asia/Shanghai"
cadence_minutes = 60
target = "TEMP"
wind_speed = "Iws"
wind_direction = "cbwd"

[[channels]]
source = "TEMP"
unit = "degC"
min = -60
max = 50

[[channels]]
source = "pm2.5"
column = "pm25"
unit = "ug/m3"
min = 0
max = 2000
optional = true

[[channels]]
source = "Iws"
unit = "m/s"
min = 0
max = 600

[[channels]]
source = "cbwd"
unit = "deg"
min = 0
max = 360
optional = true
categories = { NW = 315, NE = 45, SE = 135, SW = 225, cv = nan }
"""


def test_a_real_hourly_file_is_read_as_it_comes(tmp_path, write_csv):
    """The four time columns, blank pollutant cells and text wind directions of a real
    hourly station, with no converter script: a blank or invalid optional cell is NULL, its
    row (and temperature) kept and the cell's problem recorded; a bad required cell still
    quarantines its row."""
    import sqlite3

    schema_path = tmp_path / "beijing.toml"
    schema_path.write_text(BEIJING_TOML)
    station = load_station(schema_path)
    db = tmp_path / "b.db"
    store = open_store(f"sqlite:///{db}", station)
    lines = ["No,year,month,day,hour,pm2.5,DEWP,TEMP,PRES,cbwd,Iws",
             "1,2010,1,1,0,NA,-21,-11,1021,NW,1.79",
             "2,2010,1,1,1,,-21,-12,1020,NW,4.92",
             "3,2010,1,1,2,129,-16,-4,1020,SE,1.79",
             "4,2010,1,1,3,148,-15,-4,1020,cv,0.89",
             "5,2010,1,1,4,159,-11,oops,1021,cv,1.78",
             "6,2010,1,1,5,181,-7,-5,1022,XX,2.68"]
    summary = ingest_file(store, write_csv(lines), chunk_rows=100)
    again = ingest_file(store, write_csv(lines[:3], name="again.csv"), chunk_rows=100)
    store.close()
    assert (summary.rows_inserted, summary.rows_quarantined) == (5, 1)
    assert (again.rows_inserted, again.rows_present) == (0, 2)  # NULLs compare equal
    with sqlite3.connect(db) as connection:
        rows = connection.execute("select observed_at, temp, pm25, cbwd from observations "
                                  "order by observed_at").fetchall()
        cells = connection.execute("select line_number, column_name, reason from "
                                   "cell_problems where run_id = 1 order by line_number"
                                   ).fetchall()
        (quarantined,) = connection.execute("select line_number, reason from "
                                            "quarantined_rows").fetchall()
    assert rows == [("2009-12-31 16:00:00", -11.0, None, 315.0),
                    ("2009-12-31 17:00:00", -12.0, None, 315.0),
                    ("2009-12-31 18:00:00", -4.0, 129.0, 135.0),
                    ("2009-12-31 19:00:00", -4.0, 148.0, None),
                    ("2009-12-31 21:00:00", -5.0, 181.0, None)]
    assert cells == [(2, "pm25", "pm2.5: 'NA' is not a number"),
                     (3, "pm25", "pm2.5: empty value"),
                     (5, "cbwd", "cbwd: 'cv' has no value (category without a number)"),
                     (7, "cbwd", "cbwd: 'XX' is not one of the categories "
                                 "['NE', 'NW', 'SE', 'SW', 'cv']")]
    assert quarantined == (6, "TEMP: 'oops' is not a number")
    assert station.timestamp_label == "year+month+day+hour"


def test_a_dwd_ten_minute_file_is_read_as_the_dwd_writes_it(tmp_path, write_csv):
    """bench/dwd_muenchen.toml on the DWD's own format: `;`, padded values, YYYYMMDDHHMM in
    UTC, the `eor` column, and -999 for a missing value (a row without its temperature is
    quarantined, a missing optional value is NULL, each with the rule it broke)."""
    from pathlib import Path

    schema = Path(__file__).resolve().parents[1] / "bench" / "dwd_muenchen.toml"
    station = load_station(schema)
    db = tmp_path / "dwd.db"
    store = open_store(f"sqlite:///{db}", station)
    lines = ["STATIONS_ID;MESS_DATUM;  QN;PP_10;TT_10;TM5_10;RF_10;TD_10;eor",
             "       3379;201810040000;    3;  966.3;   9.2;   8.6;  92.9;   8.1;eor",
             "       3379;201810040010;    3;  966.4;   9.0;   8.2;  92.7;   7.9;eor",
             "       3379;201810040020;    3; -999.0;   8.9;   8.1;  92.9;   7.8;eor",
             "       3379;201810040030;    3;  966.4;-999.0;   8.0;  93.0;   7.8;eor"]
    summary = ingest_file(store, write_csv(lines), chunk_rows=100)
    store.close()
    assert (summary.rows_inserted, summary.rows_quarantined) == (3, 1)
    assert set(summary.extra_columns) == {"STATIONS_ID", "QN", "eor"}
    with sqlite3.connect(db) as connection:
        rows = connection.execute("select observed_at, air_temp_2m, station_pressure from "
                                  "observations order by observed_at").fetchall()
        (cell,) = connection.execute("select line_number, reason from cell_problems")
        (row,) = connection.execute("select line_number, reason from quarantined_rows")
    assert rows == [("2018-10-04 00:00:00", 9.2, 966.3), ("2018-10-04 00:10:00", 9.0, 966.4),
                    ("2018-10-04 00:20:00", 8.9, None)]
    assert cell == (4, "PP_10: -999.0 is the station's code for a missing value")
    assert row == (5, "TT_10: -999.0 is the station's code for a missing value")
