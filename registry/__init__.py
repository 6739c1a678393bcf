"""The persistent system of record: tables, ingestion and queries (never Prefect)."""

__all__ = ["db", "ingestion", "observations", "store", "tables"]
