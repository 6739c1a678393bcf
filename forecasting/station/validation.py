"""Row rules for station data, applied to a whole chunk at once (vectorized).

Each rejected row keeps its line number, raw text and the first rule it broke, so it can be
quarantined; every other row of the chunk is returned as clean UTC-stamped float64 values.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from forecasting.station.csvfile import MAX_LINE_BYTES, Header, RawChunk, decode
from forecasting.station.schema import StationSchema

NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
RAW_LIMIT = 2000  # characters of a rejected line kept in quarantine
EARLIEST, LATEST = np.datetime64("1900-01-01", "s"), np.datetime64("2200-01-01", "s")
FUTURE_TOLERANCE = pd.Timedelta(hours=1)  # station clocks drift, and files arrive as written


@dataclass(frozen=True)
class Rejected:
    line: int
    raw: str
    reason: str


@dataclass(frozen=True)
class CellProblem:
    """A kept row's cell of an optional channel that broke a rule: stored as NULL."""

    line: int
    column: str
    reason: str


@dataclass(frozen=True)
class ValidChunk:
    """The good rows of one chunk (file order) plus what was rejected or repeated."""

    times: np.ndarray  # datetime64[s], UTC
    values: np.ndarray  # float64, (rows, channels) in schema order
    rows: np.ndarray  # index of each good row in the chunk
    chunk: RawChunk
    rejected: list[Rejected]
    duplicates: int  # identical repeats of an earlier row of the chunk
    cells: list[CellProblem]  # of the good rows: optional cells stored as NULL

    @property
    def rows_read(self) -> int:
        return len(self.chunk.lines)

    def reject(self, j: int, reason: str) -> Rejected:
        """Turn good row `j` into a rejection (e.g. when it conflicts with stored data)."""
        i = int(self.rows[j])
        return Rejected(self.chunk.numbers[i], _raw(self.chunk.lines[i]), reason)


def validate_chunk(chunk: RawChunk, header: Header, station: StationSchema,
                   not_after: np.datetime64) -> ValidChunk:
    """Apply every row rule; the first rule a row breaks is its quarantine reason. Rows
    stamped after `not_after` (UTC: the ingest time plus FUTURE_TOLERANCE) are in the
    future: a wrong clock, which would otherwise hold the training window hostage."""
    n_fields = len(header.names)
    blob = b"\n".join(chunk.lines)
    counts = _field_counts(blob, station.delimiter.encode())
    too_long = np.fromiter(map(len, chunk.lines), np.int64, len(chunk.lines)) > MAX_LINE_BYTES
    reasons: dict[int, str] = {
        int(i): f"line longer than {MAX_LINE_BYTES} bytes (binary or corrupt data)"
        for i in np.flatnonzero(too_long)
    }
    shaped = np.flatnonzero((counts == n_fields) & ~too_long)
    if len(shaped) < len(counts):
        blob = b"\n".join(chunk.lines[i] for i in shaped.tolist())
    for i in np.flatnonzero(counts != n_fields).tolist():
        reasons.setdefault(i, f"expected {n_fields} fields, found {counts[i]}")

    table = _read_fields(blob, len(shaped), header, station)
    stamps = len(station.timestamp_columns)
    text = table.column(0) if stamps == 1 else pc.binary_join_element_wise(
        *(table.column(i) for i in range(stamps)), " ")
    times, time_reasons = _parse_times(text, station, not_after)
    values = np.empty((len(shaped), len(station.channels)), np.float64)
    cell_reasons: list[tuple[np.ndarray, list[str]]] = [time_reasons]
    blanked: list[tuple[int, str, str]] = []  # (row of `shaped`, column, reason)
    for k, channel in enumerate(station.channels):
        values[:, k], bad = _parse_numbers(table.column(stamps + k), channel, station.missing)
        if channel.optional:
            values[bad[0], k] = np.nan
            blanked += [(j, channel.column, m) for j, m in zip(bad[0].tolist(), bad[1])]
        else:
            cell_reasons.append(bad)

    # First failing rule wins: fields, then timestamp, then channels in schema order.
    for bad_rows, messages in cell_reasons:
        for j, message in zip(bad_rows.tolist(), messages):
            reasons.setdefault(int(shaped[j]), message)

    keep = np.ones(len(counts), bool)
    keep[list(reasons)] = False
    keep = keep[shaped]
    times, values, rows = times[keep], values[keep], shaped[keep]
    first = _first_occurrence(times)
    repeat = first != np.arange(len(times))
    same = same_rows(values, values[first])
    for j in np.flatnonzero(repeat & ~same).tolist():
        earlier = chunk.numbers[rows[first[j]]]
        reasons[int(rows[j])] = (
            f"timestamp {_iso(times[j])} UTC already on line {earlier} with different values"
        )
    clean = ~repeat
    kept = set(rows[clean].tolist())
    cells = [CellProblem(chunk.numbers[int(shaped[j])], column, reason)
             for j, column, reason in blanked if int(shaped[j]) in kept]
    rejected = [
        Rejected(chunk.numbers[i], _raw(chunk.lines[i]), reason)
        for i, reason in sorted(reasons.items())
    ]
    return ValidChunk(
        times=times[clean],
        values=values[clean],
        rows=rows[clean],
        chunk=chunk,
        rejected=rejected,
        duplicates=int((repeat & same).sum()),
        cells=cells,
    )


def _field_counts(blob: bytes, delimiter: bytes) -> np.ndarray:
    """Fields per line of a newline-joined blob, counted with array operations."""
    data = np.frombuffer(blob, np.uint8)
    delimiters = np.flatnonzero(data == delimiter[0])
    ends = np.concatenate([np.flatnonzero(data == ord("\n")), [len(data)]])
    return np.diff(np.searchsorted(delimiters, ends), prepend=0) + 1


def _read_fields(blob: bytes, rows: int, header: Header, station: StationSchema) -> pa.Table:
    """The timestamp and channel fields of well-shaped lines, as strings, in schema order."""
    text, encoding = decode(blob)
    if encoding != "utf-8":
        blob = text.encode("utf-8")
    names = [f"f{i}" for i in range(len(header.names))]
    wanted = [names[p] for p in (*header.timestamp_positions, *header.channel_positions)]
    if not rows:
        return pa.table({name: pa.array([], pa.string()) for name in wanted})
    return pacsv.read_csv(
        io.BytesIO(blob),
        read_options=pacsv.ReadOptions(column_names=names),
        parse_options=pacsv.ParseOptions(
            delimiter=station.delimiter, quote_char=False, ignore_empty_lines=False
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            include_columns=wanted,
            strings_can_be_null=False,
        ),
    ).select(wanted)


def _parse_times(column: pa.ChunkedArray, station: StationSchema,
                 not_after: np.datetime64) -> tuple[np.ndarray, tuple]:
    """Local timestamps -> UTC datetime64[s]; strict format, on the cadence grid, real local time."""
    fmt = station.timestamp_format
    text = pc.utf8_trim(column, characters=' "')
    parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
    strict = _round_trips(text, parsed, fmt)
    local = parsed.to_numpy(zero_copy_only=False).astype("datetime64[s]")
    strings = None if strict.all() else text.to_pylist()
    unparsable = []
    for j in np.flatnonzero(~strict).tolist():
        try:
            local[j] = np.datetime64(datetime.strptime(strings[j], fmt), "s")
        except ValueError:
            local[j] = np.datetime64("NaT")
            unparsable.append(j)

    bad = np.zeros(len(local), bool)
    messages: dict[int, str] = {}
    for j in unparsable:
        bad[j] = True
        messages[j] = f"{station.timestamp_label}: {strings[j]!r} does not match {fmt!r}"
    years = ~bad & ((local < EARLIEST) | (local >= LATEST))
    for j in np.flatnonzero(years).tolist():
        messages[j] = (f"{station.timestamp_label}: {local[j]} is outside the supported "
                       f"years {EARLIEST.astype(object).year}-{LATEST.astype(object).year - 1}")
    bad |= years
    seconds = local.astype(np.int64)
    off_grid = ~bad & (seconds % (station.cadence_minutes * 60) != 0)
    for j in np.flatnonzero(off_grid).tolist():
        messages[j] = (
            f"{station.timestamp_label}: {local[j]} is off the "
            f"{station.cadence_minutes}-minute cadence grid"
        )
    bad |= off_grid

    utc = pd.DatetimeIndex(local).tz_localize(
        station.timezone, ambiguous="NaT", nonexistent="NaT"
    ).tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[s]")
    clock = ~bad & np.isnat(utc)
    for j in np.flatnonzero(clock).tolist():
        messages[j] = (
            f"{station.timestamp_label}: {local[j]} does not exist or is ambiguous in "
            f"{station.timezone} (daylight-saving change)"
        )
    bad |= clock
    future = ~bad & (utc > not_after)
    for j in np.flatnonzero(future).tolist():
        messages[j] = (f"{station.timestamp_label}: {local[j]} ({_iso(utc[j])} UTC) is in the "
                       f"future: later than the ingest time plus "
                       f"{FUTURE_TOLERANCE.total_seconds() / 3600:g} h (a clock error?)")
    bad |= future
    rows = np.flatnonzero(bad)
    return utc, (rows, [messages[j] for j in rows.tolist()])


# Zero-padded strptime directives: width and the Arrow kernel that extracts the field.
_FIXED = {"Y": (4, pc.year), "m": (2, pc.month), "d": (2, pc.day),
          "H": (2, pc.hour), "M": (2, pc.minute), "S": (2, pc.second)}


def _round_trips(text: pa.ChunkedArray, parsed: pa.ChunkedArray, fmt: str) -> np.ndarray:
    """True where formatting `parsed` back gives `text`.

    Arrow's strptime is lenient (31.04 rolls into May, second 60 into the next minute).
    For fixed-width formats each field is compared with the parsed component, which is far
    cheaper than formatting back; other formats fall back to a real strftime round trip.
    """
    fields, width, i = [], 0, 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt) and fmt[i + 1] in _FIXED:
            size, component = _FIXED[fmt[i + 1]]
            fields.append((width, size, component))
            width, i = width + size, i + 2
        elif fmt[i] == "%":
            same = pc.equal(pc.strftime(parsed, format=fmt), text)
            return pc.fill_null(same, False).to_numpy(zero_copy_only=False)
        else:
            width, i = width + 1, i + 1
    ok = pc.fill_null(pc.equal(pc.utf8_length(text), width), False)
    for start, size, component in fields:
        digits = pc.utf8_slice_codeunits(text, start, start + size)
        digits = pc.if_else(pc.match_substring_regex(digits, r"^\d+$"), digits, None)
        ok = pc.and_(ok, pc.fill_null(
            pc.equal(pc.cast(digits, pa.int64()), component(parsed)), False))
    return ok.to_numpy(zero_copy_only=False)


def _parse_numbers(column: pa.ChunkedArray, channel, missing: tuple[float, ...] = ()
                   ) -> tuple[np.ndarray, tuple]:
    """Strings -> float64 (a channel's categories read as their numbers); empty,
    non-numeric, non-finite and out-of-range values, and the station's `missing` codes,
    are flagged."""
    if channel.categories:
        return _parse_categories(column, channel)
    try:
        numbers = pc.cast(column, pa.float64())
        text = None
    except pa.ArrowInvalid:
        text = pc.utf8_trim(column, characters=' "')
        numeric = pc.match_substring_regex(text, NUMBER)
        numbers = pc.cast(pc.if_else(numeric, text, pa.scalar(None, pa.string())), pa.float64())
    values = numbers.to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(invalid="ignore"):
        outside = (values < channel.minimum) | (values > channel.maximum)
    coded = np.isin(values, missing)
    bad = ~np.isfinite(values) | outside | coded
    rows = np.flatnonzero(bad)
    messages = []
    for j in rows.tolist():
        raw = column[j].as_py().strip()
        if coded[j]:
            messages.append(f"{channel.source}: {raw} is the station's code for a missing "
                            "value")
        elif not raw:
            messages.append(f"{channel.source}: empty value")
        elif np.isnan(values[j]) and text is not None:
            messages.append(f"{channel.source}: {raw!r} is not a number")
        elif not np.isfinite(values[j]):
            messages.append(f"{channel.source}: {raw!r} is not a finite number")
        else:
            messages.append(
                f"{channel.source}: {raw.strip(chr(34))} outside the valid range "
                f"[{channel.minimum:g}, {channel.maximum:g}] {channel.unit}"
            )
    return values, (rows, messages)


def _parse_categories(column: pa.ChunkedArray, channel) -> tuple[np.ndarray, tuple]:
    """Text categories -> their numbers (NaN, e.g. for calm `cv`, flags the cell)."""
    mapping = dict(channel.categories)
    text = pc.utf8_trim(column, characters=' "').to_pylist()
    values = np.array([mapping.get(t, np.nan) for t in text], np.float64)
    rows = np.flatnonzero(np.isnan(values))
    messages = [f"{channel.source}: {text[j]!r} is not one of the categories "
                f"{sorted(mapping)}" if text[j] not in mapping else
                f"{channel.source}: {text[j]!r} has no value (category without a number)"
                for j in rows.tolist()]
    return values, (rows, messages)


def same_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row by row, whether two value arrays hold the same values; NaN (a blank optional
    cell) equals NaN."""
    return ((a == b) | np.isnan(a) & np.isnan(b)).all(axis=1)


def _first_occurrence(times: np.ndarray) -> np.ndarray:
    """For each row, the index of the first row with the same timestamp."""
    _, first, inverse = np.unique(times, return_index=True, return_inverse=True)
    return first[inverse]


def _iso(t: np.datetime64) -> str:
    return str(t).replace("T", " ")


def _raw(line: bytes) -> str:
    """The line as text for quarantine, cut at RAW_LIMIT; NUL, which no PostgreSQL text can
    hold, written as `\\x00`."""
    text = decode(line)[0].replace("\x00", "\\x00")
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + f"… [{len(text)} chars]"
