"""Prefect flows and the `sensorcast` CLI: thin wrappers over forecasting and registry."""

from flows.logs import drop_echoes

drop_echoes()  # every process that runs a flow (CLI, served, a worker's) imports this package

__all__ = ["cli", "ingest", "settings"]
