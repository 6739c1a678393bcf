"""Which version was champion at any past time, from the registry's append-only history."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from forecasting.station.schema import JENA
from registry.champions import promote_version, rollback
from registry.store import open_store
from registry.registration import register_version
from registry.versions import NewVersion, champion_at, record_event
from tests.conftest import tiny_blend


def _version(session, root):
    model, now = tiny_blend(), datetime.now(UTC)
    new = NewVersion(model_name="t", family="blend", params=model.params.model_dump(mode="json"),
                     train_start=now, train_end=now, rows=1, holdout_windows=1,
                     holdout_mae=(1.0,), persistence_mae=(2.0,), best_naive_mae=(2.0,),
                     seasonal_mae=(2.0,), library_versions={}, intervals={})
    return register_version(session, root, new, model)


def _tick() -> datetime:
    """A moment strictly between two registry events (they are stored to the second)."""
    time.sleep(1.1)
    moment = datetime.now(UTC)
    time.sleep(1.1)
    return moment


def test_the_champion_at_a_time_follows_promotions_and_rollbacks(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}", JENA)
    with store.sessions.begin() as session:
        v1, v2 = _version(session, tmp_path), _version(session, tmp_path)
    before_any = _tick()
    with store.sessions.begin() as session:
        record_event(session, "t", "promoted", "beat everything", "test", v1)
    while_v1 = _tick()
    with store.sessions.begin() as session:
        promote_version(session, tmp_path, "t", 2, "by hand", "test")
        record_event(session, "t", "rejected", "not better", "test", v1)  # moves nothing
        record_event(session, "t", "fallback", "v2 unreadable that run", "test", v1)
    while_v2 = _tick()
    with store.sessions.begin() as session:
        rollback(session, tmp_path, "t", "v2 was worse", "test")
    after_rollback = _tick()
    with store.sessions() as session:
        assert champion_at(session, "t", before_any) is None
        assert champion_at(session, "t", while_v1).id == v1.id
        assert champion_at(session, "t", while_v2).id == v2.id
        assert champion_at(session, "t", after_rollback).id == v1.id
    store.close()
