"""Bringing an existing database up to the current tables without losing a row.

The schema only ever grows by nullable columns (the SQL contract: columns are only added),
so the migration is explicit and small: every column the tables declare but the database
lacks is added with `ALTER TABLE ... ADD COLUMN`, NULL in the rows already there.
"""

from __future__ import annotations

from sqlalchemy import Connection, MetaData, inspect
from sqlalchemy.schema import CreateColumn


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
