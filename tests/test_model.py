"""The data model on every backend: constraints, cascades, text round-trips."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ucware_contactsync import directory
from ucware_contactsync.contact import Contact, PhoneNumber
from ucware_contactsync.model import Entry, GroupMember, Number, Phonebook, User
from ucware_contactsync.phonebook import add_manual_entry, ensure_phonebook


def test_email_unique_case_insensitive(database):
    with database.session() as s:
        directory.add_user(s, "Anna.Berg@Contoso.de")
    with pytest.raises(IntegrityError), database.session() as s:
        s.add(User(email="anna.berg@contoso.DE"))
    with database.session() as s:
        assert directory.find_user(s, "ANNA.BERG@contoso.de").email == "Anna.Berg@Contoso.de"


def test_users_without_email_allowed_many(database):
    with database.session() as s:
        s.add_all([User(email=None, name="Empfang"), User(email="", name="Lager")])
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 2


def test_phonebook_title_unique_per_owner(database):
    with database.session() as s:
        u = directory.add_user(s, "a@example.de")
        ensure_phonebook(s, u, "Privat", "office365")
    with pytest.raises(IntegrityError), database.session() as s:
        u = directory.find_user(s, "a@example.de")
        s.add(Phonebook(owner=u, title="Privat", source="csv"))
        s.flush()


def test_titles_differ_by_umlaut_are_distinct(database):
    # utf8mb4_bin on MariaDB: "Müller" and "Muller" must not collide.
    with database.session() as s:
        u = directory.add_user(s, "a@example.de")
        ensure_phonebook(s, u, "Müller", "csv")
        ensure_phonebook(s, u, "Muller", "csv")
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Phonebook)) == 2


def test_cascade_on_user_deletion(database):
    with database.session() as s:
        u = directory.add_user(s, "a@example.de")
        directory.add_group(s, "G")
        directory.add_member(s, "G", "a@example.de")
        book = ensure_phonebook(s, u, "Privat", "manual")
        add_manual_entry(s, book, Contact(display_name="X", numbers=(
            PhoneNumber("mobile", "0171 1234567"),)), "DE")
    with database.session() as s:
        s.delete(directory.find_user(s, "a@example.de"))
    with database.session() as s:
        for model in (Phonebook, Entry, Number, GroupMember):
            assert s.scalar(select(func.count()).select_from(model)) == 0


def test_cascade_in_the_database_itself(database):
    # The server's own tools may delete a user with plain SQL: the FKs must cascade.
    with database.session() as s:
        u = directory.add_user(s, "a@example.de")
        book = ensure_phonebook(s, u, "Privat", "manual")
        add_manual_entry(s, book, Contact(display_name="X", numbers=(
            PhoneNumber("mobile", "0171 1234567"),)), "DE")
    with database.engine.begin() as conn:
        conn.execute(User.__table__.delete())
        assert conn.scalar(select(func.count()).select_from(Number.__table__)) == 0


def test_umlauts_and_emoji_round_trip(database):
    name = "Jürgen Weiß 📞 Ærøskøbing"
    with database.session() as s:
        u = directory.add_user(s, "jürgen@exämple.de", name=name)
        book = ensure_phonebook(s, u, "Straße 🎉", "manual")
        add_manual_entry(s, book, Contact(display_name=name, company="Müller & Söhne GmbH"), "DE")
    with database.session() as s:
        e = s.scalar(select(Entry))
        assert e.display_name == name
        assert e.company == "Müller & Söhne GmbH"
        assert e.phonebook.title == "Straße 🎉"
        assert directory.find_user(s, "JÜRGEN@exämple.de") is not None


def test_overlong_field_rejected_in_model():
    with pytest.raises(ValueError, match="longer than 255"):
        Entry(display_name="x" * 256)
    with pytest.raises(ValueError, match="longer than 255"):
        Phonebook(title="y" * 256, source="manual")


def test_overlong_contact_field_cut_by_writer(database):
    with database.session() as s:
        u = directory.add_user(s, "a@example.de")
        book = ensure_phonebook(s, u, "Privat", "manual")
        add_manual_entry(s, book, Contact(display_name="ä" * 300, company="c" * 1000), "DE")
    with database.session() as s:
        e = s.scalar(select(Entry))
        assert e.display_name == "ä" * 255
        assert len(e.company) == 255


def test_unknown_source_kind_rejected():
    with pytest.raises(ValueError):
        Phonebook(title="x", source="ldap")


def test_selected_users_param_case_insensitive(database):
    with database.session() as s:
        for e in ("a@x.de", "b@x.de", "c@x.de"):
            directory.add_user(s, e)
        directory.add_group(s, "On")
        directory.add_group(s, "Off")
        directory.set_param(s, "On", "ews_synccontacts", " TRUE ")
        directory.set_param(s, "Off", "ews_synccontacts", "false")
        directory.add_member(s, "On", "a@x.de")
        directory.add_member(s, "On", "B@X.DE")
        directory.add_member(s, "Off", "c@x.de")
    with database.session() as s:
        assert [u.email for u in directory.selected_users(s)] == ["a@x.de", "b@x.de"]


def test_diff_rules():
    from ucware_contactsync.phonebook import ExistingEntry, diff_changes, diff_full

    a = Contact(display_name="A", source_id="1", numbers=(PhoneNumber("mobile", "1"),))
    a2 = Contact(display_name="A2", source_id="1", numbers=(PhoneNumber("mobile", "1"),))
    b = Contact(display_name="B", source_id="2")
    existing = {"1": ExistingEntry(10, "1", a.content_hash(), None, "A"),
                "3": ExistingEntry(30, "3", "x", None, "C")}
    d = diff_full(existing, [a, b])
    assert (d.adds, [e.id for e in d.removes], d.unchanged) == ([b], [30], 1)
    # incremental: create + update of one item in one read -> the later copy wins
    d = diff_changes(existing, [a, a2, b], deletes=["3", "9"])
    assert [c.display_name for _, c in d.updates] == ["A2"]
    assert d.adds == [b] and [e.id for e in d.removes] == [30] and d.unchanged == 0
    # an id seen as deleted and created in the same read (a move) stays
    d = diff_changes(existing, [a], deletes=["1"])
    assert d.removes == [] and d.unchanged == 2
    # a relinked id: same content under a new id updates the old entry
    moved = Contact(display_name="C", source_id="new")
    existing = {"old": ExistingEntry(5, "old", moved.content_hash(), None, "C")}
    d = diff_full(existing, [moved])
    assert d.adds == [] and d.removes == [] and d.updates[0][0].id == 5


@pytest.mark.parametrize("with_ids", [True, False])
def test_apply_gives_each_added_entry_its_own_numbers(database, with_ids):
    """Adds with source ids go in one statement and get their ids back by source id; adds
    without (the RETURNING path) in order: either way each entry has its own numbers."""
    from ucware_contactsync.phonebook import Diff, apply

    contacts = [Contact(display_name=f"Kontakt {i}", source_id=f"id-{i}" if with_ids else None,
                        numbers=(PhoneNumber("business", f"089 1234{i:02d}"),))
                for i in range(1200)]
    with database.session() as s:
        user = User(email="a@example.com")
        s.add(user)
        s.flush()
        book = ensure_phonebook(s, user, "Privat", "office365")
        apply(s, book, Diff(adds=contacts), "office365", "DE")
    with database.session() as s:
        rows = s.execute(select(Entry.display_name, Entry.source_id, Number.e164)
                         .join(Number, Number.entry_id == Entry.id)).all()
    assert sorted(rows) == sorted(
        (f"Kontakt {i}", f"id-{i}" if with_ids else None, f"+49891234{i:02d}")
        for i in range(1200))
