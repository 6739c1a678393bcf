"""Reading a station CSV as a stream: header check, encoding, line-numbered chunks.

Memory stays flat whatever the file size: only one chunk of raw lines is held at a time.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import BinaryIO
from dataclasses import dataclass
from pathlib import Path

from forecasting.station.schema import StationSchema


BLOCK_BYTES = 1 << 22
MAX_LINE_BYTES = 1 << 16  # a station line is ~100 bytes; longer ones are quarantined, cut here


class HeaderError(ValueError):
    """The file's header cannot be mapped onto the station schema; nothing is ingested."""


@dataclass(frozen=True)
class Header:
    """Where each needed column sits in the file, and what else the file carries."""

    names: tuple[str, ...]
    timestamp_positions: tuple[int, ...]
    channel_positions: tuple[int, ...]
    extra: tuple[str, ...]
    encoding: str


@dataclass(frozen=True)
class RawChunk:
    """Consecutive non-blank data lines (without line endings) and their 1-based line numbers."""

    lines: list[bytes]
    numbers: list[int]


def decode(data: bytes) -> tuple[str, str]:
    """Decode station text: UTF-8 (with or without BOM) when valid, else Windows-1252/latin-1."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "cp1252"


def shortened(names: list[str], first: int = 20) -> str:
    """A list of names for a message: the first `first`, then how many more (a header of
    thousands of columns must not make a message of kilobytes)."""
    if len(names) <= first:
        return str(names)
    return f"{names[:first]} and {len(names) - first:,} more ({len(names):,} in all)"


def parse_header(line: bytes, station: StationSchema) -> Header:
    """Map header names to positions; missing columns refuse the file, extra ones are noted."""
    text, encoding = decode(line.rstrip(b"\r\n"))
    try:
        names = tuple(n.strip()
                      for n in next(csv.reader([text], delimiter=station.delimiter), []))
    except csv.Error as exc:
        raise HeaderError(f"header is not a line of CSV column names: {exc}") from exc
    needed = [*station.timestamp_columns, *station.sources]
    missing = [n for n in needed if n not in names]
    if missing:
        raise HeaderError(
            f"header lacks column(s) {shortened(missing)} required by station "
            f"{station.name!r} (found {shortened(list(names))}; delimiter "
            f"{station.delimiter!r})")
    repeated = sorted({n for n in needed if names.count(n) > 1})
    if repeated:
        raise HeaderError(f"header repeats column(s) {repeated}")
    return Header(
        names=names,
        timestamp_positions=tuple(names.index(n) for n in station.timestamp_columns),
        channel_positions=tuple(names.index(s) for s in station.sources),
        extra=tuple(n for n in names if n not in needed),
        encoding=encoding,
    )


def read_chunks(
    path: Path, station: StationSchema, chunk_rows: int
) -> tuple[Header, Iterator[RawChunk]]:
    """Check the header now (so a bad file fails before anything is stored), stream the rest.

    The header is the text up to the first `\n`, `\r\n` or lone `\r`, at most
    MAX_LINE_BYTES: a longer first line (binary data, a file without line breaks, millions of
    columns) is refused without reading further.
    """
    handle = open(path, "rb")
    try:
        start = handle.read(MAX_LINE_BYTES + 2)
        _refuse_non_text(start, path)
        breaks = [i for i in (start.find(b"\n"), start.find(b"\r")) if i >= 0]
        if not breaks and len(start) > MAX_LINE_BYTES:
            raise HeaderError(f"{path}: the first line is longer than {MAX_LINE_BYTES // 1024} "
                              "KiB; a header is one line of column names (not a station file?)")
        end = min(breaks) if breaks else len(start)
        first = start[:end]
        rest = start[end + (2 if start[end:end + 2] == b"\r\n" else 1):] if breaks else b""
        if not start:
            raise HeaderError(f"{path}: file is empty")
        if not first.strip(b"\t \xef\xbb\xbf"):
            raise HeaderError(f"{path}: its first line is blank (no header)")
        header = parse_header(first, station)
    except BaseException:
        handle.close()
        raise
    return header, _chunks(handle, chunk_rows, rest)


def _refuse_non_text(start: bytes, path: Path) -> None:
    """Compressed or UTF-16 files, named `.csv` all the same, get a message that says so."""
    if start.startswith(b"\x1f\x8b"):
        raise HeaderError(f"{path}: the file is gzip-compressed; decompress it (gunzip) first")
    if start.startswith((b"\xff\xfe", b"\xfe\xff")) or start[:200].count(b"\x00") > 20:
        raise HeaderError(f"{path}: the file is UTF-16 (or binary); save it as UTF-8 text")
    if start.startswith(b"PK\x03\x04"):
        raise HeaderError(f"{path}: the file is a ZIP archive; extract the CSV first")
    sample = start[:4096]
    control = sum(0 < b < 32 and b not in b"\t\r\n" for b in sample) + sample.count(b"\x7f")
    if sample and control > len(sample) // 20:
        raise HeaderError(f"{path}: the file is binary ({control} control bytes in its first "
                          f"{len(sample)}), not CSV text")


def _chunks(handle: BinaryIO, chunk_rows: int, start: bytes = b"") -> Iterator[RawChunk]:
    """Split the stream into lines in large blocks (C speed); empty lines are skipped.

    `\n`, `\r\n` and a lone `\r` all end a line. A line longer than MAX_LINE_BYTES (binary
    junk, a file of NUL bytes) is passed on cut to MAX_LINE_BYTES + 1 bytes, for validation
    to quarantine, and the rest of it is skipped without being held in memory. `start` is
    what was read past the header.
    """
    with handle:
        lines: list[bytes] = []
        numbers: list[int] = []
        next_number = 2  # the header is line 1
        tail = start
        skipping = False  # inside an over-long line, already passed on
        while block := handle.read(BLOCK_BYTES):
            block = tail + block
            # A final \r may be the first half of \r\n: leave it for the next block.
            cut = max(block.rfind(b"\n"), block.rfind(b"\r", 0, len(block) - 1)) + 1
            tail = block[cut:]
            if cut:
                start = 0
                if skipping:  # the first break ends the over-long line
                    start = _after_first_break(block)
                    next_number += 1
                    skipping = False
                end = cut - 2 if block[cut - 2 : cut] == b"\r\n" else cut - 1  # drop last break
                if start <= end:
                    next_number = _collect(block[start:end], next_number, lines, numbers)
            if len(tail) - tail.endswith(b"\r") > MAX_LINE_BYTES:
                if not skipping:
                    lines.append(tail[: MAX_LINE_BYTES + 1])
                    numbers.append(next_number)
                    skipping = True
                tail = tail[-1:] if tail.endswith(b"\r") else b""  # maybe half a \r\n
            while len(lines) >= chunk_rows:
                yield RawChunk(lines[:chunk_rows], numbers[:chunk_rows])
                del lines[:chunk_rows], numbers[:chunk_rows]
        if tail and not skipping:
            _collect(tail, next_number, lines, numbers)
        for at in range(0, len(lines), chunk_rows):
            yield RawChunk(lines[at : at + chunk_rows], numbers[at : at + chunk_rows])


def _after_first_break(text: bytes) -> int:
    """Position just after the first `\n`, `\r\n` or `\r` of `text` (which has one)."""
    end = min(i for i in (text.find(b"\n"), text.find(b"\r")) if i >= 0)
    return end + 2 if text[end : end + 2] == b"\r\n" else end + 1


def _collect(text: bytes, first_number: int, lines: list[bytes], numbers: list[int]) -> int:
    """Append the non-empty lines of `text` and their numbers; return the next line number."""
    if b"\r" in text:
        text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    split = text.split(b"\n")
    if b"" in split:
        kept = [(n, line) for n, line in enumerate(split, first_number) if line]
        numbers.extend(n for n, _ in kept)
        lines.extend(line for _, line in kept)
    else:
        numbers.extend(range(first_number, first_number + len(split)))
        lines.extend(split)
    return first_number + len(split)
