"""Run history and undo through the command line: a sync that removes 3 and updates 2 entries,
`history` and `history show` list exactly those, `undo` puts them back byte for byte and
refuses (one line each) the entries a person or a later run changed since; a CSV import's
undo; retention; a SIGKILL leaves no history of a change that did not commit."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from reliability import child
from reliability.common import history_mismatch, last_run
from reliability.lab import Lab
from ucware_contactsync.db import Database
from ucware_contactsync.model import Change, Entry, Number, Run, utcnow
from ucware_contactsync.testing import generate_tenant, mutate

GRAPH = ("Contacts.Read",)
ANNA = "anna.berg@contoso.de"
JUERGEN = "juergen.schaefer@contoso.de"


def tenant(seed: int = 7, mailboxes: int = 2, contacts: int = 10):  # type: ignore[no-untyped-def]
    return generate_tenant(seed=seed, mailboxes=mailboxes, contacts_per_mailbox=contacts,
                           subfolders=0, distribution_lists=0, roles=GRAPH)


def as_json(r):  # type: ignore[no-untyped-def]
    assert r.code == 0, r.err
    return json.loads(r.out)


def by_source(book: dict) -> dict[str, dict]:
    return {e["source_id"]: e for e in book["entries"]}


def history_rows(db_url: str) -> tuple[int, int]:
    database = Database(db_url)
    with database.session() as s:
        counts = (s.scalar(select(func.count()).select_from(Run)),
                  s.scalar(select(func.count()).select_from(Change)))
    database.dispose()
    return counts  # type: ignore[return-value]


def edit_by_hand(db_url: str, source_id: str) -> None:
    """What a person does in the UCC client: change a synced entry's number."""
    database = Database(db_url)
    with database.session() as s:
        entry_id = s.scalar(select(Entry.id).where(Entry.source_id == source_id))
        s.execute(update(Number).where(Number.entry_id == entry_id, Number.position == 0)
                  .values(number="0170 0000000", e164="+491700000000"))
    database.dispose()


def test_sync_history_and_undo(office_factory, cli, db_url):
    t = tenant()
    mbx = t.mailbox(ANNA)
    special = mbx.add_contact(
        given_name="Jürgen", surname="Weiß-Öztürk", company="Bäckerei Größl",
        emails=["jürgen@bäckerei.de"], categories=["Kunden"],
        numbers={"business": "+49 89 12345-0", "mobile": "0171 1234567",
                 "home": "(089) 123457", "business_fax": "0049 30 1234568",
                 "other": "+1 (212) 555-0100", "car": "n/a"})
    office = office_factory(t)
    assert office.sync().code == 0
    first = as_json(cli("history", "--json"))
    assert len(first) == 1 and first[0]["command"] == "sync" and first[0]["api"] == "graph"
    assert {b["owner"]: b["added"] for b in first[0]["phonebooks"]} == {
        ANNA: len(office.book(ANNA)["entries"]), JUERGEN: len(office.book(JUERGEN)["entries"])}
    old = by_source(office.book(ANNA))

    contacts = [i for i in mbx.all_items() if i.kind == "contact" and i.graph_id in old
                and i is not special]
    removed = [special, *contacts[:2]]
    updated = contacts[2:4]
    for item in removed:
        mbx.delete_contact(item.ews_id)
    mbx.update_contact(updated[0].ews_id, company="Neue Firma GmbH")
    mbx.update_contact(updated[1].ews_id, numbers={"mobile": "0151 7654321"})
    assert office.sync().code == 0
    synced = by_source(office.book(ANNA))

    runs = as_json(cli("history", "--json"))
    assert [r["run"] for r in runs] == [runs[0]["run"], first[0]["run"]]
    run = runs[0]
    assert run["phonebooks"] == [{"owner": ANNA, "name": "Privat", "added": 0, "updated": 2,
                                  "removed": 3}]
    assert run["outcome"].startswith("sync via graph: 2 users synced, 0 failed")
    shown = as_json(cli("history", "show", str(run["run"]), "--json"))
    gone = {c["before"]["source_id"]: c for c in shown["changes"] if c["action"] == "removed"}
    assert set(gone) == {i.graph_id for i in removed}
    assert all(c["before"] == old[sid] and c["after"] is None for sid, c in gone.items())
    changed = {c["after"]["source_id"]: c for c in shown["changes"] if c["action"] == "updated"}
    assert set(changed) == {i.graph_id for i in updated}
    for sid, c in changed.items():
        assert (c["before"], c["after"]) == (old[sid], synced[sid])
    assert len(shown["changes"]) == 5
    text = cli("history", "show", str(run["run"]))
    assert "- Jürgen Weiß-Öztürk" in text.out and "Neue Firma" not in text.out

    # A person changes one of the updated entries afterwards: that one is refused, the rest
    # goes back exactly as it was.
    edit_by_hand(db_url, updated[1].graph_id)
    dry = cli("undo", str(run["run"]), "--dry-run")
    assert dry.code == 1 and "3 restored, 1 reverted, 0 removed; 1 refused (dry run)" in dry.out
    assert by_source(office.book(ANNA)).keys() == synced.keys()
    r = cli("undo", str(run["run"]))
    assert r.code == 1, r.err
    refused = [ln for ln in r.err.splitlines() if ln.startswith("refused: ")]
    assert len(refused) == 1 and updated[1].display_name in refused[0]
    assert "was changed since run" in refused[0]
    assert "mailbox stays the source of truth" in r.err
    assert f"{ANNA} / Privat: 3 restored, 1 reverted, 0 removed; 1 refused" in r.out
    now = by_source(office.book(ANNA))
    for sid in [*gone, updated[0].graph_id]:
        assert now[sid] == old[sid]  # numbers as written, E.164, types, source id
    assert now[special.graph_id]["numbers"][0] == {"type": "business",
                                                   "number": "+49 89 12345-0",
                                                   "e164": "+4989123450"}
    assert now[updated[1].graph_id]["numbers"][0]["number"] == "0170 0000000"
    assert len(now) == len(old)

    # The undo is a run of its own; undoing it again refuses nothing it restored.
    latest = as_json(cli("history", "--json"))[0]
    assert latest["command"] == f"undo {run['run']}"
    assert latest["phonebooks"] == [{"owner": ANNA, "name": "Privat", "added": 3,
                                     "updated": 1, "removed": 0}]
    assert cli("undo", str(run["run"])).code == 1  # nothing left to put back: all refused

    # The mailbox is the source of truth: the next sync reads it in full and removes again.
    assert office.sync("-v").code == 0
    after = by_source(office.book(ANNA))
    assert not set(gone) & set(after)
    assert after[updated[0].graph_id] == synced[updated[0].graph_id]


def test_undo_refuses_what_a_later_run_changed(office_factory, cli):
    t = tenant(seed=8, mailboxes=1)
    mbx = t.mailbox(ANNA)
    office = office_factory(t)
    assert office.sync().code == 0
    item, other = [i for i in mbx.all_items() if i.kind == "contact"][:2]
    first = by_source(office.book(ANNA))
    mbx.update_contact(item.ews_id, company="Zweite GmbH")
    mbx.update_contact(other.ews_id, company="Andere AG")
    assert office.sync().code == 0
    second = as_json(cli("history", "--json"))[0]["run"]
    mbx.update_contact(item.ews_id, company="Dritte GmbH")
    assert office.sync().code == 0
    r = cli("undo", str(second), "--user", ANNA.upper())
    assert r.code == 1
    assert [ln for ln in r.err.splitlines() if ln.startswith("refused:")] == [
        f"refused: {ANNA} / Privat: {item.display_name!r} was changed since run {second}; "
        "left as it is"]
    now = by_source(office.book(ANNA))
    assert now[other.graph_id] == first[other.graph_id]
    assert now[item.graph_id]["company"] == "Dritte GmbH"


def test_nothing_changed_writes_no_history(office_factory, cli, db_url):
    office = office_factory(tenant(seed=9, mailboxes=1))
    assert office.sync().code == 0
    rows = history_rows(db_url)
    assert rows[0] == 1 and rows[1] > 0
    assert office.sync().code == 0
    assert office.sync("--full").code == 0
    assert history_rows(db_url) == rows
    assert cli("phonebook", "show", "--json").code == 0
    assert history_rows(db_url) == rows


def test_csv_import_history_and_final_undo(cli, admin_setup, tmp_path: Path):
    admin_setup(ANNA)
    csv = tmp_path / "kontakte.csv"
    csv.write_text("display_name,company,mobile,business\n"
                   "Max Muster,Muster AG,0171 1111111,089 123456\n"
                   "Erika Beispiel,,+43 1 234567,\n", encoding="utf-8")
    assert cli("import-csv", str(csv), "--user", ANNA, "--phonebook", "Lieferanten").code == 0
    runs = as_json(cli("history", "--phonebook", "Lieferanten", "--json"))
    assert runs[0]["command"] == f"import-csv {csv} --user {ANNA} --phonebook Lieferanten"
    assert runs[0]["outcome"] == "ok" and runs[0]["api"] is None
    assert runs[0]["phonebooks"] == [{"owner": ANNA, "name": "Lieferanten", "added": 2,
                                      "updated": 0, "removed": 0}]
    assert as_json(cli("history", "--phonebook", "Privat", "--json")) == []
    r = cli("undo", str(runs[0]["run"]))
    assert r.code == 0, r.err
    assert "source of truth" not in r.err
    assert f"{ANNA} / Lieferanten: 0 restored, 0 reverted, 2 removed" in r.out
    books = as_json(cli("phonebook", "show", "--user", ANNA, "--json"))
    assert [b["entries"] for b in books if b["name"] == "Lieferanten"] == [[]]


def test_retention_and_history_days_zero(cli, admin_setup, tmp_path: Path, db_url):
    admin_setup(ANNA)
    csv = tmp_path / "a.csv"
    csv.write_text("display_name,mobile\nMax Muster,0171 1111111\n", encoding="utf-8")
    assert cli("import-csv", str(csv), "--user", ANNA, "--phonebook", "A").code == 0
    database = Database(db_url)
    with database.session() as s:
        s.execute(update(Run).values(started_at=utcnow() - timedelta(days=31)))
    database.dispose()
    assert as_json(cli("history", "--since", "2000-01-01", "--json")) != []
    assert as_json(cli("history", "--since", (utcnow() - timedelta(days=2)).date().isoformat(),
                       "--json")) == []
    csv.write_text("display_name,mobile\nMax Muster,0171 2222222\n", encoding="utf-8")
    assert cli("import-csv", str(csv), "--user", ANNA, "--phonebook", "A").code == 0
    runs = as_json(cli("history", "--json"))  # the 31 days old run is gone
    assert [b["updated"] for r in runs for b in r["phonebooks"]] == [1]
    assert cli("config", "set", "history_days", "0").code == 0
    csv.write_text("display_name,mobile\nMax Muster,0171 3333333\n", encoding="utf-8")
    assert cli("import-csv", str(csv), "--user", ANNA, "--phonebook", "A").code == 0
    assert history_rows(db_url) == (1, 1)
    assert cli("config", "set", "history_days", "many").code == 2


def test_bad_input_is_one_line(cli, admin_setup):
    admin_setup(ANNA)
    for argv, words in ((("history", "--since", "gestern"), "is not a date"),
                        (("history", "show", "42"), "there is no run 42"),
                        (("undo", "42"), "there is no run 42"),
                        (("history", "--user", "nobody@contoso.de"), "nobody@contoso.de")):
        r = cli(*argv)
        assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert cli("history").code == 0


def test_sigkill_leaves_no_history_of_uncommitted_changes(db_url, tmp_path: Path):
    """Kill the sync after its first user's commit: the changes the run recorded, replayed on
    the phonebooks as they were, give exactly the phonebooks the kill left; the run stays
    "incomplete". (reliability's sigkill-write case checks the same at random kill points.)"""
    t = tenant(seed=12, mailboxes=4, contacts=150)
    with Lab(db_url, tmp_path, t) as lab:
        assert lab.sync().code == 0
        old, runs_before = lab.snap(), last_run(db_url)
        mutate(t, seed=5, adds=30, updates=40, deletes=30)
        proc = child.start(db_url, "-v", "sync")
        assert proc.wait_line(child.is_user_line) is not None
        proc.kill()
        res = proc.finish()
        mid = lab.snap()
        assert res.code == -9, res.err
        assert mid != old and history_mismatch(db_url, old, mid, runs_before) == "nothing"
        database = Database(db_url)
        with database.session() as s:
            run = s.scalars(select(Run).order_by(Run.id.desc())).first()
        database.dispose()
        assert run.id > runs_before and run.outcome == "incomplete"
        assert history_mismatch(db_url, mid, old, runs_before) != "nothing"  # it can fail
        assert lab.sync().code == 0


def test_upgrade_from_the_version_before_history(office_factory, cli, db_url):
    """A database synced by the version before the history upgrades with nothing lost; until
    then every command says to run 'db init'."""
    from alembic import command
    from sqlalchemy import inspect

    from ucware_contactsync import db as dbmod

    t = tenant(seed=10, mailboxes=1)
    office = office_factory(t)
    assert office.sync().code == 0
    before = office.books()
    engine = dbmod.make_engine(db_url)
    command.downgrade(dbmod._alembic_config(engine), "0002")
    assert "history_runs" not in inspect(engine).get_table_names()
    engine.dispose()
    r = office.sync()
    assert r.code == 2 and "run 'ucware-contactsync db init' to upgrade it" in r.err
    assert cli("db", "init").code == 0
    assert office.books() == before
    mutate(t, seed=3, adds=1, updates=1, deletes=1)
    assert office.sync().code == 0
    runs = as_json(cli("history", "--json"))
    assert [(b["added"], b["updated"], b["removed"]) for r in runs for b in r["phonebooks"]] \
        == [(1, 1, 1)]


def test_vcard_import_is_recorded_and_its_undo_is_final(cli, admin_setup):
    """import-vcard goes through the same writer: one run, every entry; undo removes them
    without the sync's source-of-truth note."""
    admin_setup(ANNA)
    data = Path(__file__).parent / "data" / "vcard" / "apple_30.vcf"
    assert cli("import-vcard", str(data), "--user", ANNA, "--phonebook", "Karten").code == 0
    book = [b for b in as_json(cli("phonebook", "show", "--json")) if b["name"] == "Karten"][0]
    run = as_json(cli("history", "--json"))[0]
    assert run["command"].startswith("import-vcard ")
    assert run["phonebooks"] == [{"owner": ANNA, "name": "Karten",
                                  "added": len(book["entries"]), "updated": 0, "removed": 0}]
    shown = as_json(cli("history", "show", str(run["run"]), "--json"))
    assert sorted((c["after"] for c in shown["changes"]), key=repr) == \
        sorted(book["entries"], key=repr)
    r = cli("undo", str(run["run"]))
    assert r.code == 0 and "source of truth" not in r.err
    assert [b["entries"] for b in as_json(cli("phonebook", "show", "--json"))
            if b["name"] == "Karten"] == [[]]


def test_shared_phonebook_history_and_undo(office_factory, cli):
    """A company phonebook (no owner) is recorded like a personal one: owner null."""
    from ucware_contactsync.testing import Tenant

    t = Tenant(seed=19)
    t.add_app(roles=GRAPH)
    t.add_mailbox(ANNA).add_contact(given_name="A", surname="B", numbers={"mobile": "0171 1"})
    office = office_factory(t)
    kontakte = t.add_mailbox("kontakte@contoso.de")
    hotline = kontakte.add_contact(given_name="Hotline", surname="Support",
                                   numbers={"business": "+49 800 5550100"})
    assert cli("shared", "add", "kontakte@contoso.de", "--phonebook", "Kontakte").code == 0
    assert office.sync().code == 0
    before = [b for b in office.books() if b["owner"] is None][0]
    kontakte.delete_contact(hotline.id)
    assert office.sync().code == 0
    run = as_json(cli("history", "--phonebook", "Kontakte", "--json"))[0]
    assert run["phonebooks"] == [{"owner": None, "name": "Kontakte", "added": 0, "updated": 0,
                                  "removed": 1}]
    assert "(shared) / Kontakte" in cli("history").out
    r = cli("undo", str(run["run"]))
    assert r.code == 0 and "source of truth" in r.err, r.err
    assert [b for b in office.books() if b["owner"] is None][0] == before
