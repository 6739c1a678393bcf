"""Flow `simulate-feed`: on the demo station, the next rows of its simulated future arrive in
the drop folder as time passes, so `make serve` keeps every scheduled flow working (ingest
finds new files, forecasts are never stale). Elsewhere it does nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from prefect import flow, get_run_logger

from flows.settings import as_utc, run_name, settings_from
from forecasting.station.simulate import feed_due

DEMO_FEED = "demo/feed.csv"  # under the data directory, written by `sensorcast demo`


@flow(name="simulate-feed", flow_run_name=run_name("simulate-feed"))
def simulate_feed(data_dir: str | None = None, now: datetime | None = None) -> str | None:
    """Write the demo station's rows up to `now` (default: the clock) that were not fed yet
    into the drop folder; returns the new file, or None."""
    logger = get_run_logger()
    settings = settings_from(data_dir)
    source = settings.data_dir / DEMO_FEED
    if not source.exists():
        logger.info("No demo station here (%s is written by `sensorcast demo`): nothing to "
                    "simulate", source)
        return None
    moment = pd.Timestamp(as_utc(now) if now else datetime.now(UTC))
    written = feed_due(source, settings.drop_dir(settings.stations[0].name), moment)
    if written is None:
        logger.info("No new demo rows due by %s UTC", f"{moment:%Y-%m-%d %H:%M}")
        return None
    logger.info("Wrote the demo station's new rows to %s", written)
    return str(written)
