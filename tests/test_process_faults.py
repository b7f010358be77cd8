"""Process faults and concurrency (reliability/process.py) in the suite, at suite size: the
real program as a child process, killed with SIGKILL in its write phase, its database server
killed under it, its SQLite disk full, two runs started at once. ``python3 -m reliability
--full`` runs the long loops (60 kills, 40 pairs).

Cases for every backend use the ``db_url`` fixture; cases for one backend get a fresh
database of their own (so the session databases of the other tests stay grouped). A case that
cannot get what it needs here (no mariadbd, no server) is skipped, or fails when
CONTACTSYNC_REQUIRE_ALL_DB=1 (CI).
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

import pytest

from reliability.common import Case, Outcome
from reliability.databases import fresh_database
from reliability.process import CASES, Unavailable

BACKENDS = [b.strip() for b in os.environ.get(
    "CONTACTSYNC_TEST_DATABASES", "sqlite,mariadb,postgresql").split(",") if b.strip()]
REQUIRE_ALL = os.environ.get("CONTACTSYNC_REQUIRE_ALL_DB") == "1"

EVERY = [c for c in CASES if len(c.backends) > 1]
SINGLE = [c for c in CASES if len(c.backends) == 1 and c.backends[0] in BACKENDS]


def _check(case: Case, outcome: Outcome) -> None:
    assert outcome.passed, f"{case.fault}: {outcome.happened}; lost: {outcome.lost}"


def _unavailable(case: Case, why: object) -> None:
    if REQUIRE_ALL:
        pytest.fail(f"{case.name}: {why} (required: CONTACTSYNC_REQUIRE_ALL_DB=1)")
    pytest.skip(f"{case.name}: {why}")


@pytest.mark.parametrize("case", EVERY, ids=[c.name for c in EVERY])
def test_process_fault(case: Case, db_url: str, tmp_path: Path) -> None:
    try:
        outcome = case.run(db_url, tmp_path, False)
    except Unavailable as exc:
        _unavailable(case, exc)
    _check(case, outcome)


@pytest.mark.parametrize("case", SINGLE, ids=[c.name for c in SINGLE])
def test_single_backend_fault(case: Case, tmp_path: Path) -> None:
    with ExitStack() as stack:
        try:
            url = stack.enter_context(fresh_database(case.backends[0], tmp_path / "db"))
        except Exception as exc:  # noqa: BLE001 - any connect failure: the server is not there
            _unavailable(case, exc)
        try:
            outcome = case.run(url, tmp_path / "case", False)
        except Unavailable as exc:
            _unavailable(case, exc)
    _check(case, outcome)


def test_cases_cover_the_backends() -> None:
    """The kill loop and the concurrency cases run on SQLite and MariaDB at least."""
    names = {c.name: c.backends for c in CASES}
    for name in ("sigkill-write", "concurrent-runs", "killed-lock-holder"):
        assert {"sqlite", "mariadb"} <= set(names[name]), name
    assert names["mariadb-restart"] == ("mariadb",)
    assert names["sqlite-disk-full"] == ("sqlite",)
