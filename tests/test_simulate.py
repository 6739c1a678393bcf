"""The synthetic station is deterministic, physically consistent and ingestible."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.station.simulate import Faults, simulate_station, station_csv, write_station_csv
from registry.ingestion import ingest_file


def test_same_seed_same_station_other_seed_other_weather():
    a = simulate_station("2020-01-01", 5, seed=3)
    pd.testing.assert_frame_equal(a, simulate_station("2020-01-01", 5, seed=3))
    assert not a.equals(simulate_station("2020-01-01", 5, seed=4))
    assert len(a) == 5 * 144
    assert a.index[0] == pd.Timestamp("2020-01-01 00:10")


def test_channels_obey_the_humidity_formulas():
    f = simulate_station("2020-06-01", 10, seed=1)
    t, rh, p = f["T (degC)"], f["rh (%)"], f["p (mbar)"]
    vp_max = 6.1078 * 10 ** (7.5 * t / (237.3 + t))
    np.testing.assert_allclose(f["VPmax (mbar)"], vp_max, atol=0.02)
    np.testing.assert_allclose(f["VPact (mbar)"], rh / 100 * vp_max, atol=0.03)
    np.testing.assert_allclose(f["VPdef (mbar)"], f["VPmax (mbar)"] - f["VPact (mbar)"],
                               atol=0.02)
    np.testing.assert_allclose(f["H2OC (mmol/mol)"], 1000 * f["VPact (mbar)"] / p, atol=0.02)
    np.testing.assert_allclose(f["Tpot (K)"], (t + 273.15) * (1000 / p) ** 0.286, atol=0.02)
    assert (f["Tdew (degC)"] <= t + 0.02).all()
    assert (f["max. wv (m/s)"] >= f["wv (m/s)"]).all()


def test_seasons_and_days_have_the_right_shape():
    f = simulate_station("2020-01-01", 366, seed=2)["T (degC)"]
    monthly = f.groupby(f.index.month).mean()
    assert monthly[7] - monthly[1] > 12
    hourly = f.groupby(f.index.hour).mean()
    assert hourly.idxmax() in range(12, 18)
    assert hourly.idxmin() in range(0, 8)


def test_clean_feed_ingests_completely(store, tmp_path):
    frame = simulate_station("2020-01-01", 3, seed=5)
    summary = ingest_file(store, write_station_csv(tmp_path / "s.csv", frame), 200)
    assert (summary.rows_inserted, summary.rows_quarantined) == (len(frame), 0)


def test_injected_faults_are_all_caught(store, tmp_path):
    frame = simulate_station("2020-01-01", 10, seed=5)
    faults = Faults(gaps=0.02, duplicates=0.02, sentinels=0.02, garbled=0.02)
    text = station_csv(frame, faults, seed=5)
    path = tmp_path / "faulty.csv"
    path.write_text(text)
    summary = ingest_file(store, path, 500)
    lines = text.count("\n") - 1
    assert summary.rows_read == lines
    assert summary.rows_present > 0  # the duplicates
    assert summary.rows_quarantined >= text.count("#@!garbled") + text.count("-9999.00") // 2
    assert summary.rows_inserted < len(frame)  # the gaps
    assert summary.rows_read == (
        summary.rows_inserted + summary.rows_present + summary.rows_quarantined
    )


def test_simulator_does_to_the_naive_forecasts_what_real_weather_does():
    """Real mid-latitude stations: persistence MAE at +12 h is 4.5-6 degC, seasonal persistence
    2.6-2.7 at every horizon; the daily range is about 6 degC in winter, 11-13 in summer."""
    f = simulate_station("2020-01-01", 366, seed=2)["T (degC)"]
    hourly = f[f.index.minute == 0]
    persistence_12 = (hourly.shift(-12) - hourly).abs().mean()
    seasonal_12 = (hourly.shift(-12) - hourly.shift(12)).abs().mean()
    assert 3.5 < persistence_12 < 7 and 1.8 < seasonal_12 < 3.2
    assert persistence_12 > 1.6 * seasonal_12
    persistence_1 = (hourly.shift(-1) - hourly).abs().mean()
    seasonal_1 = (hourly.shift(-1) - hourly.shift(23)).abs().mean()
    assert persistence_1 < 0.5 * seasonal_1  # an hour ahead, persistence wins
    daily = f.groupby(f.index.date).agg(lambda day: day.max() - day.min())
    month = pd.to_datetime(daily.index).month
    winter, summer = daily[month.isin([12, 1, 2])].mean(), daily[month.isin([6, 7, 8])].mean()
    assert 5 < winter < 8.5 and 10.5 < summer < 14


def test_a_simulated_network_has_climates_of_its_own_under_shared_moving_weather(tmp_path):
    """Stations differ in climate, and their pressure (the weather systems) is correlated
    best at a lag: a system reaches the stations one after the other. The written network
    is a stations file sensorcast reads."""
    from forecasting.station.simulate import simulate_network, write_network
    from forecasting.station.network import load_stations

    network = simulate_network("2021-01-01", 40, 4, seed=5)
    assert [name for name, *_ in network] == [f"station-00{i}" for i in range(1, 5)]
    means = [frame["T (degC)"].mean() for *_, frame in network]
    assert max(means) - min(means) > 1.0
    pressure = [frame["p (mbar)"].to_numpy() for *_, frame in network]
    lags = range(-144, 145, 6)
    best = {}
    for j in range(1, 4):
        a, b = pressure[0] - pressure[0].mean(), pressure[j] - pressure[j].mean()
        corr = [np.corrcoef(a[max(0, -k):len(a) - max(0, k)], b[max(0, k):len(b) + min(0, k)]
                            )[0, 1] for k in lags]
        best[j] = (max(corr), lags[int(np.argmax(corr))])
    assert all(c > 0.5 for c, _ in best.values())  # one region's weather
    assert any(lag != 0 for _, lag in best.values())  # moving across it

    sites = load_stations(write_network(tmp_path, network[:2]))
    assert [s.station.name for s in sites] == ["station-001", "station-002"]
    assert all((s.drop_dir / "simulated.csv").exists() for s in sites)
