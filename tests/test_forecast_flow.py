"""The forecast flow under the real Prefect engine, a real SQLite file and real TensorFlow:
the SQL contract, idempotence, the best-naive fallback, refusals and no leakage."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from forecasting.station.simulate import simulate_station
from registry.forecasts import list_runs
from registry.versions import champion, list_events
from forecasting.station.schema import JENA
from tests.conftest import NAME, flow_run_logs, retrain_small, small_settings, station

AT = datetime(2021, 2, 20, 12, 0, tzinfo=UTC)  # well inside the simulated 60 days


def sql(data, query: str) -> list[tuple]:
    """Plain SQL on the database file, as a user would with the sqlite3 command line."""
    with sqlite3.connect(data / "sensorcast.db") as connection:
        return connection.execute(query).fetchall()


def copy_data_dir(source, target):
    """A second installation: the data directory copied (moved) as it is; the registry
    records artifact paths inside the store, so they hold in the copy."""
    shutil.copytree(source, target)


def run_forecast(data, **kwargs):
    from flows.forecast import forecast

    with small_settings():
        return forecast(data_dir=str(data), return_state=True, **kwargs)


@pytest.fixture(scope="module")
def with_champion(prefect_harness, tmp_path_factory):
    """60 simulated days and a briefly trained GRU as champion (2-day lookback, v1), promoted
    by hand if the gate finds 60 days too few for it to beat the best naive forecast, or
    promoted it composed with best naive (v2)."""
    from registry.champions import promote_version

    data = tmp_path_factory.mktemp("forecast")
    store = station(data, simulate_station("2021-01-01", 60, seed=4))
    retrain_small(data_dir=str(data), families=["gru"], epochs=2)
    with store.sessions.begin() as session:
        current = champion(session, NAME)
        if current is None or current.version != 1:
            promote_version(session, data / "artifacts", NAME, 1, "a champion to test", "test")
    store.close()
    return data


def test_no_champion_writes_24_labelled_best_naive_rows_once(prefect_harness, tmp_path):
    station(tmp_path, simulate_station("2021-01-01", 60, seed=1)).close()
    state = run_forecast(tmp_path, at=AT, days=2)
    assert state.is_completed(), state.message
    assert sql(tmp_path, "select count(*) from latest_forecast") == [(24,)]
    assert sql(tmp_path, "select distinct model_name, model_version from forecasts") == \
        [("best_naive", None)]
    latest = sql(tmp_path, "select issued_at, horizon_hours, target_time, value "
                           "from latest_forecast order by horizon_hours")
    assert latest[0][0] == "2021-02-20 12:00:00"
    assert [r[1] for r in latest] == list(range(1, 25))
    assert latest[-1][2] == "2021-02-21 12:00:00"
    observed = dict(sql(tmp_path, "select observed_at, t_degc from observations "
                                  "where observed_at between '2021-02-19' and '2021-02-21'"))
    now = observed["2021-02-20 12:00:00"]
    seasonal = [observed[(pd.Timestamp(r[2]) - pd.Timedelta(days=1)).strftime(
        "%Y-%m-%d %H:%M:%S")] for r in latest]
    assert all(r[3] in (now, day_before) for r, day_before in zip(latest, seasonal))
    assert latest[0][3] == now  # an hour ahead, persistence is the better naive forecast
    assert latest[11][3] == seasonal[11] != now  # 12 h ahead, the daily cycle wins
    logs = flow_run_logs(state.state_details.flow_run_id, "No usable champion")
    warning = next(m for _, m in logs if "No usable champion" in m)
    assert "promoted before that time" in warning and "--model current" in warning
    # the CLI's export: the same rows through pandas, in CSV and Parquet, in local time
    for out in (tmp_path / "latest.csv", tmp_path / "latest.parquet"):
        done = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "export", "latest",
                                        "--out", str(out), "--tz", "Europe/Berlin"])
        assert done.exit_code == 0 and "wrote 24 rows" in done.output, done.output
        back = (pd.read_csv(out) if out.suffix == ".csv" else pd.read_parquet(out))
        issued = pd.to_datetime(back.issued_at, utc=True)
        assert (issued == pd.Timestamp("2021-02-20 12:00", tz="UTC")).all()
        assert str(back.issued_at[0]).startswith("2021-02-20 13:00:00+01:00")
        assert back.value.tolist() == [r[3] for r in latest]
    period = tmp_path / "period.csv"
    done = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "export", "forecasts",
                                    "--start", "2021-02-19T12:00", "--end", "2021-02-20T12:00",
                                    "--out", str(period)])
    assert done.exit_code == 0, done.output
    assert pd.read_csv(period).issued_at.unique().tolist() == ["2021-02-19 12:00:00+00:00"]
    # Its 80 % interval, from its own errors over the last 28 days; 50 % and 95 % not asked.
    assert sql(tmp_path, "select count(*) from latest_forecast where lower_80 < value and "
                         "value < upper_80 and lower_50 is null") == [(24,)]
    # The factors its offsets were issued with, tracked from the station's verified
    # intervals: none were verified before the first issue.
    first = sql(tmp_path, "select distinct interval_factors from forecasts where issued_at = "
                          "(select min(issued_at) from forecasts)")
    assert [json.loads(f) for (f,) in first] == [{"80": [1.0, 1.0]}]

    again = run_forecast(tmp_path, at=AT, days=2)
    assert again.is_completed()
    assert sql(tmp_path, "select count(*) from forecasts") == [(72,)]
    runs = sql(tmp_path, "select status, rows_written from forecast_runs order by id")
    assert runs == [("issued", 24)] * 3 + [("issued", 0)] * 3


def test_forecast_skill_scores_each_forecast_against_what_was_observed(prefect_harness,
                                                                       tmp_path):
    station(tmp_path, simulate_station("2021-01-01", 60, seed=1)).close()
    assert run_forecast(tmp_path, at=AT - timedelta(days=1)).is_completed()
    rows = sql(tmp_path, """
        select s.horizon_hours, s.forecast, s.actual, s.error, s.abs_error,
               s.persistence_abs_error, s.seasonal_persistence_forecast,
               s.seasonal_persistence_abs_error, o.t_degc, d.t_degc
        from forecast_skill s join observations o on o.observed_at = s.target_time
        join observations d on d.observed_at = datetime(s.target_time, '-1 day')
        order by s.horizon_hours""")
    assert len(rows) == 24
    for (horizon, forecast, actual, error, abs_error, persistence_error, seasonal,
         seasonal_error, observed, day_before) in rows:
        assert actual == observed
        assert error == pytest.approx(forecast - actual)
        assert abs_error == pytest.approx(abs(forecast - actual))
        assert seasonal == day_before
        assert seasonal_error == pytest.approx(abs(day_before - actual))
        # this forecast is the best naive one: one of the two naive forecasts at each hour
        assert abs_error in (pytest.approx(persistence_error), pytest.approx(seasonal_error))


def test_forecast_as_of_t_ignores_observations_after_t(with_champion, tmp_path):
    """Change and delete every observation after t in a copy: the forecast is identical."""
    altered = tmp_path / "altered"
    copy_data_dir(with_champion, altered)
    cut = "2021-02-20 12:00:00"
    with sqlite3.connect(altered / "sensorcast.db") as connection:
        connection.execute(f"update observations set t_degc = t_degc + 7, p_mbar = p_mbar - 20 "
                           f"where observed_at > '{cut}' and observed_at < '2021-02-25'")
        connection.execute("delete from observations where observed_at >= '2021-02-25'")
    for data in (with_champion, altered):
        state = run_forecast(data, at=AT, model="current")
        assert state.is_completed(), state.message
    query = ("select target_time, value, model_name, model_version from forecasts "
             f"where issued_at = '{cut}' order by target_time")
    original, changed = sql(with_champion, query), sql(altered, query)
    assert len(original) == 24 and original[0][2:] == (NAME, 1)
    assert changed == original
    assert sql(with_champion, "select count(*) from forecast_skill where issued_at = "
                              f"'{cut}'") == [(24,)]


def test_champion_forecast_differs_from_persistence(with_champion):
    assert run_forecast(with_champion, at=AT + timedelta(hours=3),
                        model="current").is_completed()
    values = [r[0] for r in sql(with_champion, "select value from latest_forecast")]
    assert len(values) == 24 and np.ptp(values) > 0.1


def truncate(data):
    model = next((data / "artifacts").rglob("model.keras"))
    model.write_bytes(model.read_bytes()[:1000])


def delete(data):
    shutil.rmtree(next((data / "artifacts").rglob("v0001")))


def alter(data):
    model = next((data / "artifacts").rglob("model.keras"))
    content = bytearray(model.read_bytes())
    content[len(content) // 2] ^= 0x01
    model.write_bytes(bytes(content))


def record_other_checksum(data):
    with sqlite3.connect(data / "sensorcast.db") as connection:
        connection.execute("update model_versions set artifact_sha256 = case when "
                           "artifact_sha256 like '0%' then '1' else '0' end || "
                           "substr(artifact_sha256, 2)")


def point_outside_the_store(data):
    outside = data.parent / "elsewhere"
    shutil.copytree(next((data / "artifacts").rglob("v0001")), outside)
    with sqlite3.connect(data / "sensorcast.db") as connection:
        connection.execute("update model_versions set artifact_path = ?", (str(outside),))


def record_other_params(data):
    with sqlite3.connect(data / "sensorcast.db") as connection:
        connection.execute("update model_versions set params = replace(params, "
                           "'\"horizon_hours\": 24', '\"horizon_hours\": 12')")


def link_a_file_from_outside(data):
    model = next((data / "artifacts").rglob("model.keras"))
    outside = data.parent / "elsewhere.keras"
    model.rename(outside)
    model.symlink_to(outside)


@pytest.mark.parametrize(("spoil", "reason"), [
    (truncate, "sha256"), (delete, "unreadable"), (alter, "sha256"),
    (record_other_checksum, "sha256"), (point_outside_the_store, "outside the artifact store"),
    (record_other_params, "parameters differ"), (link_a_file_from_outside, "symbolic link"),
])
def test_refused_champion_artifact_falls_back_to_labelled_best_naive_and_records_why(
        with_champion, tmp_path, spoil, reason):
    from forecasting.station.schema import JENA
    from registry.store import open_store

    broken = tmp_path / "broken"
    copy_data_dir(with_champion, broken)
    spoil(broken)
    state = run_forecast(broken, at=AT + timedelta(days=1), model="current")
    assert state.is_completed(), state.message
    assert sql(broken, "select distinct model_name, model_version from latest_forecast") == \
        [("best_naive", None)]
    store = open_store(f"sqlite:///{broken / 'sensorcast.db'}", JENA)
    with store.sessions() as session:
        event = list_events(session, NAME)[-1]
        assert champion(session, NAME) is not None  # the alias is kept; nothing is erased
    store.close()
    assert event.decision == "fallback"
    assert reason in event.reason and "forecasting with the best naive" in event.reason


def test_stale_data_is_refused_with_a_clear_message_and_nothing_written(prefect_harness,
                                                                        tmp_path):
    store = station(tmp_path, simulate_station("2021-01-01", 60, seed=1))
    state = run_forecast(tmp_path, at=datetime(2021, 3, 5, tzinfo=UTC))
    assert state.is_failed()
    assert "newest observation is 2021-03-01 23:00 UTC" in state.message
    assert "max_data_age_minutes" in state.message
    assert sql(tmp_path, "select count(*) from forecasts") == [(0,)]
    with store.sessions() as session:
        runs = list_runs(session, "jena")
    store.close()
    assert [r.status for r in runs] == ["refused"]
    assert runs[0].message in state.message
    # The UI's log says why, at ERROR, and shows no engine traceback for this expected end.
    logs = flow_run_logs(state.state_details.flow_run_id, "Finished in state Failed")
    assert any(level == 40 and "Refused the forecast of jena as of 2021-03-05 00:00: newest "
               "observation" in message for level, message in logs)
    assert not [m for _, m in logs if "Traceback" in m]

    cli = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "forecast",
                                   "--at", "2021-03-05T00:00"])
    assert cli.exit_code == 2
    assert "error: forecast failed for 1 of 1 station(s): jena: refused 1 of 1 forecast(s)" \
        in cli.output
    assert "Traceback" not in cli.output


def test_a_raised_data_age_limit_still_reads_the_champions_whole_input_window(
        with_champion, tmp_path, monkeypatch):
    """The champion was trained under the 180-minute default; today's setting allows 10 h,
    and data 6 h old must be read far enough back for the whole window."""
    copy_data_dir(with_champion, tmp_path / "data")
    monkeypatch.setenv("SENSORCAST_FORECAST__MAX_DATA_AGE_MINUTES", "600")
    state = run_forecast(tmp_path / "data", at=datetime(2021, 3, 2, 5, 0, tzinfo=UTC),
                         model="current")
    assert state.is_completed(), state.message
    assert sql(tmp_path / "data", "select distinct model_name, model_version, issued_at "
               "from latest_forecast") == [(NAME, 1, "2021-03-01 23:00:00")]


def test_champion_window_with_a_long_gap_gives_labelled_best_naive_and_says_why(
        with_champion, tmp_path):
    gappy = tmp_path / "gappy"
    copy_data_dir(with_champion, gappy)
    with sqlite3.connect(gappy / "sensorcast.db") as connection:
        connection.execute("delete from observations where observed_at > '2021-02-19 02:00:00' "
                           "and observed_at < '2021-02-19 12:00:00'")  # longer than 6 h
    state = run_forecast(gappy, at=AT + timedelta(hours=1), model="current")
    assert state.is_completed(), state.message
    assert sql(gappy, "select distinct model_name, model_version from forecasts "
                      "where issued_at = '2021-02-20 13:00:00'") == [("best_naive", None)]
    (message,) = sql(gappy, "select message from forecast_runs")[-1]
    assert "misses 9 of 48 samples after filling input gaps up to 360 minutes" in message
    assert "a naive forecast instead" in message


def test_gap_at_the_newest_sample_is_refused(prefect_harness, tmp_path):
    frame = simulate_station("2021-01-01", 60, seed=1)
    gap = (frame.index > pd.Timestamp("2021-01-26 00:00")) & \
          (frame.index < pd.Timestamp("2021-01-26 07:30"))  # 7 h, longer than the input fill
    station(tmp_path, frame[~gap]).close()
    state = run_forecast(tmp_path, at=datetime(2021, 1, 26, 6, 30, tzinfo=UTC))
    assert state.is_failed()
    assert "no T (degC) at the newest sample time 2021-01-26 06:00 UTC" in state.message
    assert sql(tmp_path, "select count(*) from forecasts") == [(0,)]


def test_plot_shows_the_latest_forecast_as_a_png(prefect_harness, tmp_path):
    station(tmp_path, simulate_station("2021-01-01", 60, seed=1)).close()
    runner = CliRunner()
    before = runner.invoke(app, ["--data-dir", str(tmp_path), "plot"])
    assert before.exit_code == 2 and "no forecast" in before.output
    with small_settings():
        issued = runner.invoke(app, ["--data-dir", str(tmp_path), "forecast",
                                     "--at", "2021-01-29T06:00", "--days", "3"])
    assert issued.exit_code == 0, issued.output
    assert "issued 2021-01-29 06:00 UTC by best_naive" in issued.output
    # times say UTC, and the 80 % interval's bounds stand beside each value
    assert "target time (UTC)" in issued.output and "80 % interval" in issued.output
    first_hour = next(line for line in issued.output.splitlines()
                      if line.strip().startswith("1 h"))
    low, high = (float(x) for x in first_hour.split()[-3::2])
    assert low < float(first_hour.split()[4]) < high
    out = tmp_path / "out.png"
    plotted = runner.invoke(app, ["--data-dir", str(tmp_path), "plot", "--out", str(out)])
    assert plotted.exit_code == 0, plotted.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_a_backfill_uses_the_champion_of_each_time_and_marks_what_is_in_sample(
        with_champion, tmp_path):
    """The champion was promoted today: as of February 2021 there was none, so the backfill
    is the best naive forecast (out of sample by nature), never today's model. With
    `model="current"` today's champion forecasts, and only issues after its training data
    count as out of sample."""
    honest = tmp_path / "honest"
    copy_data_dir(with_champion, honest)  # (it holds forecasts of other tests too)
    runs_before = sql(honest, "select count(*) from forecast_runs")[0][0]
    assert run_forecast(honest, at=AT + timedelta(days=5), days=5).is_completed()
    assert sql(honest, "select distinct model_name, model_version from forecast_runs "
                       f"where id > {runs_before}") == [("best_naive", None)]
    assert sql(honest, "select distinct out_of_sample from forecasts "
                       "where model_name = 'best_naive'") == [(1,)]
    (train_end,), = sql(honest, "select train_end from model_versions where version = 1")

    current = tmp_path / "current"
    copy_data_dir(with_champion, current)
    assert run_forecast(current, at=AT + timedelta(days=5), days=5,
                        model="current").is_completed()
    rows = sql(current, "select issued_at, out_of_sample from forecasts "
                        f"where model_name = '{NAME}' group by issued_at order by issued_at")
    assert {flag for _, flag in rows} == {0, 1}
    assert all(flag == (issued >= train_end) for issued, flag in rows)
    first_run = sql(current, "select message from forecast_runs where as_of = "
                             f"'{AT:%Y-%m-%d %H:%M:%S}' order by id desc limit 1")
    assert first_run[0][0].startswith(f"in sample: v1 was trained on data up to "
                                      f"{train_end[:16]}")


def test_the_forecast_plot_artifact_carries_the_picture_itself(prefect_harness, tmp_path):
    """The Prefect UI showed only a path on the worker's disk; now the markdown artifact
    embeds the PNG, which the UI renders without any file server."""
    import asyncio
    import base64
    import re

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    station(tmp_path, simulate_station("2021-01-01", 60, seed=1)).close()
    assert run_forecast(tmp_path, at=AT, days=3).is_completed()

    async def latest(key: str):
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
            return max(found, key=lambda a: a.created).data

    for kind in ("forecast-plot", "skill-plot"):  # the skill of the last 30 days too
        markdown = asyncio.run(latest(f"{kind}-jena"))  # one of each per station
        image = re.fullmatch(rf"!\[{kind} of jena/t_degc_24h\]\(data:image/png;base64,(.+)\)",
                             markdown).group(1)
        assert base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "plots" / "skill.png").stat().st_size > 10_000


def test_forecasts_carry_calibrated_intervals_and_sql_gives_their_coverage(with_champion,
                                                                          tmp_path,
                                                                          monkeypatch):
    data = tmp_path / "data"
    copy_data_dir(with_champion, data)
    monkeypatch.setenv("SENSORCAST_INTERVALS", "[50, 80]")
    assert run_forecast(data, at=AT + timedelta(days=8), days=8,
                        model="current").is_completed()
    rows = sql(data, "select model_name, value, lower_50, upper_50, lower_80, upper_80, "
                     "lower_95, upper_95 from forecasts where issued_at > '2021-02-20 13:00' "
                     "and issued_at like '% 12:00:00'")  # (other tests' issues are at 15:00)
    assert len(rows) == 8 * 24 and {r[0] for r in rows} == {NAME}
    for _, value, low50, high50, low80, high80, low95, high95 in rows:
        assert low80 <= low50 <= high50 <= high80 and low80 < value < high80
        assert low95 is None and high95 is None  # not configured
    skill = sql(data, "select horizon_hours, actual, lower_80, upper_80 from forecast_skill "
                      "where out_of_sample and lower_80 is not null")
    coverage = {level: dict(sql(data, f"select horizon_hours, coverage from "
                                      f"forecast_coverage where level = {level}"))
                for level in (50, 80, 95)}
    assert coverage[95] == {} and len(coverage[80]) == 24
    for horizon in range(1, 25):
        mine = [low <= actual <= high for h, actual, low, high in skill if h == horizon]
        assert coverage[80][horizon] == pytest.approx(sum(mine) / len(mine))
    assert sql(data, "select min(verified) from forecast_coverage where level = 80") == \
        [(len(skill) // 24,)]
    # beside them the naive interval around best naive's value, and the score against it
    naive = sql(data, "select naive_value, naive_lower_80, naive_upper_80, naive_lower_95 "
                      "from forecasts where issued_at > '2021-02-20 13:00' "
                      "and issued_at like '% 12:00:00'")
    assert all(low < value < high and low95 is None for value, low, high, low95 in naive)
    groups = sql(data, "select first_hour, verified, skill from forecast_interval_skill "
                       "where level = 80 order by first_hour")
    assert [g[0] for g in groups] == [1, 7, 13, 19] and all(g[2] > 0 for g in groups)


def test_each_issue_is_self_corrected_by_what_was_verified_by_its_time(with_champion,
                                                                       tmp_path):
    """value = naive_value + weight (champion_value - naive_value) on every row; the weight
    is what the correction gives from the issues verified by each issue's time, the same
    for a backfill and for issues made one by one, as the schedule makes them."""
    from flows.settings import Settings
    from forecasting.scoring.correction import corrected_weights
    from registry.forecasts import verified_issues
    from registry.store import open_store

    backfilled, one_by_one = tmp_path / "backfilled", tmp_path / "one-by-one"
    for data in (backfilled, one_by_one):
        copy_data_dir(with_champion, data)
        sql(data, "delete from forecasts")  # (other tests' issues)
    assert run_forecast(backfilled, at=AT + timedelta(days=3), days=3,
                        model="current").is_completed()
    for day in range(4):
        assert run_forecast(one_by_one, at=AT + timedelta(days=day),
                            model="current").is_completed()
    query = ("select issued_at, target_time, value, champion_value, naive_value, weight "
             f"from forecasts where model_name = '{NAME}' order by 1, 2")
    rows = sql(backfilled, query)
    assert len(rows) == 4 * 24 and rows == sql(one_by_one, query)
    values = np.array([r[2:] for r in rows], np.float64)
    assert np.allclose(values[:, 0], values[:, 2] + values[:, 3] * (values[:, 1]
                                                                    - values[:, 2]), atol=2e-3)
    assert np.all((values[:, 3] >= 0) & (values[:, 3] <= 1))
    assert np.all(values[:24, 3] == 1)  # nothing verified yet: the GRU's own forecast
    store = open_store(Settings(data_dir=backfilled).db_url, JENA)
    last = (AT + timedelta(days=3)).replace(tzinfo=UTC)
    with store.sessions() as session:
        verified = verified_issues(session, "jena", last, 30)
    store.close()
    assert len(verified.age_days) == 3  # the three issues before, all verified by then
    expected = corrected_weights(np.ones(24), verified, 6)
    assert np.allclose(values[-24:, 3], expected, atol=1e-4)
    skill = sql(backfilled, "select avg(abs_error), avg(champion_abs_error), "
                            "avg(naive_abs_error) from forecast_skill where model_name = "
                            f"'{NAME}'")
    assert all(v is not None for v in skill[0])  # the uncorrected champion's skill beside
