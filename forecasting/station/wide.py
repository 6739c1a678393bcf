"""Wide files, as networks often publish their history: one file per quantity (named for
it, e.g. `temperature.csv.gz`), a timestamp column and a column per station.

`split_wide` turns them into one file per station in that station's own format, for the
product's ingestion. Every cell is passed on exactly as written (a blank stays blank, an
impossible value stays impossible), so validating, quarantining with a reason and storing
each row once remain the ingest's alone; this only regroups cells.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from forecasting.station.schema import StationSchema


class WideFileError(ValueError):
    """A wide file cannot be split: it names the file, the line or column, and the rule.
    Nothing is written for any station."""


@dataclass(frozen=True)
class StationFile:
    """One station's share of the wide files, in its own format."""

    station: str
    name: str  # the same content always gets the same name
    text: str
    rows: int


def quantity_of(path: Path) -> str:
    """The channel a wide file holds, from its name: `temperature.csv.gz` -> `temperature`."""
    name = Path(path).name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return name


def read_wide(path: Path, timestamp_column: str, columns: list[str], delimiter: str
              ) -> tuple[list[str], dict[str, list[str]]]:
    """The timestamp cells and, for each of `columns`, its cells (as text, in file order).
    A missing column or a line whose field count differs from the header's is refused."""
    opener = gzip.open if Path(path).suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            lines = list(csv.reader(handle, delimiter=delimiter))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise WideFileError(f"{path}: cannot be read as CSV text: {exc}") from None
    if not lines:
        raise WideFileError(f"{path}: the file is empty")
    header = [name.strip() for name in lines[0]]
    missing = [c for c in [timestamp_column, *columns] if c not in header]
    if missing:
        raise WideFileError(f"{path}: the header lacks column(s) {missing} (found {header})")
    repeated = sorted({c for c in [timestamp_column, *columns] if header.count(c) > 1})
    if repeated:
        raise WideFileError(f"{path}: the header repeats column(s) {repeated}")
    body = [(number, line) for number, line in enumerate(lines[1:], 2) if line]
    for number, line in body:
        if len(line) != len(header):
            raise WideFileError(f"{path}: line {number} has {len(line)} fields, the header "
                                f"{len(header)}: every line needs one cell per column")
    stamp = header.index(timestamp_column)
    return ([line[stamp] for _, line in body],
            {c: [line[header.index(c)] for _, line in body] for c in columns})


def split_wide(files: list[Path], stations: dict[str, StationSchema],
               wide_columns: dict[str, str]) -> list[StationFile]:
    """One file per station (keyed by name in `stations`) from the quantity files, whose
    column for a station is `wide_columns[name]`. Rows are matched on the timestamp text
    (a stamp repeated within a file stays repeated, so ingest sees every row); a stamp that
    one file lacks leaves that quantity's cell blank. Every channel of every station must
    come from one file, or nothing is split."""
    if not files:
        raise WideFileError("no wide files given")
    quantities = [quantity_of(f) for f in files]
    if len(set(quantities)) < len(quantities):
        raise WideFileError(f"two files hold the same quantity: {quantities}")
    first = next(iter(stations.values()))
    for name, station in stations.items():
        if not isinstance(station.timestamp_column, str):
            raise WideFileError(f"station {name!r}: wide files have one timestamp column, its "
                                f"schema has {list(station.timestamp_columns)}")
        needs = set(station.sources)
        if needs != set(quantities) or station.timestamp_column != first.timestamp_column:
            raise WideFileError(
                f"station {name!r} needs the quantities {sorted(needs)} under the timestamp "
                f"column {station.timestamp_column!r}; the files hold {sorted(quantities)} "
                f"under {first.timestamp_column!r} (a file is named for its quantity)")
    columns = [wide_columns[name] for name in stations]
    keys: dict[tuple[str, int], int] = {}  # (stamp, occurrence) -> output row
    cells: list[dict[str, list[str]]] = []
    for path, quantity in zip(files, quantities):
        stamps, by_column = read_wide(path, first.timestamp_column, columns, first.delimiter)
        seen: dict[str, int] = {}
        rows = []
        for stamp in stamps:
            seen[stamp] = seen.get(stamp, 0) + 1
            rows.append(keys.setdefault((stamp, seen[stamp]), len(keys)))
        cells.append({"rows": rows, **by_column})
    out = []
    for name, station in stations.items():
        table = [[stamp] + [""] * len(quantities) for stamp, _ in keys]
        for j, (quantity, part) in enumerate(zip(quantities, cells)):
            for row, cell in zip(part["rows"], part[wide_columns[name]]):
                table[row][1 + j] = cell
        text = io.StringIO()
        writer = csv.writer(text, delimiter=station.delimiter, lineterminator="\n")
        writer.writerow([station.timestamp_column, *quantities])
        writer.writerows(table)
        digest = hashlib.sha256(text.getvalue().encode()).hexdigest()[:16]
        out.append(StationFile(name, f"wide-{digest}.csv", text.getvalue(), len(table)))
    return out
