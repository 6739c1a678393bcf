"""What a station's CSV looks like: columns, units, valid ranges, clock and cadence.

The Jena climate station is the built-in default; any other station is described in TOML
(see `load_station`) and everything downstream follows the description.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class Channel:
    """One numeric sensor column: its name in the file, in SQL, its unit and physical range.
    An `optional` channel's blank or invalid cell is stored as NULL and the row kept (the
    cell's problem is recorded); `categories` read text cells as numbers (`NW` -> 315)."""

    source: str
    column: str
    unit: str
    minimum: float
    maximum: float
    optional: bool = False
    categories: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class StationSchema:
    """A typed description of one station's files; hashable so derived tables can be cached."""

    name: str
    timestamp_column: str | tuple[str, ...]  # several: joined with spaces, then parsed
    timestamp_format: str
    timezone: str
    cadence_minutes: int
    channels: tuple[Channel, ...]
    target: str
    delimiter: str = ","
    wind_speed: str | None = None  # source names of the wind channels, for the wind vector
    wind_direction: str | None = None
    missing: tuple[float, ...] = ()  # the station's codes for a missing value (DWD: -999)

    def __post_init__(self) -> None:
        if not STATION_NAME.fullmatch(self.name):
            raise ValueError(f"station name {self.name!r} must be 1-64 letters, digits, '_', "
                             "'-' or '.', beginning with a letter or digit (it keys tables, "
                             "model names and folders)")
        if self.cadence_minutes <= 0 or 1440 % self.cadence_minutes:
            raise ValueError(
                f"station {self.name!r}: cadence_minutes={self.cadence_minutes} must divide a day"
            )
        sources = [c.source for c in self.channels]
        columns = [c.column for c in self.channels]
        for label, names in (("source", sources), ("column", columns)):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"station {self.name!r}: duplicate channel {label} names {dupes}")
        bad = [c for c in columns if not SQL_NAME.fullmatch(c) or c == TIMESTAMP_SQL_COLUMN]
        if bad:
            raise ValueError(
                f"station {self.name!r}: channel columns {bad} must be lower-case SQL names "
                f"(letters, digits, _) other than {TIMESTAMP_SQL_COLUMN!r}"
            )
        for role, name in (("target", self.target), ("wind_speed", self.wind_speed),
                           ("wind_direction", self.wind_direction)):
            if name is not None and name not in sources:
                raise ValueError(f"station {self.name!r}: {role} {name!r} is not a channel")
        for c in self.channels:
            if not c.minimum < c.maximum:
                raise ValueError(f"station {self.name!r}: channel {c.source!r} has an empty range")
        if self.target_channel.optional:
            raise ValueError(f"station {self.name!r}: the target {self.target!r} cannot be "
                             "optional (a forecast needs it in every row)")
        clash = sorted(set(self.timestamp_columns) & set(sources))
        if clash:
            raise ValueError(f"station {self.name!r}: {clash} cannot be both a timestamp "
                             "column and a channel")
        if len(self.delimiter) != 1 or self.delimiter in '"\r\n':
            raise ValueError(f"station {self.name!r}: delimiter {self.delimiter!r} must be one "
                             "character other than a quote or a line break")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"station {self.name!r}: timezone {self.timezone!r} is not a known "
                             "IANA time zone (e.g. \"Europe/Berlin\", \"UTC\", \"Etc/GMT-1\" "
                             "for UTC+1 all year)") from None
        if re.search(r"%[zZ]", self.timestamp_format):
            raise ValueError(
                f"station {self.name!r}: timestamp_format {self.timestamp_format!r} has a UTC "
                "offset or zone name (%z, %Z), which is not supported: timestamps are read as "
                "local time in `timezone`; set timezone (e.g. \"UTC\" or \"Etc/GMT-2\") "
                "and drop the offset from the format")

    @property
    def timestamp_columns(self) -> tuple[str, ...]:
        stamp = self.timestamp_column
        return (stamp,) if isinstance(stamp, str) else tuple(stamp)

    @property
    def timestamp_label(self) -> str:
        """How messages name the time stamp: `Date Time`, or `year+month+day+hour`."""
        return "+".join(self.timestamp_columns)

    @property
    def required(self) -> list[Channel]:
        """The channels every stored row has: what the models read."""
        return [c for c in self.channels if not c.optional]

    @property
    def sources(self) -> list[str]:
        return [c.source for c in self.channels]

    @property
    def columns(self) -> list[str]:
        return [c.column for c in self.channels]

    @property
    def target_channel(self) -> Channel:
        return next(c for c in self.channels if c.source == self.target)

    def channel(self, source: str) -> Channel:
        return next(c for c in self.channels if c.source == source)


SQL_NAME = re.compile(r"[a-z_][a-z0-9_]*")
STATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TIMESTAMP_SQL_COLUMN = "observed_at"


def sql_name(source: str) -> str:
    """`'max. wv (m/s)'` -> `'max_wv_m_s'`: a column name plain SQL can use unquoted."""
    text = source.lower().replace("%", " pct").replace("**", "")
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def _jena_channel(source: str, unit: str, minimum: float, maximum: float) -> Channel:
    return Channel(source, sql_name(source), unit, minimum, maximum)


# Ranges are physical limits for a mid-latitude lowland station, wide enough for any real
# reading and narrow enough to catch sentinels such as the file's -9999 wind values.
JENA = StationSchema(
    name="jena",
    timestamp_column="Date Time",
    timestamp_format="%d.%m.%Y %H:%M:%S",
    # The station logs in CET without daylight saving (UTC+1 all year).
    timezone="Etc/GMT-1",
    cadence_minutes=10,
    channels=(
        _jena_channel("p (mbar)", "mbar", 850.0, 1100.0),
        _jena_channel("T (degC)", "degC", -50.0, 50.0),
        _jena_channel("Tpot (K)", "K", 220.0, 330.0),
        _jena_channel("Tdew (degC)", "degC", -60.0, 40.0),
        _jena_channel("rh (%)", "%", 0.0, 100.0),
        _jena_channel("VPmax (mbar)", "mbar", 0.0, 130.0),
        _jena_channel("VPact (mbar)", "mbar", 0.0, 80.0),
        _jena_channel("VPdef (mbar)", "mbar", 0.0, 130.0),
        _jena_channel("sh (g/kg)", "g/kg", 0.0, 60.0),
        _jena_channel("H2OC (mmol/mol)", "mmol/mol", 0.0, 90.0),
        _jena_channel("rho (g/m**3)", "g/m**3", 1000.0, 1500.0),
        _jena_channel("wv (m/s)", "m/s", 0.0, 80.0),
        _jena_channel("max. wv (m/s)", "m/s", 0.0, 100.0),
        _jena_channel("wd (deg)", "deg", 0.0, 360.0),
    ),
    target="T (degC)",
    wind_speed="wv (m/s)",
    wind_direction="wd (deg)",
)


MAX_TOML_BYTES = 4 << 20  # a description of even thousands of stations is far smaller


def read_toml(path: Path, what: str) -> dict:
    """A settings or station TOML file, read only if it is a regular file of at most
    MAX_TOML_BYTES (a device such as /dev/zero would be read for ever); ValueError naming
    `what` and the rule otherwise."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise ValueError(f"{what} {path}: not a regular file (a device, FIFO or folder?)")
        with open(path, "rb") as handle:
            text = handle.read(MAX_TOML_BYTES + 1)
        if len(text) > MAX_TOML_BYTES:
            raise ValueError(f"{what} {path}: larger than {MAX_TOML_BYTES >> 20} MB; not read")
        return tomllib.loads(text.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{what} {path}: {exc}") from exc


def load_station(path: Path) -> StationSchema:
    """Read a station description from TOML.

    ```toml
    name = "alpine"
    timestamp_column = "time"
    timestamp_format = "%Y-%m-%d %H:%M"
    timezone = "UTC"
    cadence_minutes = 60
    target = "temp_c"
    [[channels]]
    source = "temp_c"
    unit = "degC"
    min = -60
    max = 45
    # column = "temp_c"   (optional; derived from source when absent)
    ```
    Optional: `delimiter`; `wind_speed` / `wind_direction` (channel sources) to let the
    models see wind as a vector; `timestamp_column` as a list of columns (`["year", "month",
    "day", "hour"]`, joined with spaces for `timestamp_format = "%Y %m %d %H"`); per channel
    `optional = true` and `categories = { NW = 315, cv = nan }`; `missing = [-999]`, the
    station's codes for a missing value (read as a missing cell, never as a number).
    """
    doc = read_toml(path, "station schema")
    required = ["name", "timestamp_column", "timestamp_format", "cadence_minutes", "target"]
    missing = [key for key in required + ["channels"] if key not in doc]
    if missing:
        raise ValueError(f"station schema {path}: missing keys {missing}")
    channels = []
    for i, ch in enumerate(doc["channels"]):
        absent = [k for k in ("source", "unit", "min", "max") if k not in ch]
        if absent:
            raise ValueError(f"station schema {path}: channels[{i}] lacks {absent}")
        categories = ch.get("categories", {})
        if not isinstance(categories, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                for v in categories.values()):
            raise ValueError(f"station schema {path}: channels[{i}].categories must map "
                             "text to numbers, e.g. { NW = 315, cv = nan }")
        channels.append(
            Channel(
                source=ch["source"],
                column=ch.get("column", sql_name(ch["source"])),
                unit=ch["unit"],
                minimum=float(ch["min"]),
                maximum=float(ch["max"]),
                optional=bool(ch.get("optional", False)),
                categories=tuple((str(k), float(v)) for k, v in categories.items()),
            )
        )
    stamp = doc["timestamp_column"]
    return StationSchema(
        name=doc["name"],
        timestamp_column=stamp if isinstance(stamp, str) else tuple(map(str, stamp)),
        timestamp_format=doc["timestamp_format"],
        timezone=doc.get("timezone", "UTC"),
        cadence_minutes=int(doc["cadence_minutes"]),
        channels=tuple(channels),
        target=doc["target"],
        delimiter=doc.get("delimiter", ","),
        wind_speed=doc.get("wind_speed"),
        wind_direction=doc.get("wind_direction"),
        missing=tuple(float(code) for code in doc.get("missing", ())),
    )
