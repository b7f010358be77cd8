"""Reading CSV files robustly, through the command line: pipes, devices and oversized files are
refused before the run lock; mixed UTF-8/Windows-1252 files and oversized cells are reported as
what they are; reading streams (a file's size does not decide the memory it needs)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ucware_contactsync import db as dbmod
from ucware_contactsync.csvimport import reader
from ucware_contactsync.sync.lock import RunLock

ANNA = "anna@contoso.de"
ARGS = ("--user", ANNA, "--phonebook", "Kunden")


@pytest.fixture(scope="module")
def backend_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite only: reading a file does not depend on the database server."""
    url = f"sqlite:///{tmp_path_factory.mktemp('csvreading') / 'test.db'}"
    engine = dbmod.make_engine(url)
    dbmod.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def anna(cli):  # type: ignore[no-untyped-def]
    assert cli("users", "add", ANNA).code == 0
    return cli


def one_line(r) -> str:  # type: ignore[no-untyped-def]
    assert r.code == 2, r.err
    assert "unexpected error" not in r.err and "Traceback" not in r.err, r.err
    return r.err


def entries(cli) -> list[str]:  # type: ignore[no-untyped-def]
    import json

    books = json.loads(cli("phonebook", "show", "--json").out)
    return [e["display_name"] for b in books for e in b["entries"]]


def test_a_fifo_is_refused_at_once_and_never_holds_the_lock(anna, db_url, tmp_path, monkeypatch
                                                             ) -> None:
    monkeypatch.setenv("CONTACTSYNC_LOCK_DIR", str(tmp_path))
    fifo = tmp_path / "contacts.csv"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    r = anna("import-csv", str(fifo), *ARGS)
    assert "not a regular file" in one_line(r)
    assert time.monotonic() - t0 < 5
    with RunLock(db_url):  # the lock is free: nothing was left holding it
        pass


@pytest.mark.parametrize("path", ["/dev/urandom", "/dev/zero", "/tmp"])
def test_devices_and_directories_are_refused(anna, path: str) -> None:
    r = anna("import-csv", path, *ARGS)
    assert "not a regular file" in one_line(r)
    assert anna("import-csv", path, *ARGS, "--dry-run").code == 2


def test_a_file_over_the_limit_is_refused_before_reading(anna, tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with big.open("wb") as f:  # sparse: no disk space, no time
        f.write(b"display_name,mobile\n")
        f.truncate(reader.MAX_FILE_BYTES + 1)
    r = anna("import-csv", str(big), *ARGS)
    err = one_line(r)
    assert f"{reader.MAX_FILE_BYTES // 2**20} MB" in err and "split" in err, err


def test_a_file_mixing_utf8_and_cp1252_is_refused_with_both_lines(anna, tmp_path: Path) -> None:
    f = tmp_path / "mixed.csv"
    f.write_bytes("display_name,mobile\nJürgen Groß,0171 1111111\n".encode()
                  + "Jörg Weiß,0171 2222222\n".encode("cp1252"))
    err = one_line(anna("import-csv", str(f), *ARGS))
    assert "line 3: line 3 is Windows-1252 but line 2 is UTF-8" in err, err
    assert entries(anna) == []
    # The other way round, and far apart (the check runs over the whole file in pieces).
    f.write_bytes("display_name,mobile\nJörg Weiß,0171 2222222\n".encode("cp1252")
                  + b"Max Muster,0171 3333333\n" * 100_000
                  + "Jürgen Groß,0171 1111111\n".encode())
    err = one_line(anna("import-csv", str(f), *ARGS))
    assert "line 100003: line 2 is Windows-1252 but line 100003 is UTF-8" in err, err


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "utf-8-sig", "utf-16"])
def test_each_encoding_alone_still_imports(anna, tmp_path: Path, encoding: str) -> None:
    f = tmp_path / "ok.csv"
    f.write_bytes("display_name,mobile\nJürgen Groß,0171 1111111\n".encode(encoding))
    r = anna("import-csv", str(f), *ARGS)
    assert r.code == 0, r.err
    assert entries(anna) == ["Jürgen Groß"]


def test_an_oversized_cell_is_reported_as_such(anna, tmp_path: Path) -> None:
    f = tmp_path / "cell.csv"
    f.write_text(f"display_name,mobile\nAnna,1\n\"{'x' * 200_000}\",2\n", encoding="utf-8")
    err = one_line(anna("import-csv", str(f), *ARGS))
    assert "line 3: a cell longer than 131,072 characters" in err, err
    assert "unbalanced" not in err
    # An unclosed quote that swallows the rest of the file is still called what it is.
    f.write_text("display_name,mobile\n\"Anna,1\n" + "Max,2\n" * 30_000, encoding="utf-8")
    err = one_line(anna("import-csv", str(f), *ARGS))
    assert "line 2: a quoted cell starting in this row is never closed" in err, err


def test_a_line_without_end_is_refused_without_reading_it_whole(anna, tmp_path: Path) -> None:
    f = tmp_path / "oneline.csv"
    f.write_bytes(b"display_name,mobile\n" + b"x" * (5 * reader.MAX_LINE_CHARS))
    err = one_line(anna("import-csv", str(f), *ARGS))
    assert "line 2" in err and "longer than" in err, err
