"""Prefect flows and the `sensorcast` CLI: thin wrappers over forecasting and registry."""

__all__ = ["cli", "ingest", "settings"]
