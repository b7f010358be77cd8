"""The fault matrix (reliability/network.py) in the suite: every network and bad-data case on
every test database, at suite size. ``python3 -m reliability`` prints the same rows as a table
(with the process faults of reliability/process.py, tested in tests/test_process_faults.py).

A case passes if the run under the fault ended with its documented exit code and one clear
line per failure (no traceback), every phonebook is in its old or its fully updated state,
hand-typed and CSV entries are untouched, and the next healthy run makes every phonebook
equal its mailbox. The tests below the matrix pin the bugs it found.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reliability.common import Case
from reliability.lab import Lab
from reliability.network import CASES, ODD_NAMES
from ucware_contactsync.testing import generate_tenant


def _backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "mariadb" if url.startswith("mysql") \
        else "postgresql"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_case(case: Case, db_url: str, tmp_path: Path) -> None:
    if _backend(db_url) not in case.backends:
        pytest.skip(f"{case.name} does not run on {_backend(db_url)}")
    outcome = case.run(db_url, tmp_path, False)
    assert outcome.passed, (f"{case.fault} on {_backend(db_url)}: {outcome.happened}; "
                            f"lost: {outcome.lost}")


def test_cut_soap_answer_of_a_full_read_is_retried_not_taken(db_url: str,
                                                             tmp_path: Path) -> None:
    """exchangelib parses with lxml's recover=True: a SyncFolderItems answer cut in half
    parsed as the first half of the contacts plus a SyncState claiming all of them, so the
    rest never arrived (and a --full run would have deleted them)."""
    tenant = generate_tenant(seed=2, mailboxes=1, contacts_per_mailbox=60, subfolders=0,
                             distribution_lists=0, roles=("full_access_as_app",))
    with Lab(db_url, tmp_path, tenant) as lab:
        # request 1: SyncFolderHierarchy, request 2: the SyncFolderItems page -> cut
        lab.fx.faults.malformed_response(count=1, api="ews", every=2)
        r = lab.sync()
        assert r.code == 0, r.err
        cut = [q for q in lab.fx.requests if q.fault == "malformed_response"]
        assert [q.operation for q in cut] == ["SyncFolderItems"]
        assert lab.mismatch(lab.snap()) == ""
        items = [q for q in lab.fx.requests if q.operation == "SyncFolderItems"]
        assert len(items) == 2  # the cut page was asked again


def test_library_warnings_stay_out_of_the_one_line(db_url: str, tmp_path: Path) -> None:
    """exchangelib warns ("Decreasing session pool size ...") on throttling and dropped
    connections; with no root handler, logging's last resort printed that under our line."""
    tenant = generate_tenant(seed=3, mailboxes=2, contacts_per_mailbox=10,
                             roles=("full_access_as_app",))
    with Lab(db_url, tmp_path, tenant) as lab:
        lab.fx.faults.drop_connection(count=2, api="ews")
        r = lab.sync()
        assert r.code == 0, r.err
        assert "session pool" not in r.err
        assert not r.problems(), r.err


def test_control_characters_dropped_from_hand_typed_entries(db_url: str,
                                                           tmp_path: Path) -> None:
    """Hand-typed entries get the same rule as synced ones: control characters other than
    tab and newline are dropped (PostgreSQL cannot store NUL), emoji stay. (The CSV import
    refuses a file with control characters as not a text file before anything is written.)"""
    tenant = generate_tenant(seed=4, mailboxes=1, contacts_per_mailbox=1,
                             roles=("Contacts.Read",))
    with Lab(db_url, tmp_path, tenant) as lab:
        email = next(iter(tenant.mailboxes))
        r = lab.cli("phonebook", "add", "--user", email, "--name", "Null\x00Bell\x07 🎉\tTab",
                    "--company", "Esc\x1b[0m GmbH", "--number", "mobile:0171\x00 1234567")
        assert r.code == 0, r.err
        shown = json.loads(lab.cli("phonebook", "show", "--json").out)
        (entry,) = [e for b in shown for e in b["entries"]]
        assert entry["display_name"] == "NullBell 🎉\tTab"
        assert entry["company"] == "Esc[0m GmbH"
        assert entry["numbers"] == [{"type": "mobile", "number": "0171 1234567",
                                     "e164": "+491711234567"}]


def test_shrinking_the_session_pool_never_waits() -> None:
    """exchangelib answers ErrorServerBusy with decrease_poolsize(), which took a session out
    of the pool while holding the lock that adding one needs: with every session in use the
    thread hung forever, and the run with it (the --full throttling storm hung this way).
    The EWS source replaces it with one that drops an idle session or none."""
    import threading

    from exchangelib import NTLM, Build, Configuration, Credentials, Version
    from exchangelib.protocol import Protocol

    from ucware_contactsync.sources import exchangelib_patches

    exchangelib_patches.apply()  # what the EWS source does when it is built

    # exchangelib caches a Protocol per endpoint and credentials: an endpoint of its own, so
    # that no other test's (smaller) pool is handed back here.
    config = Configuration(service_endpoint="https://127.0.0.1:9/EWS/Shrink.asmx",
                           credentials=Credentials("svc-shrink", "pw"), auth_type=NTLM,
                           version=Version(build=Build(15, 1, 2507, 6)), max_connections=8)
    Protocol.clear_cache()
    protocol = Protocol(config=config)
    try:
        busy = [protocol.get_session(), protocol.get_session()]  # two threads' requests
        shrink = threading.Thread(target=protocol.decrease_poolsize, daemon=True)
        shrink.start()
        shrink.join(5)
        assert not shrink.is_alive(), "decrease_poolsize blocked with every session in use"
        assert protocol.session_pool_size == 2
        protocol.release_session(busy.pop())
        protocol.decrease_poolsize()  # an idle session is there: it goes
        assert protocol.session_pool_size == 1
    finally:
        Protocol.clear_cache()  # closes the pool without waiting for the busy sessions


def test_odd_names_are_what_the_matrix_expects() -> None:
    """The bad-data case's names hold what it claims: NUL, C0, DEL, C1, tab, newline, emoji
    (so a change to ODD_NAMES cannot quietly drop the hard part)."""
    text = "".join("".join(t) for t in ODD_NAMES)
    for ch in ("\x00", "\x07", "\x1b", "\x7f", "\x85", "\t", "\n", "🎉"):
        assert ch in text
