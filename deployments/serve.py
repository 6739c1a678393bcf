"""Serve the deployments of `deployments/prefect.yaml` from this one process.

No work pool or worker is needed: `python deployments/serve.py` (or `make serve`, which also
starts a local Prefect server) registers the deployments with their schedules and runs them
here until stopped. Schedules are not paused on shutdown, so a restart picks them up again.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from pathlib import Path

import yaml
from prefect import Flow, serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Interval, Schedule

ROOT = Path(__file__).resolve().parents[1]
PREFECT_FILE = ROOT / "deployments" / "prefect.yaml"


def entrypoint_flow(entrypoint: str) -> Flow:
    """`flows/ingest.py:ingest` (root-relative, as in prefect.yaml) -> the flow object."""
    path, _, name = entrypoint.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name, None)
    if not isinstance(flow, Flow):
        raise ValueError(f"{entrypoint} is not a Prefect flow")
    return flow


def schedule(spec: dict) -> Schedule:
    if "cron" in spec:
        return Cron(spec["cron"], timezone=spec.get("timezone"))
    return Interval(timedelta(seconds=spec["interval"]), timezone=spec.get("timezone"))


def load_deployments(prefect_file: Path = PREFECT_FILE) -> list[RunnerDeployment]:
    """The deployments of prefect.yaml, ready for `prefect.serve`."""
    spec = yaml.safe_load(Path(prefect_file).read_text())
    return [
        entrypoint_flow(d["entrypoint"]).to_deployment(
            name=d["name"], description=d.get("description"), tags=d.get("tags"),
            parameters=d.get("parameters") or {},
            schedules=[schedule(s) for s in d.get("schedules", [])],
            concurrency_limit=ConcurrencyLimitConfig(**d["concurrency_limit"]),
            triggers=[DeploymentEventTrigger(**t) for t in d.get("triggers", [])],
        )
        for d in spec["deployments"]
    ]


if __name__ == "__main__":
    serve(*load_deployments(), pause_on_shutdown=False)
