"""Bringing an existing database up to the current tables without losing a row.

Tables grow by nullable columns (the SQL contract: columns are only added): every column
the tables declare but the database lacks is added with `ALTER TABLE ... ADD COLUMN`, NULL
in the rows already there. One change needed more: making the station part of the keys
(`migrate_to_stations`), explicit and tested, in the transaction that opens the database.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, Connection, Float, MetaData, String, Table, inspect, text
from sqlalchemy.schema import CreateColumn, CreateIndex

from forecasting.station.schema import TIMESTAMP_SQL_COLUMN, StationSchema
from registry.db import STATION, Base, UTCDateTime

# The views the product creates, those that read another view before it (the drop order).
OWN_VIEWS = ("forecast_interval_skill", "backtest_interval_skill", "forecast_coverage",
             "forecast_coverage_by_group", "backtest_coverage_by_group", "latest_forecast",
             "forecast_skill", "backtest_skill")


def add_missing_columns(connection: Connection, metadata: MetaData) -> list[str]:
    """Add the declared columns that existing tables lack; returns `table.column` of each."""
    inspector = inspect(connection)
    added = []
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RuntimeError(f"cannot add the required column {table.name}.{column.name} "
                                   "to rows that exist; columns are only added as nullable")
            ddl = CreateColumn(column).compile(dialect=connection.dialect)
            connection.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")
            added.append(f"{table.name}.{column.name}")
    return added


def rebuild_table(connection: Connection, table: Table, fill: dict[str, object]) -> int:
    """Recreate `table` as declared (for a new key or unique constraint, which SQLite cannot
    alter), keeping every row: columns both layouts have are copied, the declared ones the
    old rows lack take `fill`'s values. Runs in the caller's transaction; returns the rows."""
    old = f"{table.name}__before_migration"
    columns = [c.name for c in table.columns if c.name not in fill]
    count = connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table.name}").scalar_one()
    connection.exec_driver_sql(f"CREATE TABLE {old} AS SELECT * FROM {table.name}")
    connection.exec_driver_sql(f"DROP TABLE {table.name}")
    table.create(connection)
    names = ", ".join([*columns, *fill])
    values = ", ".join([*columns, *(f":{name}" for name in fill)])
    connection.execute(text(f"INSERT INTO {table.name} ({names}) SELECT {values} FROM {old}"),
                       fill)
    copied = connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table.name}").scalar_one()
    if copied != count:
        raise RuntimeError(f"migrating {table.name}: {count} rows before, {copied} after; "
                           "nothing was changed")
    connection.exec_driver_sql(f"DROP TABLE {old}")
    serial = [c.name for c in table.primary_key.columns if c.autoincrement is True]
    if serial and connection.dialect.name == "postgresql":  # go on after the copied ids
        connection.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{serial[0]}'), "
            f"COALESCE(MAX({serial[0]}), 0) + 1, false) FROM {table.name}")
    return copied


# Tables whose rows belong to one station, and those naming models (whose names now begin
# with the station: `t_degc_24h` -> `jena/t_degc_24h`). Naive forecasts keep their names.
STATION_TABLES = ("ingest_runs", "forecasts", "forecast_runs", "model_versions",
                  "promotion_events", "backtests", "backtest_forecasts")
MODEL_NAME_TABLES = ("model_versions", "model_locks", "model_aliases", "promotion_events",
                     "forecasts", "forecast_runs", "backtests", "backtest_forecasts")
NAIVE_NAMES = ("persistence", "seasonal_persistence", "best_naive")


def migrate_to_stations(connection: Connection, stations: Sequence[StationSchema]) -> bool:
    """Bring a database from before stations were keys (one station, `observations` keyed
    by time alone) to the many-station layout, in the caller's transaction: every row is
    kept and marked as the recorded station's. True when it migrated. The station must be
    among the configured ones (its target names the views' columns)."""
    inspector = inspect(connection)
    if not inspector.has_table("observations") or STATION in {
            c["name"] for c in inspector.get_columns("observations")}:
        return False
    # The station it was recorded for; a database older than that record held the one
    # station configured then, so a single configured station is taken as it.
    recorded = connection.exec_driver_sql("SELECT name FROM station").scalars().all() or \
        [s.name for s in stations if len(stations) == 1]
    configured = {s.name: s for s in stations}
    if len(recorded) != 1 or recorded[0] not in configured:
        raise ValueError(
            f"this database holds the observations of station {', '.join(recorded) or '?'} "
            "from before stations were keys; configure that station (same name and schema) "
            "to migrate it")
    station = configured[recorded[0]]
    existing = set(inspector.get_view_names())
    for view in OWN_VIEWS:  # derived from the tables; recreated after
        if view in existing:
            connection.exec_driver_sql(f"DROP VIEW {view}")
    legacy = [c["name"] for c in inspector.get_columns("observations")]
    observations = Table(
        "observations", MetaData(),
        Column(STATION, String(64), primary_key=True),
        Column(TIMESTAMP_SQL_COLUMN, UTCDateTime(), primary_key=True),
        *(Column(name, Float) for name in legacy if name != TIMESTAMP_SQL_COLUMN))
    rebuild_table(connection, observations, {STATION: station.name})
    rebuild_table(connection, Base.metadata.tables["quarantined_rows"],
                  {STATION: station.name})
    for name in STATION_TABLES:
        connection.execute(text(f"UPDATE {name} SET {STATION} = :station "
                                f"WHERE {STATION} IS NULL"), {"station": station.name})
    for name in MODEL_NAME_TABLES:
        connection.execute(text(
            f"UPDATE {name} SET model_name = :prefix || model_name WHERE model_name NOT IN "
            f"{NAIVE_NAMES} AND model_name NOT LIKE '%/%'"), {"prefix": f"{station.name}/"})
    for name in ("forecasts", "backtest_forecasts"):
        connection.execute(text(f"UPDATE {name} SET target = :target WHERE target IS NULL"),
                           {"target": station.target_channel.column})
    connection.exec_driver_sql("DROP INDEX IF EXISTS uq_forecasts_issue")
    (unique,) = [i for i in Base.metadata.tables["forecasts"].indexes if i.unique]
    connection.execute(CreateIndex(unique, if_not_exists=True))  # the issue key, per station
    return True
