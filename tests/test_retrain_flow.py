"""Retrain under the real Prefect engine and a real SQLite file: register, gate, promote,
roll back, refuse corrupted artifacts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from forecasting.config import COMPOSED, FAMILIES, NETWORKS
from forecasting.station.schema import JENA
from forecasting.station.simulate import simulate_station
from registry.artifacts import ArtifactError, load_verified
from registry.champions import promote_version, rollback
from registry.store import open_store
from registry.versions import PromotionEventRow, champion, list_events, list_versions
from tests.conftest import NAME, flow_run_logs, retrain_small, station

def largest_file(directory: str) -> Path:
    """The model file of any family (`.keras`, `.npz` or an ensemble's JSON)."""
    return max((p for p in Path(directory).rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)


def champion_and_other(store):
    """The current champion and some other registered version."""
    with store.sessions() as session:
        current = champion(session, NAME)
        other = next(v for v in list_versions(session, NAME) if v.id != current.id)
    return current, other


FIXTURE_EPOCHS = 2  # the shared retrain's networks: enough to move off their base


@pytest.fixture(scope="module")
def trained(prefect_harness, tmp_path_factory):
    """One retrain of every family on 150 simulated days."""
    data = tmp_path_factory.mktemp("retrain")
    store = station(data, simulate_station("2019-01-01", 150, seed=8))
    board = retrain_small(data_dir=str(data), epochs=FIXTURE_EPOCHS)
    yield data, store, board
    store.close()


def passes_gate(event) -> bool:
    """What the event recorded: the candidate beat best naive on the mean, and in every
    6-hour group it beat it or was best naive's own forecast (a composed forecast)."""
    groups = event.groups
    return (event.candidate_mean < event.best_naive_mean
            and all(c <= n for c, n in zip(groups["candidate"], groups["best_naive"])))


def test_retrain_registers_every_candidate_and_promotes_the_gates_choice(
        trained):
    data, store, board = trained
    with store.sessions() as session:
        versions = list_versions(session, NAME)
        events = list_events(session, NAME)
        current = champion(session, NAME)
    composed = [v for v in versions if v.family == COMPOSED]
    assert sorted(v.family for v in versions if v not in composed) == sorted(FAMILIES)
    assert len(composed) <= 1 and len(events) == len(versions)
    assert [e.decision for e in events].count("promoted") == 1
    promoted = next(e for e in events if e.decision == "promoted")
    assert current is not None and current.version == promoted.candidate_version
    assert passes_gate(promoted) and "evidence: 1-6 h" in promoted.reason
    if composed:  # the member's own event says how it was combined with best naive
        member = next(e for e in events if e.reason.startswith(f"promoted as {COMPOSED} v"))
        assert "combined with best naive's (" in member.reason and "at 1-6 h" in member.reason
    family = {v.version: v.family for v in versions}
    winner = family[promoted.candidate_version]
    if composed:  # the composed version's member won the gate
        winner = next(family[e.candidate_version] for e in events
                      if e.reason.startswith(f"promoted as {COMPOSED} v"))
    for event in events:  # every other candidate lost for a reason its numbers confirm
        if event is promoted:
            continue
        assert event.decision == "rejected"
        mine = family[event.candidate_version]
        if event.reason.startswith(f"promoted as {COMPOSED} v"):
            assert composed and mine == winner
        elif event.reason.startswith("passed the gate, but "):
            (named, theirs, ours), = re.findall(
                r"^passed the gate, but (\w+) (?:has|is).*\(([\d.]+) vs ([\d.]+)\)$",
                event.reason)
            assert named == winner and mine != winner
            margin = 1.03 if "is within 3%" in event.reason else 1.001
            assert float(theirs) <= float(ours) * margin
        else:  # failed the gate: each failed comparison named holds on its numbers
            failed = re.findall(r"(?:mean|\+24 h|[\d-]+ h) MAE ([\d.]+) (>=|>) "
                                r"(?:best naive|champion) ([\d.]+)", event.reason)
            assert failed or event.reason.startswith("no horizon group beat"), event.reason
            for a, sign, b in failed:
                assert float(a) >= float(b) if sign == ">=" else float(a) > float(b)
    assert {row["decision"] for row in board} == {"promoted", "rejected"}
    # numbers first, in words a reader of the UI's table knows; the long reason last
    assert list(board[0])[:9] == [
        "family", "decision", "mean / best naive", "1-6 h / best naive", "7-12 h / best naive",
        "13-18 h / best naive", "19-24 h / best naive", "+24 h / best naive", "mean MAE"]
    assert list(board[0])[-2:] == ["version", "reason"]
    # every version's metrics are against the naive forecasts on its own backtest windows:
    # the linear families' on every fold, the networks' (and the ensemble's) the newest
    linear = {v.holdout_windows for v in versions if v.family in ("blend", "ridge")}
    costly = {v.holdout_windows for v in versions if v.family in (*NETWORKS, "ensemble")}
    assert len(linear) == len(costly) == 1 and min(linear) > min(costly)
    for v in versions:
        assert v.best_naive_mean < v.persistence_mean  # the daily cycle: seasonal helps


def test_champion_stays_when_the_new_best_is_worse(trained):
    """A GRU retrained after the first retrain is also fine-tuned from the GRU registered
    then (its data ended at the newest fold's cut-off or before), for at most `epochs`."""
    from forecasting.models.families import read_meta

    data, store, _ = trained
    with store.sessions() as session:
        before = champion(session, NAME)
        registered = {v.version: v for v in list_versions(session, NAME)}
    board = retrain_small(data_dir=str(data), families=["gru"], epochs=1)
    with store.sessions() as session:
        after = champion(session, NAME)
        (gru,) = [v for v in list_versions(session, NAME) if v.version not in registered]
    assert board[0]["decision"] == "rejected"
    assert board[0]["champion MAE"] is not None  # re-scored on this backtest's windows
    assert after.id == before.id
    training = read_meta(data / "artifacts" / gru.artifact_path)["training"]
    start = registered[int(training["warm_start"].removeprefix(f"{NAME} v"))]
    assert start.family == "gru" and start.train_end <= gru.train_end
    assert training["epochs_max"] == 1


def test_manual_promotion_and_rollback_are_recorded(trained):
    data, store, _ = trained
    current, other = champion_and_other(store)
    with store.sessions.begin() as session:
        promote_version(session, data / "artifacts", NAME, other.version,
                        "operator prefers it", "test")
    with store.sessions.begin() as session:
        assert champion(session, NAME).id == other.id
        rollback(session, data / "artifacts", NAME, "operator changed their mind", "test")
    with store.sessions() as session:
        assert champion(session, NAME).id == current.id
        events = list_events(session, NAME)
    assert [e.decision for e in events[-2:]] == ["manual", "rollback"]
    assert events[-2].candidate_version == other.version
    assert events[-1].previous_champion_version == other.version
    assert events[-1].reason == "operator changed their mind"


def test_corrupted_artifact_is_refused_and_nothing_changes(trained, tmp_path):
    data, store, _ = trained
    with store.sessions() as session:
        current = champion(session, NAME)
        victim = next(v for v in list_versions(session, NAME) if v.id != current.id)
        events_before = session.scalar(select(func.count()).select_from(PromotionEventRow))
    model_file = largest_file(data / "artifacts" / victim.artifact_path)
    original = open(model_file, "rb").read()
    try:
        corrupted = bytearray(original)
        corrupted[len(corrupted) // 2] ^= 0xFF
        open(model_file, "wb").write(bytes(corrupted))
        label = f"{NAME} v{victim.version}"
        with pytest.raises(ArtifactError, match=rf"{label}: .*sha256"):
            load_verified(victim.artifact_path, victim.artifact_sha256, label, data / "artifacts")
        with pytest.raises(ArtifactError, match=rf"{NAME} v{victim.version}"):
            with store.sessions.begin() as session:
                promote_version(session, data / "artifacts", NAME, victim.version, "try",
                                "test")
    finally:
        open(model_file, "wb").write(original)
    with store.sessions() as session:
        assert champion(session, NAME).id == current.id
        assert session.scalar(select(func.count()).select_from(PromotionEventRow)) == \
            events_before
    restored = load_verified(victim.artifact_path, victim.artifact_sha256, "restored",
                             data / "artifacts")
    assert restored.family == victim.family


def test_no_candidate_worse_than_best_naive_is_promoted_on_a_drifting_series(
        prefect_harness, tmp_path):
    """A slow random walk: persistence is the best possible forecast of it."""
    frame = simulate_station("2019-01-01", 90, seed=2)
    walk = 5 + np.cumsum(np.random.default_rng(3).normal(0, 0.02, len(frame)))
    frame["T (degC)"] = np.round(walk, 2)
    frame["Tpot (K)"] = np.round(walk + 274.15, 2)
    store = station(tmp_path, frame)
    # the ensemble listed first: it is still registered after its members
    retrain_small(data_dir=str(tmp_path), families=["ensemble", "ridge", "gru"], epochs=3)
    with store.sessions() as session:
        events = list_events(session, NAME)
        current = champion(session, NAME)
    store.close()
    promoted = [e for e in events if e.decision == "promoted"]
    assert len(events) in (3, 4) and len(promoted) <= 1
    assert all(passes_gate(e) for e in promoted)
    if current is not None:
        assert current.holdout_mean < current.best_naive_mean
        assert current.holdout_last <= current.best_naive_last


def test_crippled_candidate_is_rejected_by_the_gate(trained):
    """Spoil a trained network's correction layer: it must lose to best naive and be refused,
    with the failed comparisons named."""
    from forecasting.candidates import naive_baselines
    from forecasting.scoring.backtest import rolling_folds, score
    from forecasting.scoring.gate import decide_promotion
    from forecasting.features import station_windows
    from registry.observations import read_observations

    data, store, _ = trained
    with store.sessions() as session:
        gru = next(v for v in list_versions(session, NAME) if v.family == "gru")
        frame = read_observations(session, store.observations)
    model = load_verified(gru.artifact_path, gru.artifact_sha256, "gru", data / "artifacts")
    windows, _ = station_windows(frame, JENA, model.params)
    fold = rolling_folds(windows, 1, 7, 14)[0]
    kernel, bias = model.model.get_layer("correction").get_weights()
    model.model.get_layer("correction").set_weights([kernel, bias + 1.5])  # +1.5 sd
    crippled = score(model, fold.test)
    naive = score(naive_baselines(fold.train, model.params)["best_naive"], fold.test)
    assert crippled.mean > naive.mean
    decision = decide_promotion(crippled, naive, None)
    assert not decision.promote
    assert "mean MAE" in decision.reason and ">= best naive" in decision.reason


def test_broken_champion_falls_back_for_the_run_only_and_records_it(trained):
    from registry.champions import load_champion

    data, store, _ = trained
    with store.sessions() as session:  # not the ensemble: breaking any member breaks it
        current = champion(session, NAME)
        first, second = [v for v in list_versions(session, NAME)
                         if v.family != "ensemble" and v.id != current.id][:2]
    with store.sessions.begin() as session:
        promote_version(session, data / "artifacts", NAME, first.version, "the one before", "test")
        promote_version(session, data / "artifacts", NAME, second.version,
                        "to break it later", "test")
    model_file = largest_file(data / "artifacts" / second.artifact_path)
    original = open(model_file, "rb").read()
    try:
        open(model_file, "wb").write(original[: len(original) // 2])  # truncated
        for _ in range(2):  # the alias does not flip between runs
            with store.sessions.begin() as session:
                version, model = load_champion(session, data / "artifacts", NAME, "test")
            assert version.id == first.id and model.family == first.family
            with store.sessions() as session:
                assert champion(session, NAME).id == second.id
                event = list_events(session, NAME)[-1]
            assert event.decision == "fallback" and event.candidate_version == first.version
            assert f"v{second.version}" in event.reason and f"v{first.version}" in event.reason
    finally:
        open(model_file, "wb").write(original)
    with store.sessions.begin() as session:  # repaired: the champion is used again
        assert load_champion(session, data / "artifacts", NAME, "test")[0].id == second.id


def test_cli_lists_versions_and_refuses_an_unknown_version(trained):
    from typer.testing import CliRunner

    from flows.cli import app

    data, _, _ = trained
    runner = CliRunner()
    listed = runner.invoke(app, ["--data-dir", str(data), "models"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("\n* v") == 1
    refused = runner.invoke(app, ["--data-dir", str(data), "promote", "99", "--reason", "x"])
    assert refused.exit_code == 2
    assert "has no version 99" in refused.output


def test_retrain_with_less_than_one_window_is_refused_and_writes_nothing(prefect_harness,
                                                                         tmp_path):
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    station(tmp_path, simulate_station("2019-01-01", 5, seed=1)).close()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "sensorcast"), "--data-dir", str(tmp_path),
         "retrain", "--epochs", "1"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()})
    assert result.returncode == 2
    assert ("error: retrain failed for 1 of 1 station(s): jena: not retraining: no complete "
            "window") in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    # one line each: the station's task, the run's verdict, its end and the CLI's error; no
    # engine echo with an empty traceback
    assert "NoneType: None" not in result.stderr and "failed with state" not in result.stderr
    assert result.stderr.count("no complete window") == 4
    store = open_store(f"sqlite:///{tmp_path / 'sensorcast.db'}", JENA)
    with store.sessions() as session:
        assert list_versions(session, NAME) == [] and list_events(session, NAME) == []
    store.close()
    assert not (tmp_path / "artifacts").exists()


def test_retrain_with_invalid_families_ends_failed_with_the_reason(prefect_harness, tmp_path):
    from flows.retrain import retrain

    state = retrain(data_dir=str(tmp_path), families=["ensemble"], return_state=True)
    assert state.is_failed()
    assert state.message == ("not retraining: families: Value error, the ensemble averages "
                             "the other families, so it needs at least one of them beside it")
    assert not (tmp_path / "artifacts").exists()
    logs = flow_run_logs(state.state_details.flow_run_id, "Finished in state Failed")
    assert any(level == 40 and m.startswith("Not retraining: families:") for level, m in logs)
    assert not [m for _, m in logs if "Traceback" in m]  # an expected end, not a crash


def test_a_stored_row_dated_in_the_future_does_not_anchor_the_training_window(tmp_path):
    """Ingestion quarantines such rows now; one stored by older code (or by hand) must still
    not leave retraining with 'no complete window' for ever."""
    from datetime import UTC, datetime

    from flows.retrain import load_folds
    from forecasting.config import ForecastParams
    from forecasting.windows import NotEnoughData

    store = station(tmp_path, simulate_station("2019-01-01", 30, seed=1))
    with store.sessions.begin() as session:
        session.execute(store.observations.table.insert().values(
            station="jena", observed_at=datetime(2150, 1, 1, tzinfo=UTC),
            **{c.column: (c.minimum + c.maximum) / 2 for c in JENA.channels}))
    params = ForecastParams(lookback_hours=48, folds=2, fold_days=3, validation_days=3)
    loaded = load_folds.fn(store, params)
    store.close()
    assert not isinstance(loaded, NotEnoughData), loaded
    windows, folds, _, rows = loaded
    assert windows.times[-1].year == 2019 and len(folds) == 2 and rows == 30 * 144
    # Scored where the schedule issues (03 UTC and its neighbours), learnt from every hour.
    assert {h for f in folds for h in f.test.origin_times().hour} == params.scored_hours
    assert len(set(folds[0].train.origin_times().hour)) == 24


def test_a_champion_with_another_window_length_is_not_comparable_with_the_reason(trained,
                                                                                 tmp_path):
    """Changing `forecast.lookback_hours` while a champion exists used to crash every retrain
    (the champion was fed windows of the new length)."""
    from flows.retrain import score_champion
    from forecasting.config import ForecastParams
    from flows.settings import Settings
    from forecasting.scoring.backtest import Backtest
    from forecasting.features import station_windows
    from registry.observations import read_observations

    data, store, _ = trained
    params = ForecastParams(lookback_hours=24)
    with store.sessions() as session:
        windows, _ = station_windows(read_observations(session, store.observations), JENA,
                                     params)
    rival = score_champion(store, Settings(data_dir=data), NAME, Backtest([]), windows,
                              tmp_path)
    assert rival.version is not None and not rival.by_fold
    assert f"{NAME} v{rival.version.version} reads 48 samples and forecasts 24; the settings " \
           "now give 24 and 24" == rival.problem


def test_each_network_records_how_its_training_went(trained):
    from forecasting.models.isolated import SavedNetwork
    from forecasting.models.families import read_meta

    data, store, board = trained
    mine = {r["version"] for r in board}  # (other tests of this module retrain it too)
    with store.sessions() as session:
        networks = [v for v in list_versions(session, NAME)
                    if v.family in NETWORKS and v.version in mine]
    assert networks
    for version in networks:
        meta = read_meta(data / "artifacts" / version.artifact_path)
        t = meta["training"]
        assert 1 <= t["epochs_run"] <= t["epochs_max"] == FIXTURE_EPOCHS
        assert t["stopped_early"] == (t["epochs_run"] < FIXTURE_EPOCHS)
        assert t["kept_base"] == (t["best_val_mae"] >= t["base_val_mae"])
        summary = SavedNetwork(version.family, None, (), Path(), t["epochs_run"],
                               t).training_summary()
        assert f"validation MAE {t['best_val_mae']:.3f} (base {t['base_val_mae']:.3f})" in summary


def test_the_champion_is_scored_only_on_folds_after_its_training_data_ended(trained, tmp_path):
    """Its training span covers the older folds of a new backtest of the same data: scored
    there it would be judged on data it had seen, and look better than it is."""
    from flows.retrain import score_champion
    from forecasting.config import ForecastParams
    from flows.settings import Settings
    from forecasting.scoring.backtest import Backtest, rolling_folds
    from forecasting.features import station_windows
    from registry.observations import read_observations

    data, store, _ = trained
    with store.sessions() as session:
        current = champion(session, NAME)
        frame = read_observations(session, store.observations)
    params = ForecastParams(**current.params)
    windows, _ = station_windows(frame, JENA, params)
    folds = rolling_folds(windows, params.folds, params.fold_days, params.validation_days,
                          params.backtest_days)
    assert folds[0].cutoff.tz_localize("UTC") < current.train_end  # it has seen the oldest
    rival = score_champion(store, Settings(data_dir=data), NAME, Backtest(folds), windows,
                              tmp_path)
    unseen = [k for k, f in enumerate(folds) if f.cutoff.tz_localize("UTC") >= current.train_end]
    assert unseen and sorted(rival.by_fold) == unseen and not rival.problem
    assert f"champion v{current.version} compared on the {len(unseen)} fold(s) after its " \
           "training data ended" in rival.how(list(range(len(folds))))
