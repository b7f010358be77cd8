"""The tenant model, the generator and the foreground command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from ucware_contactsync.contact import NUMBER_TYPES
from ucware_contactsync.testing import (
    Tenant,
    ews_to_graph_id,
    generate_tenant,
    graph_to_ews_id,
    mutate,
)

ROOT = Path(__file__).resolve().parents[2]


def _snapshot(t: Tenant) -> list[tuple[str, ...]]:
    return [(m.smtp, i.ews_id, i.change_key, i.display_name, repr(sorted(i.numbers.items())),
             i.folder.name) for m in t.mailboxes.values() for i in m.all_items()]


def test_generator_is_deterministic_and_realistic() -> None:
    a = generate_tenant(seed=3, mailboxes=2, contacts_per_mailbox=300)
    b = generate_tenant(seed=3, mailboxes=2, contacts_per_mailbox=300)
    assert a.tenant_id == b.tenant_id and _snapshot(a) == _snapshot(b)
    assert _snapshot(generate_tenant(seed=4, mailboxes=2, contacts_per_mailbox=300)) != \
        _snapshot(a)
    items = [i for m in a.mailboxes.values() for i in m.all_items()]
    contacts = [i for i in items if i.kind == "contact"]
    assert sum(i.kind == "distribution_list" for i in items) == 4
    text = " ".join(i.display_name for i in contacts)
    assert any(ch in text for ch in "äöüß") and any(ch in text for ch in "éçłø")
    numbers = [n for c in contacts for n in c.numbers.values()]
    assert any(n.startswith("+49") for n in numbers) and any(n.startswith("0") for n in numbers)
    assert any("/" in n for n in numbers) and any("(" in n for n in numbers)
    assert any(n in ("n/a", "tbd", "-", "?", "siehe Zentrale", "0", "keine") for n in numbers)
    types = {t for c in contacts for t in c.numbers}
    assert {"business", "mobile", "business_fax", "tty"} <= types <= set(NUMBER_TYPES)
    assert any(not c.numbers for c in contacts)
    mbx = next(iter(a.mailboxes.values()))
    assert any(f.parent is not mbx.contacts for f in mbx.contacts.descendants())


def test_ids_like_exchange() -> None:
    t = generate_tenant(seed=1, mailboxes=1, contacts_per_mailbox=100)
    mbx = next(iter(t.mailboxes.values()))
    items = mbx.all_items()
    assert sum(("+" in i.ews_id or "/" in i.ews_id) for i in items) > 80
    for i in items:
        assert i.graph_id == ews_to_graph_id(i.ews_id)
        assert graph_to_ews_id(i.graph_id) == i.ews_id
        assert "+" not in i.graph_id and "/" not in i.graph_id
        assert mbx.item(i.graph_id) is i and mbx.item(i.ews_id) is i
    c = items[0]
    keys = {c.change_key}
    for n in range(3):
        mbx.update_contact(c.graph_id, job_title=f"v{n}")
        keys.add(c.change_key)
    assert len(keys) == 4
    assert [ch.kind for ch in c.folder.change_log if ch.item_id == c.ews_id] == [
        "create", "update", "update", "update"]
    assert t.mailbox(mbx.smtp.upper()) is mbx
    with pytest.raises(KeyError):
        t.mailbox("nobody@contoso.de")
    with pytest.raises(ValueError):
        mbx.add_contact(numbers={"fax": "1"})


def test_change_tracking_rules() -> None:
    t = Tenant(seed=5)
    mbx = t.add_mailbox("x@contoso.de")
    a = mbx.add_contact(given_name="A")
    b = mbx.add_contact(given_name="B")
    changes, known, cursor, last = mbx.changes(mbx.contacts, 0, 0, 100)
    assert [(k, o.ews_id) for k, o in changes] == [("create", a.ews_id), ("create", b.ews_id)]
    assert last and known == cursor == mbx.seq
    c = mbx.add_contact(given_name="C")
    mbx.update_contact(c.ews_id, surname="Neu")
    d = mbx.add_contact(given_name="D")
    mbx.delete_contact(d.ews_id)
    mbx.update_contact(a.ews_id, surname="X")
    mbx.delete_contact(b.ews_id)
    changes, *_ = mbx.changes(mbx.contacts, known, cursor, 100)
    assert sorted((k, o.ews_id) for k, o in changes) == sorted(
        [("create", c.ews_id), ("update", a.ews_id), ("delete", b.ews_id)])


def test_mutate_reports_what_changed() -> None:
    t = generate_tenant(seed=2, mailboxes=2, contacts_per_mailbox=50)
    before = {m.key: set(m.items) for m in t.mailboxes.values()}
    result = mutate(t, seed=9, adds=3, updates=4, deletes=2)
    assert result.counts == (6, 8, 4)
    for key, mbx in t.mailboxes.items():
        assert not set(result.deleted[key]) & set(mbx.items)
        assert {i.ews_id for i in result.added[key]} == set(mbx.items) - before[key]


@pytest.mark.prints_secret  # the fake prints its app secret (to a pipe)
def test_command_runs_prints_config_and_stops(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ucware_contactsync.testing", "--seed", "2", "--mailboxes", "1",
         "--contacts", "5", "--cert-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "config set ca_bundle" in line:
                break
        out = "\n".join(lines)
        sets = [ln.split("config set ", 1)[1].split(" ", 1) for ln in lines
                if "ucware-contactsync config set" in ln]
        keys = [k for k, _ in sets]
        assert keys == ["tenant_id", "client_id", "client_secret", "login_url", "graph_url",
                        "ews_url", "ca_bundle"]
        conf = dict(sets)
        assert conf["ca_bundle"] == str(tmp_path / "ca.pem")
        r = requests.get(conf["graph_url"] + "/nothing", verify=conf["ca_bundle"], timeout=5)
        assert r.status_code == 404
        assert "anna.berg@contoso.de" in out
    finally:
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped." in rest


@pytest.mark.prints_secret  # the fake prints its app secret (to a pipe)
def test_command_json(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ucware_contactsync.testing", "--json", "--mailboxes", "1",
         "--contacts", "3"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        data = json.loads(proc.stdout.readline())
        assert data["ews_url"].endswith("/EWS/Exchange.asmx")
        assert Path(data["ca_bundle"]).exists()
    finally:
        proc.terminate()  # SIGTERM is a clean stop too
        proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert not Path(data["ca_bundle"]).exists()  # temp cert dir removed
