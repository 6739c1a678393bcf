"""Registering versions beside other writers and after crashes: numbers are never shared,
a crash leaves nothing half-registered, and a champion moved by hand is never overridden by
a stale comparison. Real processes, a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from forecasting.candidates import fit_candidates
from forecasting.config import ForecastParams
from flows.settings import Settings
from forecasting.scoring.backtest import Scores, backtest
from forecasting.features import station_windows
from forecasting.station.schema import JENA
from forecasting.station.simulate import simulated_observations
from registry.champions import promote_version
from registry.leases import held
from registry.registration import inconsistencies
from registry.store import open_store
from registry.versions import champion, list_events, list_versions

# Registrations as the retrain does them, one after the other: lock, move orphans aside,
# save, record. With "crash", the process kills itself after the version is saved and
# recorded but before the transaction commits (a real SIGKILL at the most dangerous moment).
REGISTER = """
import os, signal, sys
from datetime import UTC, datetime
from pathlib import Path
from forecasting.station.schema import JENA
from registry.registration import lock_model, move_orphans_aside, register_version
from registry.store import open_store
from registry.versions import NewVersion
from tests.conftest import tiny_blend

url, root, crash = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "crash"
model = tiny_blend()
now = datetime.now(UTC)
new = NewVersion(model_name="t", family="blend", params=model.params.model_dump(mode="json"),
                 train_start=now, train_end=now, rows=1, holdout_windows=1,
                 holdout_mae=(1.0, 1.0, 1.0), persistence_mae=(2.0, 2.0, 2.0),
                 best_naive_mae=(2.0, 2.0, 2.0), seasonal_mae=(2.0, 2.0, 2.0),
                 library_versions={}, intervals={})
store = open_store(url, JENA)
for _ in range(int(sys.argv[4])):
    with store.sessions.begin() as session:
        lock_model(session, "t")
        moved = move_orphans_aside(session, root, "t")
        version = register_version(session, root, new, model)
        if crash:
            os.kill(os.getpid(), signal.SIGKILL)
    print(version.version, len(moved))
"""


def register(tmp_path: Path, url: str, crash: bool = False, times: int = 1
             ) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", REGISTER, url, str(tmp_path / "artifacts"),
         "crash" if crash else "ok", str(times)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def test_two_processes_registering_at_once_never_share_a_version(tmp_path, database_url):
    open_store(database_url, JENA).close()
    numbers = []
    # five processes started together, each registering four versions one after another
    rivals = [register(tmp_path, database_url, times=4) for _ in range(5)]
    for process in rivals:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        numbers.extend(int(line.split()[0]) for line in out.splitlines())
    assert sorted(numbers) == list(range(1, 21))
    store = open_store(database_url, JENA)
    with store.sessions() as session:
        assert [v.version for v in list_versions(session, "t")] == list(range(1, 21))
        assert inconsistencies(session, tmp_path / "artifacts") == []
    store.close()


def test_a_registration_killed_before_commit_leaves_nothing_registered_and_is_recovered(
        tmp_path, database_url):
    open_store(database_url, JENA).close()
    assert register(tmp_path, database_url).wait(timeout=120) == 0
    killed = register(tmp_path, database_url, crash=True)
    assert killed.wait(timeout=120) == -9
    store = open_store(database_url, JENA)
    with store.sessions() as session:
        assert [v.version for v in list_versions(session, "t")] == [1]  # no half version
        assert inconsistencies(session, tmp_path / "artifacts") == [
            f"{tmp_path / 'artifacts' / 't' / 'v0002'} has no version row"]
    recovered = register(tmp_path, database_url)
    out, err = recovered.communicate(timeout=120)
    assert recovered.returncode == 0, err
    assert out.split() == ["2", "1"]  # v2 again, one orphan moved aside
    with store.sessions() as session:
        assert [v.version for v in list_versions(session, "t")] == [1, 2]
        assert inconsistencies(session, tmp_path / "artifacts") == []
    store.close()
    assert [p.name[:5] for p in (tmp_path / "artifacts" / "t" / ".orphaned").iterdir()] == [
        "v0002"]


@pytest.fixture(scope="module")
def small_backtest(tmp_path_factory):
    params = ForecastParams(lookback_hours=48, families=("blend", "ridge"), folds=2,
                            fold_days=3, validation_days=3)
    windows, relative = station_windows(simulated_observations("2021-03-01", 40, seed=3), JENA,
                                        params)
    work = tmp_path_factory.mktemp("fit")
    return params, backtest(windows, lambda fold, _: fit_candidates(fold, params, relative, work),
                            params.folds, params.fold_days, params.validation_days)


def test_a_champion_promoted_by_hand_during_a_retrain_is_not_overridden(small_backtest,
                                                                          tmp_path):
    from flows.retrain import ChampionScores, register_and_gate

    params, result = small_backtest
    settings = Settings(data_dir=tmp_path)
    store = open_store(settings.db_url, JENA)
    with held(store.sessions, "retrain t", 0) as lease:
        register_and_gate(store, settings, lease, "t", result, 100, ChampionScores(None),
                             params, "test")
    with store.sessions.begin() as session:
        scored, other = [v for v in list_versions(session, "t") if v.family in params.families]
        promote_version(session, settings.artifact_dir, "t", scored.version, "first", "cli")
    # A retrain scores v1 as the champion; meanwhile an operator promotes v2.
    with store.sessions.begin() as session:
        promote_version(session, settings.artifact_dir, "t", other.version, "by hand", "cli")
    weak = Scores(tuple(99.0 for _ in range(params.horizon_steps)),
                  result.scores("best_naive").windows)  # easy to beat
    with held(store.sessions, "retrain t", 0) as lease:
        second, _ = register_and_gate(store, settings, lease, "t", result, 100,
                                         ChampionScores(scored, weak, [0, 1]), params, "test")
    with store.sessions() as session:
        assert champion(session, "t").id == other.id
        events = list_events(session, "t")[-2:]
    store.close()
    assert {r["decision"] for r in second} == {"rejected"}
    for event in events:
        assert f"the champion became t v{other.version} during this retrain" in event.reason


def test_an_orphan_folder_of_a_station_qualified_model_is_reported(tmp_path, database_url):
    """Model names carry their station (`jena/t_degc_24h`), so versions lie a level deeper."""
    store = open_store(database_url, JENA)
    root = tmp_path / "artifacts"
    orphan = root / "jena" / "t_degc_24h" / "v0003"
    orphan.mkdir(parents=True)
    (orphan / "model.json").write_text("{}")
    (root / "jena" / "t_degc_24h" / ".orphaned" / "v0001-x").mkdir(parents=True)
    with store.sessions() as session:
        assert inconsistencies(session, root) == [f"{orphan} has no version row"]
    store.close()
