"""A synthetic Jena-format station: plausible weather, physically consistent channels.

Temperature = seasonal cycle + daily cycle (damped by cloud) + multi-day weather systems.
Part of the weather systems shows up in pressure and wind direction about 18 hours before it
reaches temperature, as fronts do, so a model that reads the inputs can beat persistence at
+24 h; the rest (air masses, cloud) is not announced, so it cannot beat it by much. Daily
range, and how much seasonal persistence beats persistence at 6-18 h, are close to real
mid-latitude stations (6 degC in winter, 11-13 in summer; see `tests/test_simulate.py`).
Humidity channels are derived from T, p and rh with the standard (Magnus) formulas the
Jena station uses, so Tdew, VPmax, VPact, VPdef, sh, H2OC, Tpot and rho agree with each other.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from forecasting.station.schema import JENA

SENTINEL = -9999.0


@dataclass(frozen=True)
class Faults:
    """Fractions of rows to spoil, for exercising validation; all zero by default."""

    gaps: float = 0.0  # rows dropped, in blocks of up to a few hours
    duplicates: float = 0.0  # rows repeated verbatim
    sentinels: float = 0.0  # wind values replaced by -9999
    garbled: float = 0.0  # lines replaced by junk


@dataclass(frozen=True)
class Climate:
    """Where a simulated station is: the defaults are Jena's lowland mid-latitude climate."""

    mean_c: float = 9.5  # annual mean temperature
    seasonal_c: float = 9.5  # half the difference between summer and winter means
    daily_scale: float = 1.0  # daily range relative to Jena's
    pressure_mbar: float = 990.0  # mean station pressure (lower up a hill)


def simulate_station(start: str | pd.Timestamp, days: int, seed: int = 0,
                     climate: Climate = Climate(), weather: np.ndarray | None = None
                     ) -> pd.DataFrame:
    """Clean 10-minute station data in local (station) time, columns named as in the file.
    `weather` (unit variance, one value per row) replaces the station's own weather systems,
    so stations of a network can share them."""
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    rng = np.random.default_rng(seed)
    cadence = JENA.cadence_minutes
    n = days * 1440 // cadence
    index = pd.date_range(pd.Timestamp(start) + pd.Timedelta(minutes=cadence), periods=n,
                          freq=f"{cadence}min")
    steps_per_day = 1440 / cadence
    doy = (index.day_of_year.to_numpy() - 1 + index.hour.to_numpy() / 24) / 365.25
    hour = index.hour.to_numpy() + index.minute.to_numpy() / 60
    summer = 0.5 - 0.5 * np.cos(2 * np.pi * (doy - 20 / 365.25))  # 0 in mid-Jan, 1 in mid-Jul

    own = _ou(rng, n, tau=3.0 * steps_per_day)  # synoptic systems, unit variance
    weather = own if weather is None else weather
    cloud = 1 / (1 + np.exp(-(1.2 * _ou(rng, n, tau=1.0 * steps_per_day) - 0.6 * weather)))
    lag = int(18 * 60 / cadence)
    arriving = np.concatenate([np.full(lag, weather[0]), weather[:-lag]])
    trend = weather - np.concatenate([np.full(lag, weather[0]), weather[:-lag]])

    daily_amplitude = climate.daily_scale * (3.2 + 3.8 * summer) * (1.0 - 0.55 * cloud)
    t_true = (
        climate.mean_c - climate.seasonal_c * np.cos(2 * np.pi * (doy - 20 / 365.25))
        + daily_amplitude * np.cos(2 * np.pi * (hour - 15) / 24)
        + 2.5 * arriving
        + 3.0 * _ou(rng, n, tau=2.5 * steps_per_day)  # air masses that pressure does not show
        + 0.3 * _ou(rng, n, tau=steps_per_day / 8)
    )
    p = (climate.pressure_mbar - 7.0 * weather + 0.6 * np.cos(2 * np.pi * hour / 12)
         + 0.05 * rng.standard_normal(n))
    rh = 92 - (18 + 12 * summer) * (1 - cloud) * (0.6 + 0.4 * np.cos(2 * np.pi * (hour - 15) / 24))
    rh = np.clip(rh - 6 * summer + 4 * _ou(rng, n, tau=steps_per_day / 2), 12, 100)

    t = t_true + 0.03 * rng.standard_normal(n)
    vp_max = 6.1078 * 10 ** (7.5 * t / (237.3 + t))
    vp_act = rh / 100 * vp_max
    log_ratio = np.log10(vp_act / 6.1078)
    t_dew = 237.3 * log_ratio / (7.5 - log_ratio)
    t_kelvin = t + 273.15
    wv = np.exp(0.3 + 0.35 * np.abs(weather) + 0.25 * np.cos(2 * np.pi * (hour - 14) / 24)
                + 0.4 * _ou(rng, n, tau=steps_per_day / 4))
    wd = (225 + 70 * np.tanh(trend) + 40 * _ou(rng, n, tau=steps_per_day / 3)) % 360

    values = {
        "p (mbar)": p,
        "T (degC)": t,
        "Tpot (K)": t_kelvin * (1000 / p) ** 0.286,
        "Tdew (degC)": t_dew,
        "rh (%)": rh,
        "VPmax (mbar)": vp_max,
        "VPact (mbar)": vp_act,
        "VPdef (mbar)": vp_max - vp_act,
        "sh (g/kg)": 622 * vp_act / (p - 0.378 * vp_act),
        "H2OC (mmol/mol)": 1000 * vp_act / p,
        "rho (g/m**3)": 1e5 * ((p - vp_act) / (287.05 * t_kelvin) + vp_act / (461.5 * t_kelvin)),
        "wv (m/s)": wv,
        "max. wv (m/s)": wv * (1.3 + 0.5 * rng.random(n)),
        "wd (deg)": wd,
    }
    frame = pd.DataFrame({k: np.round(v, 2) for k, v in values.items()}, index=index)
    frame.index.name = JENA.timestamp_column
    return frame


def simulate_network(start: str | pd.Timestamp, days: int, stations: int, seed: int = 0
                     ) -> list[tuple[str, Climate, pd.DataFrame]]:
    """`stations` stations of one region, named `station-001`, ...: each its own climate
    (warmer or colder, more or less continental, some up a hill) and local weather, under
    shared weather systems that cross the region from west to east, reaching each station
    up to a day after the westernmost."""
    rng = np.random.default_rng(seed)
    steps_per_day = 1440 / JENA.cadence_minutes
    n = days * 1440 // JENA.cadence_minutes
    reach = int(steps_per_day)  # the longest delay across the region: one day
    systems = _ou(rng, n + reach, tau=3.0 * steps_per_day)
    network = []
    for i in range(stations):
        height = rng.uniform(0, 600)  # m above the lowland stations
        climate = Climate(mean_c=rng.uniform(7.0, 12.0) - 0.0065 * height,
                          seasonal_c=rng.uniform(7.0, 12.0),
                          daily_scale=rng.uniform(0.8, 1.2),
                          pressure_mbar=990.0 - height / 8.3)
        delay = int(rng.integers(0, reach + 1))
        local = _ou(rng, n, tau=2.0 * steps_per_day)
        weather = 0.85 * systems[reach - delay:reach - delay + n] + np.sqrt(1 - 0.85**2) * local
        network.append((f"station-{i + 1:03d}", climate,
                        simulate_station(start, days, seed * 1000 + i, climate, weather)))
    return network


def simulate_until(end: pd.Timestamp, days: int, seed: int = 0) -> pd.DataFrame:
    """`days` of station data whose last row is at `end` (UTC, floored to the cadence), so a
    demo or test station is current: its newest forecast is today's."""
    first, last = _span_until(end, days)
    frame = simulate_station(first, days + 1, seed)
    return frame[frame.index <= last]


def network_until(end: pd.Timestamp, days: int, stations: int, seed: int = 0
                  ) -> list[tuple[str, Climate, pd.DataFrame]]:
    """`simulate_network` whose stations' last rows are at `end` (as `simulate_until`)."""
    first, last = _span_until(end, days)
    return [(name, climate, frame[frame.index <= last])
            for name, climate, frame in simulate_network(first, days + 1, stations, seed)]


def _span_until(end: pd.Timestamp, days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(first day, last row) in station local time of `days` ending at `end` (UTC)."""
    last = pd.Timestamp(end).tz_convert(JENA.timezone).tz_localize(None).floor(
        f"{JENA.cadence_minutes}min")
    return last.floor("D") - pd.Timedelta(days=days), last


def station_csv(frame: pd.DataFrame, faults: Faults = Faults(), seed: int = 0) -> str:
    """The frame as the station writes it: quoted header, `dd.mm.yyyy HH:MM:SS`, 2 decimals."""
    rng = np.random.default_rng(seed + 1)
    frame = frame.copy()
    n = len(frame)
    if faults.sentinels:
        hit = rng.random(n) < faults.sentinels
        frame.loc[hit, ["wv (m/s)", "max. wv (m/s)"]] = SENTINEL
    if faults.gaps:
        starts = np.flatnonzero(rng.random(n) < faults.gaps / 6)
        drop = np.unique(np.concatenate([s + np.arange(rng.integers(1, 12)) for s in starts]
                                        or [np.array([], int)]))
        frame = frame.drop(frame.index[drop[drop < n]])
    if faults.duplicates:
        again = rng.random(len(frame)) < faults.duplicates
        frame = pd.concat([frame, frame[again]]).sort_index(kind="stable")
    body = frame.to_csv(header=False, float_format="%.2f", date_format=JENA.timestamp_format,
                        lineterminator="\n")
    header = ",".join(f'"{name}"' for name in [frame.index.name, *frame.columns])
    if not faults.garbled:
        return header + "\n" + body
    lines = body.splitlines()
    for i in np.flatnonzero(rng.random(len(lines)) < faults.garbled).tolist():
        lines[i] = lines[i][: rng.integers(3, 30)] + "#@!garbled"
    return header + "\n" + "\n".join(lines) + "\n"


def write_station_csv(path: Path, frame: pd.DataFrame, faults: Faults = Faults(),
                      seed: int = 0) -> Path:
    """Write the station file in one go, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with io.open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(station_csv(frame, faults, seed))
    return path


def write_network(folder: Path, network: list[tuple[str, Climate, pd.DataFrame]],
                  faults: Faults = Faults(), seed: int = 0) -> Path:
    """Each station's file into its drop folder `incoming/<name>/`, and `stations.toml`
    listing them (Jena-format stations: the built-in schema); returns the stations file."""
    folder = Path(folder)
    entries = []
    for i, (name, climate, frame) in enumerate(network):
        write_station_csv(folder / "incoming" / name / "simulated.csv", frame, faults, seed + i)
        entries.append(
            f'[[stations]]\nname = "{name}"\ndrop_dir = "incoming/{name}"\n'
            f"# simulated: mean {climate.mean_c:.1f} degC, seasons +-{climate.seasonal_c:.1f}, "
            f"daily range x{climate.daily_scale:.2f}, {climate.pressure_mbar:.0f} mbar\n")
    stations = folder / "stations.toml"
    stations.write_text("\n".join(entries), encoding="utf-8")
    return stations


def _ou(rng: np.random.Generator, n: int, tau: float) -> np.ndarray:
    """A unit-variance Ornstein-Uhlenbeck (AR(1)) series with correlation time `tau` steps."""
    a = np.exp(-1.0 / tau)
    noise = rng.standard_normal(n) * np.sqrt(1 - a * a)
    series, _ = lfilter([1.0], [1.0, -a], noise, zi=[rng.standard_normal() * a])
    return series


def simulated_observations(start: str | pd.Timestamp, days: int, seed: int = 0) -> pd.DataFrame:
    """The simulated station as the database holds it: UTC index, SQL column names."""
    frame = simulate_station(start, days, seed)
    utc = frame.index.tz_localize(JENA.timezone).tz_convert("UTC").tz_localize(None)
    return frame.set_axis(utc.rename("observed_at"), axis=0).set_axis(JENA.columns, axis=1)


def feed_due(source: Path, drop: Path, now: pd.Timestamp) -> Path | None:
    """Move the live demo along: the rows of the simulated future `source` file stamped at
    or before `now` (UTC) that were not fed yet go to a new file in the `drop` folder, as a
    station's logger would send them (None when none are due). A mark beside `source`
    remembers the last row fed; a crash before it is updated only feeds rows again, which
    ingestion finds already present."""
    mark = source.with_suffix(".fed")
    header, *lines = source.read_text(encoding="utf-8").splitlines()
    local = pd.Timestamp(now).tz_convert(JENA.timezone).tz_localize(None)
    fed = pd.Timestamp(mark.read_text().strip()) if mark.exists() else pd.Timestamp.min
    times = pd.to_datetime([line.split(",", 1)[0] for line in lines],
                           format=JENA.timestamp_format)
    due = [line for line, t in zip(lines, times) if fed < t <= local]
    if not due:
        return None
    newest = times[times <= local].max()
    path = drop / f"feed-{newest:%Y%m%dT%H%M}.csv"
    drop.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")  # not a .csv until complete: ingest never half-reads
    partial.write_text("\n".join([header, *due]) + "\n", encoding="utf-8")
    partial.rename(path)
    mark.write_text(newest.isoformat())
    return path
