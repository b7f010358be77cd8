"""Bytes to rows: encoding detection, delimiter sniffing, and rows with physical line numbers.

Users bring files from Outlook on Windows (cp1252), Google (UTF-8 with BOM), Excel (UTF-8,
cp1252, UTF-16 for "Unicode text") and editors. We accept exactly what we can tell apart
reliably; everything else is refused with a message naming the accepted encodings, because a
wrongly guessed encoding would silently write mojibake into every phonebook.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

ACCEPTED_ENCODINGS = "UTF-8 (with or without BOM), Windows-1252 (ANSI) or UTF-16 with BOM"
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

# Control characters that never occur in a text CSV; their presence means binary or UTF-16.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f]")


class ReadError(Exception):
    """A problem that stops reading the file, with the physical line it was found on."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def delimiter_name(delimiter: str) -> str:
    return _DELIMITER_NAMES.get(delimiter, repr(delimiter))


def _line_of(data: bytes, pos: int) -> int:
    return data.count(b"\n", 0, pos) + 1


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name). BOM first, then strict UTF-8, then cp1252 if it looks like text."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            text, encoding = data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise ReadError(_line_of(data, exc.start + 3),
                            f"the file starts with a UTF-8 BOM but byte 0x{data[exc.start + 3]:02x}"
                            " is not UTF-8") from None
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode text" export: UTF-16 with BOM (and usually tabs).
        try:
            text, encoding = data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise ReadError(1, "the file starts with a UTF-16 BOM but is not valid UTF-16"
                            ) from None
    else:
        text, encoding = _decode_plain(data)
    # Checked for every encoding: a BOM must not smuggle NUL or escape characters into
    # phonebooks (PostgreSQL refuses NUL in text and the import would end in a crash).
    m = _CONTROL.search(text)
    if m is not None:
        bad = m.start()
        raise ReadError(text.count("\n", 0, bad) + 1,
                        f"control character U+{ord(text[bad]):04X}: not a text CSV file")
    return text, encoding


def _decode_plain(data: bytes) -> tuple[str, str]:
    nul = data.find(b"\x00")
    if nul >= 0:
        # UTF-16 without BOM, a spreadsheet (.xlsx/.xls) or other binary data.
        hint = " (this looks like an Excel workbook, not a CSV file)" if data[:2] in (
            b"PK", b"\xd0\xcf") else ""
        raise ReadError(_line_of(data, nul),
                        f"the file contains a NUL byte: not a text CSV file{hint}")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError as exc:
            raise ReadError(_line_of(data, utf8_error.start),
                            f"byte 0x{data[exc.start]:02x} is neither UTF-8 nor Windows-1252"
                            ) from None


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


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # physical line of the row's first character (1 = header)
    cells: list[str]


def rows(text: str, delimiter: str) -> Iterator[Row]:
    """Rows with the physical line they start on; quoted cells may span lines.

    ``strict`` makes the csv module fail on a quote that is never closed (instead of
    swallowing the rest of the file into one cell) and on text after a closing quote;
    both are reported at the line where the broken row starts.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"',
                        doublequote=True, strict=True)
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ReadError(line, f"unbalanced quotes: a quoted cell starting in this row is "
                            f"not closed properly ({exc})") from None
        yield Row(line, cells)
        line = reader.line_num + 1
