"""The stations file: which stations one installation serves, each with its schema and the
folder its files are dropped into.

```toml
[[stations]]
name = "jena"                  # the station's key in every table and model name
schema = "schemas/jena.toml"   # optional: the built-in Jena schema when absent
drop_dir = "incoming/jena"     # optional: data_dir/incoming/<name> when absent
wide_column = "Jena"           # optional: its column in wide files (default: its name)
latitude = 50.93               # optional, degrees: where it is, for the network model
longitude = 11.59
```
Relative paths are relative to the stations file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from forecasting.station.schema import JENA, StationSchema, load_station, read_toml


@dataclass(frozen=True)
class Site:
    """One station of the network: its schema (named as the station) and drop folder (None:
    the default under the data directory)."""

    station: StationSchema
    drop_dir: Path | None = None
    wide_column: str | None = None  # its column in wide files (None: its name)
    latitude: float | None = None
    longitude: float | None = None

    @property
    def column(self) -> str:
        return self.wide_column or self.station.name


def station_named(stations: tuple[StationSchema, ...], name: str) -> StationSchema:
    """The station called `name` among `stations`; an unknown name lists the known ones."""
    found = next((s for s in stations if s.name == name), None)
    if found is None:
        raise ValueError(f"no station {name!r}; the stations are "
                         f"{', '.join(s.name for s in stations)}")
    return found


def name_key(name: str) -> str:
    """The station's name as Prefect keys carry it: `Jena_2` -> `jena-2`."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def shared_drop_dirs(dirs: dict[str, Path]) -> str | None:
    """Why the stations' drop folders (by station) cannot all be served, or None: two
    stations reading one folder would each store the other's files."""
    by_folder: dict[Path, str] = {}
    for name, folder in dirs.items():
        resolved = Path(folder).resolve()
        if resolved in by_folder:
            return (f"stations {by_folder[resolved]!r} and {name!r} share the drop folder "
                    f"{folder}: each would store the other's files; give each its own "
                    "`drop_dir`")
        by_folder[resolved] = name
    return None


def load_stations(path: Path) -> tuple[Site, ...]:
    """Read the stations file; every problem names the entry and the key."""
    path = Path(path)
    doc = read_toml(path, "stations file")
    entries = doc.get("stations")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"stations file {path}: no [[stations]] entries")
    sites, seen = [], {}
    for i, entry in enumerate(entries):
        where = f"stations file {path}: stations[{i}]"
        unknown = sorted(set(entry) - {"name", "schema", "drop_dir", "wide_column",
                                       "latitude", "longitude"})
        if "name" not in entry or unknown:
            raise ValueError(f"{where}: " + (f"unknown keys {unknown}" if unknown
                                             else "lacks `name`"))
        name = str(entry["name"])
        if name in seen.values():
            raise ValueError(f"{where}: station {name!r} is listed twice")
        if (key := name_key(name)) in seen:
            raise ValueError(f"{where}: station {name!r} and {seen[key]!r} differ only in "
                             f"case or punctuation, so their keys in Prefect (artifacts, "
                             f"runs) would both be {key!r}; rename one")
        seen[key] = name
        try:
            schema = load_station(path.parent / entry["schema"]) if "schema" in entry else JENA
            station = replace(schema, name=name)  # checks the name
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        drop = path.parent / entry["drop_dir"] if "drop_dir" in entry else None
        place = {key: _coordinate(entry, key, limit, where)
                 for key, limit in (("latitude", 90), ("longitude", 180)) if key in entry}
        wide = entry.get("wide_column")
        if wide is not None and not (isinstance(wide, str) and wide.strip()):
            raise ValueError(f"{where}: `wide_column` must be a column name (text)")
        sites.append(Site(station, drop, wide, **place))
    return tuple(sites)


def _coordinate(entry: dict, key: str, limit: float, where: str) -> float:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not -limit <= value <= limit:
        raise ValueError(f"{where}: `{key}` must be degrees from {-limit} to {limit} "
                         f"(got {value!r})")
    return float(value)
