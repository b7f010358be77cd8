"""Bytes to rows: encoding detection, delimiter sniffing, and rows with physical line numbers.

Users bring files from Outlook on Windows (cp1252), Google (UTF-8 with BOM), Excel (UTF-8,
cp1252, UTF-16 for "Unicode text") and editors. We accept exactly what we can tell apart
reliably; everything else is refused with a message naming the accepted encodings, because a
wrongly guessed encoding would silently write mojibake into every phonebook. That includes a
file that mixes UTF-8 and Windows-1252 lines (two exports pasted together).

Files are read in pieces, never whole: one pass checks the encoding, a second one yields the
rows, so the memory the reading needs does not grow with the file (``open_csv``). Only
regular files up to ``MAX_FILE_BYTES`` are read; ``check_file`` says so before the run lock is
taken. ``decode`` and ``rows`` do the same for text already in memory.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

ACCEPTED_ENCODINGS = "UTF-8 (with or without BOM), Windows-1252 (ANSI) or UTF-16 with BOM"
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
MAX_FILE_BYTES = 32 * 1024 * 1024  # about 200,000 contacts (docs/csv-format.md)
MAX_LINE_CHARS = 1024 * 1024  # one physical line; more is not a text CSV file
CHUNK = 1024 * 1024
CELL_LIMIT = csv.field_size_limit()  # the csv module's limit for one cell (131072)

# Control characters that never occur in a text CSV; their presence means binary or UTF-16.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f]")
_CONTROL_BYTES = re.compile(b"[\x00-\x08\x0e-\x1f\x7f]")
# The bytes Windows-1252 leaves undefined.
_NOT_CP1252 = re.compile(b"[\x81\x8d\x8f\x90\x9d]")


class ReadError(Exception):
    """A problem that stops reading the file, with the physical line it was found on."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def delimiter_name(delimiter: str) -> str:
    return _DELIMITER_NAMES.get(delimiter, repr(delimiter))


# --- the file ----------------------------------------------------------------------------------

def check_file(path: Path, what: str = "CSV") -> int:
    """The size of ``path`` if it is a regular file we may read; else UsageError. Cheap: call
    it before taking the run lock (a FIFO or a device would otherwise block or never end)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"file {path} does not exist", f"give the path of a {what} file"
                         ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path} is not a regular file", f"give the path of a {what} file "
                         "(not a pipe, device or directory)")
    if st.st_size > MAX_FILE_BYTES:
        raise UsageError(f"{path} is {st.st_size / 2**20:.0f} MB, more than the "
                         f"{MAX_FILE_BYTES // 2**20} MB an import reads",
                         "split it into several files (by owner or phonebook)")
    return st.st_size


def _open(path: Path) -> io.BufferedReader:
    check_file(path)
    try:
        # O_NONBLOCK: should the path have become a FIFO since the check, opening does not hang.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UsageError(f"{path} is not a regular file", "give the path of a CSV file")
        os.set_blocking(fd, True)
        return open(fd, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


# --- encoding ----------------------------------------------------------------------------------

class _Detector:
    """Finds the encoding from pieces of bytes; ``line`` counts the lines already seen."""

    def __init__(self) -> None:
        self.encoding = ""  # utf-8-sig / utf-16 / utf-8 / cp1252 once known
        self.line = 1
        self.utf8_line = 0  # first line with non-ASCII text that is valid UTF-8
        self.bad: tuple[int, int] | None = None  # (line, byte) of the first non-UTF-8 byte
        self.blank = True  # nothing but white space so far
        self._decoder: codecs.IncrementalDecoder | None = None
        self._carry = b""  # the start of a line cut by the piece boundary

    def feed(self, data: bytes, first: bool, final: bool = False) -> None:
        if first:
            if data.startswith(codecs.BOM_UTF8):
                self.encoding, data = "utf-8-sig", data[3:]
            elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                self.encoding = "utf-16"
            self._decoder = codecs.getincrementaldecoder(self.encoding or "utf-8")("strict")
        if not self.encoding:
            self._feed_plain(data, final)
            return
        self._feed_bom(data, final)

    def _line_at(self, data: bytes, pos: int) -> int:
        return self.line + data.count(b"\n", 0, pos)

    def _feed_bom(self, data: bytes, final: bool) -> None:
        # Excel's "Unicode text" export: UTF-16 with BOM (and usually tabs); Google: UTF-8 BOM.
        assert self._decoder is not None
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            what = "UTF-16" if self.encoding == "utf-16" else "UTF-8"
            raise ReadError(self.line, f"the file starts with a {what} BOM but is not valid "
                            f"{what} (from about this line on; byte 0x{exc.object[exc.start]:02x})"
                            ) from None
        # Checked for every encoding: a BOM must not smuggle NUL or escape characters into
        # phonebooks (PostgreSQL refuses NUL in text and the import would end in a crash).
        m = _CONTROL.search(text)
        if m is not None:
            raise ReadError(self.line + text.count("\n", 0, m.start()),
                            f"control character U+{ord(m.group()):04X}: not a text CSV file")
        self.blank = self.blank and not text.strip()
        self.line += text.count("\n")

    def _feed_plain(self, data: bytes, final: bool) -> None:
        nul = data.find(b"\x00")
        if nul >= 0:
            # UTF-16 without BOM, a spreadsheet (.xlsx/.xls) or other binary data.
            hint = " (this looks like an Excel workbook, not a CSV file)" if (
                self.line == 1 and data[:2] in (b"PK", b"\xd0\xcf")) else ""
            raise ReadError(self._line_at(data, nul),
                            f"the file contains a NUL byte: not a text CSV file{hint}")
        m = _CONTROL_BYTES.search(data)
        if m is not None:  # the same bytes in UTF-8 and Windows-1252
            raise ReadError(self._line_at(data, m.start()),
                            f"control character U+{m.group()[0]:04X}: not a text CSV file")
        lines = (self._carry + data).split(b"\n")
        self._carry = b"" if final else lines.pop()
        if len(self._carry) > 4 * MAX_LINE_CHARS:
            raise ReadError(self.line + len(lines), f"a line longer than {MAX_LINE_CHARS:,} "
                            "characters: not a text CSV file")
        for n, raw in enumerate(lines, self.line):
            if self.blank and raw.strip():
                self.blank = False
            if not raw.isascii():
                self._classify(n, raw)
        self.line += len(lines)

    def _classify(self, n: int, raw: bytes) -> None:
        """A line with non-ASCII bytes is UTF-8 if it decodes as such, else Windows-1252;
        both kinds in one file is an error (a cp1252 line that happens to be valid UTF-8
        would read as mojibake like "Ã¼" in Windows-1252: it never happens in real text)."""
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if self.bad is None:
                self.bad = (n, raw[exc.start])
            m = _NOT_CP1252.search(raw)
            if m is not None:
                raise ReadError(n, f"byte 0x{m.group()[0]:02x} is neither UTF-8 nor "
                                "Windows-1252") from None
        else:
            self.utf8_line = self.utf8_line or n
        if self.bad is not None and self.utf8_line:
            raise ReadError(max(self.bad[0], self.utf8_line),
                            f"line {self.bad[0]} is Windows-1252 but line {self.utf8_line} is "
                            "UTF-8: the file mixes two encodings (exports pasted together?); "
                            "save it again in one encoding")

    def result(self) -> str:
        if self.encoding:
            return self.encoding
        return "utf-8" if self.bad is None else "cp1252"


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name) of bytes in memory: the same checks as ``open_csv``."""
    d = _Detector()
    d.feed(data, first=True, final=True)
    encoding = d.result()
    body = data[3:] if encoding == "utf-8-sig" else data
    return body.decode("utf-8" if encoding == "utf-8-sig" else encoding), encoding


def sniff_delimiter(text: str) -> str:
    """The candidate occurring most often outside quotes in the header line; comma on a tie."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "\r\n":
            break
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])  # max keeps the first (comma) on ties
    return best if counts[best] else ","


# --- rows --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Row:
    line: int  # physical line of the row's first character (1 = header)
    cells: list[str]


@dataclass
class CsvFile:
    """A checked file: its encoding, delimiter and a fresh row iterator per ``rows()`` call."""

    path: Path
    encoding: str
    delimiter: str
    blank: bool  # nothing but white space

    def rows(self) -> Iterator[Row]:
        with _open(self.path) as raw:
            text = io.TextIOWrapper(raw, encoding=self.encoding, newline="")
            yield from _rows(_lines(text), self.delimiter)


def open_csv(path: Path) -> CsvFile:
    """Check the whole file in pieces (ReadError: encoding; UsageError: not readable)."""
    d = _Detector()
    with _open(path) as f:
        first = True
        while True:
            data = f.read(CHUNK)
            d.feed(data, first, final=not data)
            first = False
            if not data:
                break
    encoding = d.result()
    with _open(path) as raw:
        head = io.TextIOWrapper(raw, encoding=encoding, newline="").read(CHUNK)
    return CsvFile(path, encoding, sniff_delimiter(head), d.blank)


def _lines(text: io.TextIOWrapper) -> Iterator[str]:
    """Physical lines, each at most MAX_LINE_CHARS long (the csv module needs whole lines)."""
    line = 0
    while True:
        piece = text.readline(MAX_LINE_CHARS)
        if not piece:
            return
        line += 1
        if len(piece) >= MAX_LINE_CHARS and not piece.endswith(("\n", "\r")):
            raise ReadError(line, f"line {line} is longer than {MAX_LINE_CHARS:,} characters: "
                            "not a text CSV file")
        yield piece


def rows(text: str, delimiter: str) -> Iterator[Row]:
    """Rows of text in memory; see ``_rows``."""
    return _rows(io.StringIO(text, newline=""), delimiter)


def _rows(lines: Iterable[str], delimiter: str) -> Iterator[Row]:
    """Rows with the physical line they start on; quoted cells may span lines.

    ``strict`` makes the csv module fail on a quote that is never closed (instead of
    swallowing the rest of the file into one cell) and on text after a closing quote;
    both are reported at the line where the broken row starts, and so is a cell longer than
    the csv module's limit.
    """
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True,
                        strict=True)
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _csv_problem(line, reader.line_num, exc) from None
        yield Row(line, cells)
        line = reader.line_num + 1


def _csv_problem(line: int, reached: int, exc: csv.Error) -> ReadError:
    if "field larger than field limit" in str(exc):
        if reached > line + 1:  # an open quote swallowed the following lines
            return ReadError(line, f"a quoted cell starting in this row is never closed: it "
                             f"runs over {reached - line + 1} lines and past {CELL_LIMIT:,} "
                             "characters (unbalanced quotes)")
        return ReadError(line, f"a cell longer than {CELL_LIMIT:,} characters (the most one "
                         "cell may hold)")
    return ReadError(line, f"unbalanced quotes: a quoted cell starting in this row is "
                     f"not closed properly ({exc})")
