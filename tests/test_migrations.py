"""Databases written by earlier code open without losing a row: new columns are added (NULL
in old rows), the station becomes part of the keys, and the changed views are recreated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from forecasting.station.schema import JENA
from registry.forecasts import read_view
from registry.migrations import NAIVE_NAMES, OWN_VIEWS
from registry.store import open_store
from registry.versions import champion, list_events, list_versions
from tests.conftest import JENA_SAMPLE

FIXTURES = Path(__file__).parent / "fixtures"  # `.dump`s of databases the old code wrote
BEFORE_BEST_NAIVE = FIXTURES / "database_before_best_naive.sql"
BEFORE_STATIONS = FIXTURES / "database_before_stations.sql"  # the code of a85c843


def _every_row(path: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    with sqlite3.connect(path) as connection:
        tables = [r[0] for r in connection.execute(
            "select name from sqlite_master where type = 'table'")]
        return {table: (columns, connection.execute(
            f"select {', '.join(columns)} from {table} order by {columns[0]}").fetchall())
            for table in tables
            for columns in [[c[1] for c in connection.execute(f"pragma table_info({table})")]]}


def _as_migrated(table: str, columns: list[str], rows: list[tuple]) -> list[tuple]:
    """What the old rows must read after the migration: the same values, but model names
    begin with their station."""
    if "model_name" not in columns:
        return rows
    at = columns.index("model_name")
    return [tuple(f"jena/{v}" if i == at and v not in NAIVE_NAMES else v
                  for i, v in enumerate(row)) for row in rows]


@pytest.mark.parametrize("dump", [BEFORE_BEST_NAIVE, BEFORE_STATIONS], ids=lambda p: p.stem)
def test_an_older_database_is_migrated_keeping_every_row(tmp_path, dump):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(dump.read_text())
    before = _every_row(path)
    assert all(rows for table, (_, rows) in before.items()
               if table in ("observations", "model_versions", "forecasts"))

    store = open_store(f"sqlite:///{path}", JENA)
    with store.sessions() as session:
        (version,) = list_versions(session, "jena/t_degc_24h")
        (event,) = list_events(session, "jena/t_degc_24h")
        skill = read_view(session, "forecast_skill", "jena")
    store.close()
    assert event.candidate_version == version.version
    assert set(skill.station) == {"jena"} and skill.actual.notna().all()

    after = _every_row(path)
    for table, (columns, rows) in before.items():  # each old column holds what it held
        with sqlite3.connect(path) as connection:
            kept = connection.execute(f"select {', '.join(columns)} from {table} "
                                      f"order by {columns[0]}").fetchall()
        assert kept == _as_migrated(table, columns, rows), table
        columns_after, rows_after = after[table]
        if "station" in columns_after:
            assert {row[columns_after.index("station")] for row in rows_after} <= {"jena"}
    open_store(f"sqlite:///{path}", JENA).close()  # opening again changes nothing
    assert _every_row(path) == after


def test_a_migrated_database_takes_a_second_station_beside_the_first(tmp_path):
    """The old keys (a time; a file and line; an issue) are per station now: a second
    station's rows at the same times, from the same file, stand beside the first's."""
    from dataclasses import replace

    from registry.ingestion import ingest_file
    from registry.observations import read_observations

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(BEFORE_STATIONS.read_text())
    other = replace(JENA, name="jena-2")
    store = open_store(f"sqlite:///{path}", [JENA, other])
    sample = tmp_path / "a.csv"
    lines = JENA_SAMPLE.read_text().splitlines()
    sample.write_text("\n".join(lines[:6] + ["01.01.2009 00:59:00,oops"] + lines[6:]) + "\n")
    summary = ingest_file(store.of("jena-2"), sample, 1000)
    assert (summary.rows_inserted, summary.rows_quarantined) == (19, 1)
    with store.sessions() as session:
        first = read_observations(session, store.of("jena").observations)
        second = read_observations(session, store.of("jena-2").observations)
        assert champion(session, "jena/t_degc_24h") is not None
        assert champion(session, "jena-2/t_degc_24h") is None
        assert ingest_file(store.of("jena"), sample, 1000).status == "skipped"  # jena's too
    store.close()
    assert first.equals(second) and len(first) == 19


def test_the_migration_keeps_every_row_on_both_databases(database_url, tmp_path, write_csv):
    """The layout before station keys, rebuilt from a current database by hand (on SQLite
    and PostgreSQL alike), migrates back: every row kept, and new rows (their ids from the
    copied tables' sequences) go in after the old ones."""
    from sqlalchemy import text

    from registry.ingestion import ingest_file

    lines = JENA_SAMPLE.read_text().splitlines()
    bad = write_csv(lines[:6] + ["01.01.2009 00:59:00,oops"] + lines[6:])
    store = open_store(database_url, JENA)
    ingest_file(store, bad, 1000)
    channels = ", ".join(JENA.columns)
    with store.engine.begin() as connection:  # back to the old layout, as older code had it
        for view in OWN_VIEWS:
            connection.execute(text(f"DROP VIEW {view}"))
        for table, columns, key in (
                ("observations", f"observed_at, {channels}", "PRIMARY KEY (observed_at)"),
                ("quarantined_rows", "id, run_id, source, sha256, line_number, raw, reason",
                 "UNIQUE (sha256, line_number)")):
            connection.execute(text(f"CREATE TABLE old AS SELECT {columns} FROM {table}"))
            connection.execute(text(f"DROP TABLE {table}"))
            connection.execute(text(f"CREATE TABLE {table} AS SELECT * FROM old WHERE 1 = 0"))
            if connection.dialect.name == "postgresql":  # SQLite cannot add a key
                connection.execute(text(f"ALTER TABLE {table} ADD {key}"))
            connection.execute(text(f"INSERT INTO {table} SELECT * FROM old"))
            connection.execute(text("DROP TABLE old"))
        connection.execute(text("UPDATE ingest_runs SET station = NULL"))
    store.close()
    store = open_store(database_url, JENA)  # migrates
    again = ingest_file(store, write_csv(lines[:3] + ["01.01.2009 03:59:00,oops"]), 1000)
    with store.sessions() as session:
        stations = session.execute(text(
            "SELECT (SELECT COUNT(*) FROM observations WHERE station = 'jena'), "
            "(SELECT COUNT(*) FROM quarantined_rows WHERE station = 'jena'), "
            "(SELECT COUNT(*) FROM ingest_runs WHERE station = 'jena')")).one()
        ids = session.execute(text("SELECT id FROM quarantined_rows ORDER BY id")).scalars()
        assert list(ids) == [1, 2]
    store.close()
    assert (again.rows_present, again.rows_quarantined) == (2, 1)
    assert tuple(stations) == (19, 2, 2)
