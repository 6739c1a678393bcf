"""Windows equal a plain loop-based reference, around gaps and for other cadences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.features import regular_grid, sample
from forecasting.windows import make_windows


def reference_windows(data: np.ndarray, target_index: int, lookback: int, horizon: int):
    """The obvious loop: every end position whose window has no NaN."""
    inputs, targets = [], []
    for end in range(lookback - 1, len(data) - horizon):
        x = data[end - lookback + 1 : end + 1]
        y = data[end + 1 : end + horizon + 1, target_index]
        if not (np.isnan(x).any() or np.isnan(data[end + 1 : end + horizon + 1]).any()):
            inputs.append(x)
            targets.append(y)
    return np.array(inputs), np.array(targets)


def frame(n: int, freq: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2021-01-01", periods=n, freq=freq)
    return pd.DataFrame(rng.normal(size=(n, 3)), index=index, columns=["a", "temp", "c"])


@pytest.mark.parametrize("gaps", [[], [7], [3, 4, 5], [0, 29], [15, 16, 40]])
def test_windows_match_loop_reference_with_gaps(gaps):
    features = frame(50, "1h")
    features.iloc[gaps, 1] = np.nan
    windows = make_windows(features, "temp", lookback=6, horizon=4)
    x_ref, y_ref = reference_windows(features.to_numpy(np.float32), 1, 6, 4)
    np.testing.assert_allclose(windows.inputs(), x_ref)
    np.testing.assert_allclose(windows.targets(), y_ref)
    assert windows.inputs().dtype == np.float32


def test_ten_minute_station_is_sampled_every_sixth_row():
    raw = frame(600, "10min")
    hourly = sample(regular_grid(raw, 10, 0), 60)
    assert (hourly.index.minute == 0).all()
    np.testing.assert_array_equal(hourly.to_numpy(), raw.to_numpy()[::6])
    windows = make_windows(hourly, "temp", lookback=24, horizon=24)
    x_ref, y_ref = reference_windows(raw.to_numpy(np.float32)[::6], 1, 24, 24)
    np.testing.assert_allclose(windows.inputs(), x_ref)
    np.testing.assert_allclose(windows.targets(), y_ref)


def test_sixty_minute_station_uses_every_row():
    raw = frame(120, "60min").drop(index=pd.date_range("2021-01-02 05:00", periods=3, freq="h"))
    hourly = sample(regular_grid(raw, 60, 0), 60)
    assert len(hourly) == 120 and hourly.iloc[29:32].isna().all().all()
    windows = make_windows(hourly, "temp", lookback=10, horizon=5)
    x_ref, y_ref = reference_windows(hourly.to_numpy(np.float32), 1, 10, 5)
    np.testing.assert_allclose(windows.inputs(), x_ref)
    np.testing.assert_allclose(windows.targets(), y_ref)


@pytest.mark.parametrize("missing", [[], [9], [20, 21], [3, 30, 44]])
def test_targets_are_taken_only_where_present_inputs_wherever_filled(missing):
    """`target_missing` marks targets that must not be used though the (filled) inputs are."""
    features = frame(50, "1h")
    target_missing = np.zeros(50, bool)
    target_missing[missing] = True
    windows = make_windows(features, "temp", lookback=6, horizon=4,
                           target_missing=target_missing)
    data = features.to_numpy(np.float32)
    ends = [end for end in range(5, 50 - 4) if not target_missing[end + 1 : end + 5].any()]
    np.testing.assert_array_equal(windows.origins, ends)
    np.testing.assert_allclose(windows.inputs(), [data[e - 5 : e + 1] for e in ends])
    np.testing.assert_allclose(windows.targets(), [data[e + 1 : e + 5, 1] for e in ends])


def test_short_gaps_are_interpolated_long_gaps_stay_missing():
    raw = frame(200, "10min")
    short = raw.index[20:23]  # 30 minutes missing
    long = raw.index[100:110]  # 100 minutes missing
    regular = regular_grid(raw.drop(index=short.append(long)), 10, max_gap_minutes=60)
    assert len(regular) == 200
    np.testing.assert_allclose(
        regular.loc[short, "temp"],
        np.interp([1, 2, 3], [0, 4], raw["temp"].iloc[[19, 23]]),
    )
    assert regular.loc[long].isna().all().all()


def test_between_keeps_targets_inside_the_period():
    windows = make_windows(frame(100, "1h"), "temp", lookback=5, horizon=3)
    cut = windows.times[50]
    before = windows.between(None, cut)
    after = windows.between(cut, None)
    assert windows.times[before.origins + 3].max() < cut
    assert windows.times[after.origins].min() >= cut


def test_input_gaps_of_hours_are_filled_but_never_used_as_targets():
    from forecasting.config import ForecastParams
    from forecasting.features import build_features
    from forecasting.station.schema import JENA
    from forecasting.station.simulate import simulated_observations

    observed = simulated_observations("2021-01-01", 5, seed=1)
    gap = observed.index[300:318]  # three hours missing
    features, _, target_missing = build_features(observed.drop(index=gap), JENA,
                                                 ForecastParams())
    assert not features.isna().any().any()
    assert list(features.index[target_missing]) == [t for t in gap if t.minute == 0]
    longer = observed.index[300:348]  # eight hours: more than max_input_gap_minutes
    features, _, _ = build_features(observed.drop(index=longer), JENA, ForecastParams())
    assert features.isna().any(axis=1).sum() == 8


def test_windows_sent_to_a_job_process_come_back_with_their_times(tmp_path):
    """The times travel as nanoseconds whatever unit the index has (a microsecond index
    once came back as 1970)."""
    from forecasting.models.isolated import load_windows, save_windows

    times = pd.date_range("2021-03-01", periods=60, freq="h").as_unit("us")
    features = pd.DataFrame({"a": np.arange(60.0), "b": np.arange(60.0) * 2}, index=times)
    windows = make_windows(features, "a", lookback=24, horizon=6)
    save_windows(tmp_path / "w.npz", {"train": windows})
    back = load_windows(tmp_path / "w.npz")["train"]
    assert (back.times.tz_convert(None) == times).all()
    np.testing.assert_array_equal(back.origins, windows.origins)
