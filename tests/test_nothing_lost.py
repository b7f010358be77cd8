"""Nothing lost: ownership of phonebooks, the proportional guard, sync states keyed by
phonebook, mailbox, API and folder, a 404 on a changed item, users leaving the group.

Through the command line, against the fake Exchange Online over HTTPS, both APIs."""

from __future__ import annotations

import os
import time

import pytest

from ucware_contactsync.errors import LockedError
from ucware_contactsync.sync.lock import RunLock
from ucware_contactsync.testing import generate_tenant

ROLES = {"ews": ("full_access_as_app",), "graph": ("Contacts.Read",)}
ANNA = "anna.berg@contoso.de"


@pytest.fixture(params=["ews", "graph"])
def api(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def tenant(api):  # type: ignore[no-untyped-def]
    return generate_tenant(seed=13, mailboxes=1, contacts_per_mailbox=16, roles=ROLES[api])


def synced(book: dict) -> dict[str, str]:
    return {e["source_id"]: e["display_name"] for e in book["entries"] if e["source_id"]}


def callable_items(mbx) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {i.graph_id: i.display_name for i in mbx.all_items()
            if i.kind == "contact" and any(n and n.strip() for n in i.numbers.values())}


def named(office, title: str) -> dict:  # type: ignore[no-untyped-def]
    books = [b for b in office.books(ANNA) if b["name"] == title]
    assert len(books) == 1, [b["name"] for b in office.books(ANNA)]
    return books[0]


def failed_line(err: str, email: str = ANNA) -> str:
    lines = [ln for ln in err.splitlines() if email in ln and "FAILED" in ln]
    assert len(lines) == 1, err
    return lines[0]


# -- ownership: a hand-made or CSV phonebook is never taken over -------------------------------

def test_title_of_a_hand_made_phonebook_is_refused_not_adopted(office_factory, tenant):
    office = office_factory(tenant)
    cli = office.cli
    assert office.sync().code == 0
    assert cli("phonebook", "add", "--user", ANNA, "--phonebook", "Outlook", "--name", "Per Hand",
               "--number", "mobile:0170 1234567").code == 0
    before = named(office, "Outlook")
    assert before["source"] == "manual"
    assert cli("config", "set", "phonebookname", "Outlook").code == 0
    r = office.sync()
    assert r.code == 1, r.err
    line = failed_line(r.err)
    assert "'Outlook'" in line and "typed in by hand" in line and "rename" in line
    assert "phonebookname" in line and "Traceback" not in r.err
    assert named(office, "Outlook") == before  # not one Outlook contact merged in
    # back to the old title: the synced phonebook goes on, the hand-made one stays as it was
    assert cli("config", "set", "phonebookname", "Privat").code == 0
    r = office.sync()
    assert r.code == 0, r.err
    assert named(office, "Outlook") == before
    assert synced(named(office, "Privat")) == callable_items(tenant.mailbox(ANNA))


def test_title_of_a_csv_phonebook_is_refused(office_factory, tenant, tmp_path):
    office = office_factory(tenant)
    cli = office.cli
    csv = tmp_path / "kunden.csv"
    csv.write_text(f"owner,phonebook,id,display_name,business\n{ANNA},Kunden,k1,Max Müller,"
                   "089 1234560\n", encoding="utf-8")
    assert cli("import-csv", str(csv)).code == 0
    before = named(office, "Kunden")
    assert cli("config", "set", "phonebookname", "Kunden").code == 0
    r = office.sync()
    assert r.code == 1, r.err
    assert "'Kunden'" in failed_line(r.err) and "CSV import" in failed_line(r.err)
    assert named(office, "Kunden") == before


def test_hand_entry_before_the_first_run_lands_in_the_synced_phonebook(office_factory, tenant):
    """Typed into the sync's own title before the first run: that phonebook is the synced one
    to be, so the first run fills it and keeps the hand entry."""
    office = office_factory(tenant)
    assert office.cli("phonebook", "add", "--user", ANNA, "--name", "Hausmeister",
                      "--number", "mobile:0170 9999999").code == 0
    r = office.sync()
    assert r.code == 0, r.err
    book = office.book(ANNA)
    assert book["source"] == "office365"
    assert [e["display_name"] for e in book["entries"] if not e["source_id"]] == ["Hausmeister"]
    assert synced(book) == callable_items(tenant.mailbox(ANNA))


@pytest.mark.parametrize(("owner", "writer", "reserved", "after"), [
    (None, "office365", None, "office365"),
    (None, "csv", None, "csv"),
    (None, "manual", None, "manual"),
    (None, "manual", "office365", "office365"),   # typed into the sync's title: its phonebook
    (None, "csv", "office365", None),             # CSV never creates the sync's phonebook
    ("office365", "office365", None, "office365"),
    ("office365", "manual", None, "office365"),   # hand entries go into synced phonebooks
    ("office365", "csv", None, None),
    ("manual", "office365", None, None),          # never taken over
    ("csv", "office365", None, None),
    ("manual", "csv", None, "manual"),            # CSV fills a hand-made phonebook, stays manual
    ("manual", "csv", "office365", "manual"),
    ("csv", "csv", None, "csv"),
    ("csv", "manual", None, "csv"),
])
def test_may_write_is_the_one_rule(owner, writer, reserved, after):
    from ucware_contactsync.ownership import Origin, may_write

    got = may_write(owner, Origin(writer), Origin(reserved) if reserved else None)
    assert got == (Origin(after) if after else None)


# -- a changed contact whose GET answers 404 once (Graph) --------------------------------------

def test_changed_contact_answering_404_once_is_kept_and_read_again(office_factory):
    tenant = generate_tenant(seed=13, mailboxes=1, contacts_per_mailbox=16, roles=ROLES["graph"])
    office = office_factory(tenant)
    assert office.sync().code == 0
    mbx = tenant.mailbox(ANNA)
    item = next(i for i in mbx.all_items()
                if i.folder is mbx.contacts and i.graph_id in synced(office.book(ANNA)))
    mbx.update_contact(item.ews_id, display_name="Umbenannt Nach 404")

    def default_folder_delta() -> list[str]:
        return [q.url for q in office.fx.requests
                if q.operation == "delta" and "/contactFolders/" not in q.url]

    office.fx.faults.item_not_found(1)
    office.fx.clear_requests()
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert [q.fault for q in office.fx.requests if q.fault] == ["item_not_found"]
    assert item.graph_id in synced(office.book(ANNA))  # not deleted on a 404
    first_delta = default_folder_delta()
    office.fx.clear_requests()
    r = office.sync("-v")
    assert r.code == 0, r.err
    # the folder's delta link was not advanced: the same link again, and now the truth
    assert len(first_delta) == 1 and default_folder_delta() == first_delta
    assert synced(office.book(ANNA)) == callable_items(mbx)
    assert synced(office.book(ANNA))[item.graph_id] == "Umbenannt Nach 404"
    # and once it is really deleted, the delta from that link says so
    mbx.delete_contact(item.ews_id)
    assert office.sync().code == 0
    assert synced(office.book(ANNA)) == callable_items(mbx)


# -- the guard: a run that would remove more than guard_percent is refused ---------------------

def delete_all_but(mbx, keep: int) -> int:  # type: ignore[no-untyped-def]
    """Delete every contact of ``mbx`` except ``keep`` callable ones; how many synced go."""
    keeping = list(callable_items(mbx))[:keep]
    gone = 0
    for item in list(mbx.all_items()):
        if item.kind == "contact" and item.graph_id not in keeping:
            gone += item.graph_id in callable_items(mbx)
            mbx.delete_contact(item.ews_id)
    return gone


def guard_line(err: str) -> str:
    line = failed_line(err)
    assert "refused" in line and "guard_percent (50 %)" in line, line
    assert f"'ucware-contactsync sync --force --user {ANNA}'" in line
    return line


def test_guard_refuses_a_shrinking_mailbox_until_forced(office_factory, tenant, api):
    office = office_factory(tenant)
    assert office.sync().code == 0
    before = office.books()
    total = len(synced(office.book(ANNA)))
    gone = delete_all_but(tenant.mailbox(ANNA), 3)
    assert gone == total - 3 and gone >= 5
    for argv in ((), ("--dry-run",), ()):  # refused again: the stored states did not move on
        r = office.sync(*argv)
        assert r.code == 1, r.err
        assert f"would remove {gone} of the {total} synced entries" in guard_line(r.err)
        assert office.books() == before
    r = office.sync("--force", "--user", ANNA)
    assert r.code == 0, r.err
    assert synced(office.book(ANNA)) == callable_items(tenant.mailbox(ANNA))


def test_guard_sees_a_short_full_read_after_410(office_factory, tenant, api):
    office = office_factory(tenant)
    assert office.sync().code == 0
    before = office.books()
    total = len(synced(office.book(ANNA)))
    gone = delete_all_but(tenant.mailbox(ANNA), 1)
    office.fx.faults.invalidate_sync_states(ANNA)
    r = office.sync("-v")
    assert r.code == 1, r.err
    assert f"would remove {gone} of the {total}" in guard_line(r.err)
    assert office.books() == before


def test_guard_lets_small_changes_and_the_key_through(office_factory, tenant, api):
    office = office_factory(tenant)
    cli = office.cli
    assert office.sync().code == 0
    mbx = tenant.mailbox(ANNA)
    for sid in list(callable_items(mbx))[:4]:  # 4 removals always pass
        mbx.delete_contact(next(i.ews_id for i in mbx.all_items() if i.graph_id == sid))
    assert office.sync().code == 0
    assert synced(office.book(ANNA)) == callable_items(mbx)
    assert cli("config", "set", "guard_percent", "101").code == 2
    assert cli("config", "set", "guard_percent", "100").code == 0
    delete_all_but(mbx, 0)
    r = office.sync()  # 100 %: the guard never refuses
    assert r.code == 0, r.err
    assert synced(office.book(ANNA)) == {}


# -- sync states belong to a phonebook, a mailbox, an API and a folder -------------------------

def sync_line(err: str, email: str = ANNA) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith(f"{email}: ") and "added" in ln]
    assert len(lines) == 1, err
    return lines[0]


def test_title_back_and_forth_reads_the_old_phonebook_in_full(office_factory, tenant, api):
    from ucware_contactsync.testing import mutate

    office = office_factory(tenant)
    cli = office.cli
    mbx = tenant.mailbox(ANNA)
    assert office.sync().code == 0
    assert cli("config", "set", "phonebookname", "Outlook").code == 0
    assert office.sync().code == 0
    mutate(tenant, seed=31, adds=2, updates=2, deletes=2)  # edited while "Outlook" is synced
    assert office.sync().code == 0
    assert synced(named(office, "Outlook")) == callable_items(mbx)
    assert cli("config", "set", "phonebookname", "Privat").code == 0
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert f"(full, {api})" in sync_line(r.err)  # not resumed from the Outlook state
    assert synced(named(office, "Privat")) == callable_items(mbx)
    r = office.sync("-v")
    assert f"(incremental, {api})" in sync_line(r.err)


def test_changed_email_reads_the_new_mailbox_in_full(office_factory, tenant, api, database):
    from ucware_contactsync.model import User

    office = office_factory(tenant)
    assert office.sync().code == 0
    new = tenant.add_mailbox("anna.neu@contoso.de")
    for i in range(3):
        new.add_contact(given_name="Neu", surname=f"Kontakt {i}",
                        numbers={"mobile": f"0170 555000{i}"})
    with database.session() as s:  # what the admin client does
        s.query(User).filter_by(email_key=ANNA).one().email = "Anna.Neu@contoso.de"
    office.fx.clear_requests()
    r = office.sync()
    # a full read of the new mailbox, which would replace every entry: the guard asks first
    assert r.code == 1, r.err
    assert "refused" in failed_line(r.err, "Anna.Neu@contoso.de")
    assert {q.mailbox for q in office.fx.requests if q.mailbox} == {"anna.neu@contoso.de"}
    r = office.sync("--force", "--user", "anna.neu@contoso.de")
    assert r.code == 0, r.err
    book = [b for b in office.books() if b["name"] == "Privat"][0]
    assert synced(book) == callable_items(new)


def test_database_of_the_old_version_keeps_entries_one_full_read(office_factory, tenant, api,
                                                                 db_url):
    """Upgrade from the 0001 schema with data: every entry stays, the old per-user states go,
    the next run reads each mailbox once in full (writing nothing), then incrementally."""
    from alembic import command
    from sqlalchemy import text

    from ucware_contactsync import db as dbmod

    office = office_factory(tenant)
    assert office.cli("phonebook", "add", "--user", ANNA, "--name", "Hausmeister",
                      "--number", "mobile:0170 9999999").code == 0
    assert office.sync().code == 0
    before = office.books()
    engine = dbmod.make_engine(db_url)
    cfg = dbmod._alembic_config(engine)
    try:
        with engine.begin() as conn:
            states = conn.execute(text("SELECT api, folder_id, state FROM sync_states")).all()
        assert states
        command.downgrade(cfg, "0001")
        with engine.begin() as conn:  # what the old version stored: states per user
            uid = conn.execute(text("SELECT id FROM users")).scalar_one()
            for api_, folder, state in states:
                conn.execute(text("INSERT INTO sync_states (user_id, api, folder_id, state, "
                                  "updated_at) VALUES (:u, :a, :f, :s, CURRENT_TIMESTAMP)"),
                             {"u": uid, "a": api_, "f": folder, "s": state})
    finally:
        command.upgrade(cfg, "head")
        engine.dispose()
    assert office.books() == before
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert "0 added, 0 updated, 0 removed" in sync_line(r.err)
    assert f"(full, {api})" in sync_line(r.err)
    assert office.books() == before
    r = office.sync("-v")
    assert f"(incremental, {api})" in sync_line(r.err)


# -- a user who leaves the sync group ----------------------------------------------------------

def test_user_leaving_the_group_keeps_the_phonebook_with_one_line(office_factory, tenant, api,
                                                                  database):
    from sqlalchemy import func, select

    from ucware_contactsync.model import SyncState
    from ucware_contactsync.testing import mutate

    office = office_factory(tenant)
    cli = office.cli
    assert office.sync().code == 0
    before = office.books()
    assert cli("groups", "set", "Kontakte", "ews_synccontacts", "false").code == 0
    mutate(tenant, seed=41, adds=2, updates=2, deletes=2)
    r = office.sync("--dry-run")
    assert r.code == 0 and "would be dropped" in r.err
    r = office.sync()
    assert r.code == 0, r.err
    lines = [ln for ln in r.err.splitlines() if ln.startswith(f"{ANNA}: ")]
    assert len(lines) == 1 and "no longer in a group" in lines[0], r.err
    assert f"keeps its {len(synced(before[0]))} synced entries" in lines[0]
    assert office.books() == before  # nothing lost, nothing changed
    with database.session() as s:
        assert s.scalar(select(func.count(SyncState.id))) == 0  # stale states dropped
    r = office.sync()
    assert ANNA not in r.err  # said once
    # back in the group: read in full, matched entry by entry, no duplicates
    assert cli("groups", "set", "Kontakte", "ews_synccontacts", "true").code == 0
    r = office.sync("-v")
    assert r.code == 0 and f"(full, {api})" in sync_line(r.err)
    assert synced(office.book(ANNA)) == callable_items(tenant.mailbox(ANNA))
    assert len(office.book(ANNA)["entries"]) == len(callable_items(tenant.mailbox(ANNA)))


# -- the run lock excludes the same database however its URL is spelled -----------------------

def other_spelling(db_url: str, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """The same database under another URL: a symlinked path (SQLite), ``localhost`` without
    port and other query options (MariaDB, PostgreSQL)."""
    from sqlalchemy import make_url

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        link = tmp_path / "same.db"
        link.symlink_to(url.database)
        return f"sqlite:///{link}"
    extra = ({"charset": "utf8mb4"} if url.get_backend_name() == "mysql"
             else {"application_name": "contactsync-b"})
    return url.set(host="localhost", port=None).update_query_dict(extra).render_as_string(
        hide_password=False)


def test_two_spellings_of_one_database_share_the_lock(office_factory, db_url, tmp_path):
    import subprocess
    import sys

    tenant = generate_tenant(seed=13, mailboxes=1, contacts_per_mailbox=8,
                             roles=ROLES["graph"])
    office = office_factory(tenant)
    cli = office.cli
    other = other_spelling(db_url, tmp_path)
    csv = tmp_path / "kunden.csv"
    csv.write_text(f"owner,phonebook,id,display_name,business\n{ANNA},Kunden,k1,Max,089 1\n",
                   encoding="utf-8")
    holder = subprocess.Popen(  # a run that holds the lock under the first spelling
        [sys.executable, "-c", "import sys, time\n"
         "from ucware_contactsync.sync.lock import RunLock\n"
         "RunLock(sys.argv[1]).__enter__(); print('held', flush=True); time.sleep(120)",
         db_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for argv in (("sync",), ("import-csv", str(csv))):
            r = cli("--db", other, *argv, db=False)
            assert r.code == 75, r.err
            assert "another sync is running" in r.err and "IntegrityError" not in r.err
        assert office.books() == []
    finally:
        holder.kill()  # SIGKILL: the kernel and the database server drop its locks
        holder.wait()
    for _ in range(50):  # the server notices the closed connection at once; allow a moment
        r = cli("--db", other, "sync", db=False)
        if r.code != 75:
            break
        time.sleep(0.1)
    assert r.code == 0, r.err
    assert synced(office.book(ANNA)) == callable_items(tenant.mailbox(ANNA))


def test_sqlite_runs_with_different_state_dirs_share_the_lock(tmp_path, monkeypatch):
    """Root by hand and the service user from cron have different state directories; the
    lock beside the SQLite file still makes them meet (and goes with the holder)."""
    import subprocess
    import sys

    db = tmp_path / "book.db"
    env = {**os.environ, "CONTACTSYNC_LOCK_DIR": str(tmp_path / "one")}
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from ucware_contactsync.sync.lock import RunLock\n"
         "RunLock(sys.argv[1]).__enter__(); print('held', flush=True); time.sleep(120)",
         f"sqlite:///{db}"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("CONTACTSYNC_LOCK_DIR", str(tmp_path / "two"))
        with pytest.raises(LockedError, match="another sync is running on database"):
            RunLock(f"sqlite:///{tmp_path}/./book.db").__enter__()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(f"sqlite:///{db}"):
        pass
