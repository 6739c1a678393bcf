"""Pure forecasting library: settings, station schema, parsing/validation, simulation, models."""

__all__ = ["config", "csvfile", "schema", "simulate", "validation"]
