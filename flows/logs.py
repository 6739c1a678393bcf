"""One log line per event. A task that returns a Failed state (a refusal: too little data,
a busy lease) is logged by Prefect twice, first as `Task run failed with state: ...` with an
empty traceback (`NoneType: None`), then as `Finished in state Failed(...)`: the first is
dropped. A task that raises keeps its traceback. And a CLI command need not announce the
temporary Prefect server it starts and stops around its run."""

from __future__ import annotations

import logging


class EchoOfAFailedState(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Task run failed with state:")


class TemporaryServerNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("Starting temporary server",
                                                   "Stopping temporary server"))


def drop_echoes() -> None:
    """Install the filter on Prefect's task-run logger (once per process)."""
    _install("prefect.task_runs", EchoOfAFailedState)


def drop_temporary_server_notices() -> None:
    _install("prefect", TemporaryServerNotice)


def _install(name: str, kind: type[logging.Filter]) -> None:
    logger = logging.getLogger(name)
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(kind())
