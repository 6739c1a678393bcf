"""Flow `ingest`: take new station files (one file or the drop folder) into the database."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.settings import run_name, settings_from
from registry.ingestion import (IngestSummary, files_to_ingest, ingest_file,
                                quarantine_examples)
from registry.store import Store, open_store


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10],
      task_run_name="ingest {path.name}")
def ingest_one(store: Store, path: Path, chunk_rows: int) -> IngestSummary:
    """Validate and store one file; bad rows go to quarantine, a file that is not the
    station's CSV is refused on its own (the others go on); retried only for database
    errors."""
    return ingest_file(store, path, chunk_rows)


@flow(name="ingest", flow_run_name=run_name("ingest"))
def ingest(path: str | None = None, data_dir: str | None = None,
           database_url: str | None = None, station_schema: str | None = None) -> list[dict]:
    """Ingest a CSV file, or every new file of the drop folder (default: data_dir/incoming)."""
    logger = get_run_logger()
    settings = settings_from(data_dir, database_url, station_schema)
    if path:
        source = Path(path)
    else:
        source = settings.drop_dir
        source.mkdir(parents=True, exist_ok=True)
    files, refused = files_to_ingest(source)
    logger.info("Found %d file(s) in %s", len(files), source)
    for entry in refused:
        logger.error("Refused %s: it points outside the drop folder (%s)", entry,
                     entry.resolve())
    store = open_store(settings.db_url, settings.station)
    try:
        summaries = [ingest_one(store, f, settings.chunk_rows) for f in files]
        examples = {s.sha256: quarantine_examples(store, s.sha256) for s in summaries
                    if s.rows_quarantined}
    finally:
        store.close()
    for s in summaries:
        if s.status == "refused":
            logger.error("%s: refused: %s", s.source, s.message)
            continue
        if s.status == "skipped":
            logger.info("%s: skipped: %s", s.source, s.message)
            continue
        logger.info(
            "%s: %s, %d read, %d inserted, %d already present, %d quarantined%s",
            s.source, s.status, s.rows_read, s.rows_inserted, s.rows_present,
            s.rows_quarantined, f" (ignored columns: {', '.join(s.extra_columns)})"
            if s.extra_columns else "",
        )
        if s.rows_quarantined:
            logger.warning("%s: %d row(s) quarantined, e.g. %s (all of them: select "
                           "line_number, reason, raw from quarantined_rows where sha256 = "
                           "'%s')", s.source, s.rows_quarantined,
                           "; ".join(f"line {n}: {why}" for n, why in examples[s.sha256]),
                           s.sha256)
    rows = [summary_row(s) for s in summaries]
    create_table_artifact(key="ingest-summary", table=rows or [{"files": 0}],
                          description=f"Ingest of {source}")
    return rows


def summary_row(summary: IngestSummary) -> dict:
    """What matters first (file, outcome, counts, why), the checksum last, so a table in the
    UI shows it without scrolling."""
    row = asdict(summary)
    row["extra_columns"] = ", ".join(summary.extra_columns)
    newest = summary.newest_observation
    row["newest_observation"] = newest.isoformat() if newest else None
    row["file"] = Path(summary.source).name
    lead = ["file", "status", "rows_read", "rows_inserted", "rows_present", "rows_quarantined",
            "message", "newest_observation"]
    return {k: row[k] for k in [*lead, *(k for k in row if k not in lead)]}
