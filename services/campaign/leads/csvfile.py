"""Read untrusted CSV files safely and write CSV exports that spreadsheets cannot execute.

Reading: the encoding is decided per file (a UTF-8 or UTF-16 byte order mark, or UTF-16
recognised by its NUL bytes), else per line: UTF-8, falling back to Windows-1252, so a file
that mixes both still imports. Bytes neither can decode become lone surrogates and the row
is rejected. A physical line longer than ``max_line`` is skipped (the row is rejected) so one
giant line never sits in memory. The delimiter (``,`` ``;`` or tab) is sniffed from the
header line, outside quotes.

Writing: cells starting with ``=``, ``+``, ``-``, ``@``, tab, CR or NUL get a leading ``'``
(OWASP ASVS V1.2.10); the csv module then quotes per RFC 4180.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

MAX_LINE_BYTES = 1024 * 1024
"""A physical line longer than this is rejected without being held in memory."""
LINE_TOO_LONG = "\x00\x01tidewater:line-too-long\x01\x00"
"""What the line reader yields instead of an overlong line; the row parser rejects it."""
DELIMITERS = (",", ";", "\t")
UTF16 = "utf-16"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\x00")


class FileRejected(ValueError):
    """The file as a whole cannot be imported (not a CSV, empty, wrong structure)."""


# --------------------------------------------------------------------------- formulas


def neutralise(cell: Any) -> str:
    """Return ``cell`` as text a spreadsheet shows rather than evaluates."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_line(cells: Iterable[Any]) -> str:
    """Format one RFC 4180 CSV line (CRLF-terminated) with every cell neutralised."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([neutralise(c) for c in cells])
    return buffer.getvalue()


# --------------------------------------------------------------------------- encodings


@dataclass(frozen=True, slots=True)
class FileFormat:
    """How to read one file: ``encoding`` is ``utf-16`` (whole file) or ``utf-8`` (per line, cp1252 fallback)."""

    encoding: str
    line_end: bytes = b"\n"


def detect_format(head: bytes) -> FileFormat:
    """Decide how to read a file from its first bytes; raise :class:`FileRejected` for binaries."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return FileFormat(UTF16)
    sample = head[:4096]
    if sample.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise FileRejected("This is a spreadsheet (Excel) file, not CSV: save it as CSV (UTF-8) and upload that.")
    if sample.startswith((b"\x1f\x8b", b"%PDF", b"\x89PNG")):
        raise FileRejected("This is a binary file, not CSV.")
    if len(sample) >= 4:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) > len(odd) * 0.3 and even.count(0) < len(even) * 0.05:
            return FileFormat("utf-16-le")
        if even.count(0) > len(even) * 0.3 and odd.count(0) < len(odd) * 0.05:
            return FileFormat("utf-16-be")
        if sample.count(0) > len(sample) * 0.1:
            raise FileRejected("This is a binary file, not CSV.")
    line_end = b"\r" if b"\n" not in sample and b"\r" in sample else b"\n"
    return FileFormat("utf-8", line_end)


def decode_line(raw: bytes) -> str:
    """Decode one line as UTF-8, else Windows-1252; undecodable bytes become lone surrogates."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="surrogateescape")


def _byte_lines(stream: IO[bytes], max_line: int) -> Iterator[str]:
    first = True
    while True:
        raw = stream.readline(max_line + 1)
        if len(raw) > max_line and not raw.endswith(b"\n"):
            while (rest := stream.readline(65536)) and not rest.endswith(b"\n"):
                pass
            yield LINE_TOO_LONG + "\n"
            continue
        if not raw:
            return
        if first:
            raw = raw.removeprefix(codecs.BOM_UTF8)
            first = False
        yield decode_line(raw)


def _text_lines(stream: IO[bytes], encoding: str, max_line: int) -> Iterator[str]:
    text = io.TextIOWrapper(stream, encoding=encoding, errors="surrogateescape", newline="")
    first = True
    try:
        while True:
            line = text.readline(max_line + 1)
            if not line:
                return
            if first:
                line = line.removeprefix("\ufeff")
                first = False
            if len(line) > max_line and not line.endswith(("\n", "\r")):
                while (rest := text.readline(65536)) and not rest.endswith(("\n", "\r")):
                    pass
                yield LINE_TOO_LONG + "\n"
                continue
            yield line
    except UnicodeDecodeError:  # a truncated last code unit: report it as an undecodable row
        yield "\udcff\n"
    finally:
        text.detach()


def text_lines(stream: IO[bytes], fmt: FileFormat, max_line: int = MAX_LINE_BYTES) -> Iterator[str]:
    """Yield decoded physical lines of a binary stream (the csv module joins quoted newlines)."""
    if fmt.encoding.startswith(UTF16):
        return _text_lines(stream, fmt.encoding, max_line)
    if fmt.line_end == b"\r":  # classic Mac line ends: let the text layer split them
        return _text_lines(stream, "utf-8", max_line)
    return _byte_lines(stream, max_line)


# --------------------------------------------------------------------------- structure


def sniff_delimiter(header_line: str) -> str:
    """Return the delimiter the header line uses most outside quotes (``,`` when none)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


class CsvRows:
    """Iterate the records of a CSV stream; a record the csv module cannot parse is yielded as an error."""

    def __init__(self, lines: Iterator[str], delimiter: str) -> None:
        self._lines = lines
        self._reader = csv.reader(lines, delimiter=delimiter, strict=False)

    def __iter__(self) -> Iterator[list[str] | csv.Error]:
        reader = self._reader
        while True:
            try:
                yield next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield exc


def open_rows(stream: IO[bytes], fmt: FileFormat, *, delimiter: str | None = None) -> tuple[str, CsvRows]:
    """Return ``(delimiter, records)`` of a binary stream, sniffing the delimiter from the first line."""
    lines = text_lines(stream, fmt)
    first = next(lines, "")
    while first.strip() == "" and first:
        first = next(lines, "")
    if not first:
        raise FileRejected("The file is empty.")
    if first.startswith(LINE_TOO_LONG):
        raise FileRejected("The header line is too long.")
    chosen = delimiter or sniff_delimiter(first)

    def chained() -> Iterator[str]:
        yield first
        yield from lines

    return chosen, CsvRows(chained(), chosen)
