"""On-premises Exchange (office365=false): EWS over a real NTLM handshake with a service account,
through the command line, against the fake Exchange Server (pyspnego's acceptor)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile

import pytest
from test_sync import actual_entries, expected_entries

from ucware_contactsync.testing import generate_tenant, mutate

ANNA, JUERGEN = "anna.berg@contoso.de", "juergen.schaefer@contoso.de"
TYPE1, TYPE3 = "TlRMTVNTUAAB", "TlRMTVNTUAAD"  # base64 of "NTLMSSP\0" + message type


@pytest.fixture
def onprem(office_factory):  # type: ignore[no-untyped-def]
    def make(mailboxes: int = 2, contacts: int = 8):  # type: ignore[no-untyped-def]
        tenant = generate_tenant(seed=19, mailboxes=mailboxes, contacts_per_mailbox=contacts)
        return office_factory(tenant, on_premises=True)

    return make


def auth_values(office) -> list[str]:  # type: ignore[no-untyped-def]
    return [q.headers["Authorization"] for q in office.fx.requests
            if "Authorization" in q.headers]


def assert_books_match(office) -> None:  # type: ignore[no-untyped-def]
    for email in office.tenant.mailboxes:
        assert actual_entries(office.book(email)) == expected_entries(office.mailbox(email))


@pytest.mark.parametrize("name_form", ["domain", "upn"])
def test_first_and_incremental_sync_over_ntlm(onprem, name_form):
    office = onprem()
    acct = office.fx.service_account
    if name_form == "upn":
        assert office.cli("config", "set", "ews_username", acct.upn).code == 0
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert "2 users synced, 0 failed" in r.err
    assert "EWS in Exchange Online" not in r.err  # no sunset warning on premises
    assert_books_match(office)
    # Exchange's challenge: 401 without Authorization; then negotiate and authenticate on the
    # same kept-alive connection; that connection then stays signed in.
    reqs = office.fx.requests_for("ews")
    assert reqs[0].status == 401 and "Authorization" not in reqs[0].headers
    legs = [(i, q) for i, q in enumerate(reqs)
            if q.headers.get("Authorization", "").startswith(f"NTLM {TYPE3}")]
    assert legs and all(q.status == 200 for _, q in legs)
    for i, q in legs:  # (threads interleave in the log: the same connection's previous one)
        negotiate = [p for p in reqs[:i] if p.connection == q.connection][-1]
        assert negotiate.headers["Authorization"].startswith(f"NTLM {TYPE1}")
        assert negotiate.status == 401
    assert office.fx.ntlm.outcomes["ok"] == len(legs) and acct.bad_logons == 0
    assert sum(1 for q in reqs if "Authorization" not in q.headers and q.status == 200) > 0

    change = mutate(office.tenant, seed=4, adds=2, updates=2, deletes=1)
    assert change.added or change.updated
    office.fx.clear_requests()
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert_books_match(office)
    syncs = office.fx.requests_for("ews", "SyncFolderItems")
    assert syncs and all(re.search(r"<m:SyncState>[^<]+</m:SyncState>", q.body) for q in syncs)


def test_server_busy_backoff_over_ntlm(onprem):
    office = onprem()
    office.fx.faults.throttle_ews(count=2, backoff_ms=300)
    r = office.sync()
    assert r.code == 0, r.err
    busy = [q for q in office.fx.requests if q.fault == "throttle_ews"]
    assert len(busy) == 2
    for q in busy:  # the same mailbox asked again only after BackOffMilliseconds
        later = [n for n in office.fx.requests_for("ews", mailbox=q.mailbox)
                 if n.started > q.started]
        assert later and later[0].started >= q.started + q.duration + 0.29
    assert_books_match(office)


def test_password_changed_between_runs(onprem):
    office = onprem(mailboxes=3)
    assert office.sync().code == 0
    before = office.books()
    acct = office.fx.service_account
    office.fx.ntlm.set_password(acct, "N3w:Passw0rd-2026")
    mutate(office.tenant, seed=8, adds=1, updates=1, deletes=0)
    r = office.sync()
    assert r.code == 2, r.err
    assert (f"Exchange refused the service account {acct.name} (twice; not tried again in "
            "this run, so that the account is not locked out)") in r.err
    assert "store the new one with 'ucware-contactsync configure'" in r.err
    assert acct.bad_logons == 2 and office.books() == before
    assert office.cli("config", "set", "ews_password", "N3w:Passw0rd-2026").code == 0
    office.fx.clear_requests()
    r = office.sync()
    assert r.code == 0, r.err
    assert_books_match(office)
    syncs = office.fx.requests_for("ews", "SyncFolderItems")
    assert all("<m:SyncState>" in q.body for q in syncs)  # still incremental


def test_wrong_password_is_tried_twice_per_run(onprem):
    """Six mailboxes, eight workers: still only two failed logons per run, so an Active
    Directory lockout threshold (here 5) is never reached by nightly runs."""
    office = onprem(mailboxes=6, contacts=2)
    office.fx.ntlm.lockout_threshold = 5
    acct = office.fx.service_account
    assert office.cli("config", "set", "ews_password", "not-the-password").code == 0
    for run in (1, 2):
        r = office.sync()
        assert r.code == 2, r.err
        assert "refused the service account" in r.err and "twice" in r.err
        assert acct.bad_logons == 2 * run and not acct.locked
        assert len([line for line in r.err.splitlines() if line.startswith("error")]) == 1
    assert office.books() == []
    # A third try within AD's reset window (check right away) reaches the threshold of 5 with
    # its first refusal; the second try then meets a locked account, and says so.
    r = office.cli("check")
    assert r.code == 2 and acct.locked and acct.bad_logons == 5
    assert "is locked out in Active Directory" in r.out + r.err


def test_locked_account(onprem):
    office = onprem()
    office.fx.service_account.locked = True
    r = office.sync()
    assert r.code == 2
    assert (f"the service account {office.fx.service_account.name} is locked out in Active "
            "Directory") in r.err and "Unlock-ADAccount" in r.err
    assert office.fx.ntlm.outcomes["locked"] == 1  # not tried again
    assert office.books() == []


def test_missing_impersonation_right(onprem):
    office = onprem()
    office.fx.service_account.impersonation = False
    r = office.sync()
    assert r.code == 1
    for email in (ANNA, JUERGEN):
        assert f"access to mailbox {email} denied" in r.err
    assert "ApplicationImpersonation" in r.err
    assert office.books() == []
    r = office.cli("check")
    assert r.code == 1
    acct = office.fx.service_account
    assert (f"service account: {acct.name} (NTLM) at {office.fx.ews_url}; TLS trusts private "
            f"CA {office.fx.ca_file}") in r.out
    assert f"{ANNA}: FAILED (access denied)" in r.out
    assert (f"impersonation: FAILED: {acct.name} may impersonate none of these mailboxes — "
            "assign it the ApplicationImpersonation role: New-ManagementRoleAssignment -Name "
            f"ucware-contactsync -Role ApplicationImpersonation -User '{acct.name}'") in r.out


def test_management_scope_limits_the_mailboxes(onprem):
    """An RBAC management scope that lists only some mailboxes: the others fail alone."""
    office = onprem()
    office.fx.service_account.scope = frozenset({ANNA})
    r = office.sync("-v")
    assert r.code == 1
    assert f"access to mailbox {JUERGEN} denied" in r.err
    assert actual_entries(office.book(ANNA)) == expected_entries(office.mailbox(ANNA))
    assert not [b for b in office.books(JUERGEN) if b["name"] == "Privat"]
    r = office.cli("check")
    assert r.code == 1 and f"{ANNA}: ok" in r.out
    assert "impersonation: 1 of 2 mailboxes denied" in r.out and "Set-ManagementScope" in r.out


def test_check_on_premises_all_good(onprem):
    office = onprem()
    r = office.cli("check")
    assert r.code == 0, r.out + r.err
    assert "api: ews — office365=false" in r.out and "service account: CONTOSO\\svc-ucware" in r.out
    assert f"{ANNA}: ok" in r.out and f"{JUERGEN}: ok" in r.out
    assert "impersonation" not in r.out and "token" not in r.out


def _no_auth_material(office, text: str) -> None:  # type: ignore[no-untyped-def]
    sent = auth_values(office)
    assert sent, "no handshake happened"
    for value in sent:
        token = value.split(" ", 1)[1]
        assert token[:24] not in text, value[:20]
    assert "TlRMTVNTUA" not in text
    assert office.fx.service_account.password not in text
    assert not re.search(r"Authorization': '(?!\*)", text)


@pytest.fixture
def root_logging():  # type: ignore[no-untyped-def]
    """-vvv in-process leaves the root logger at DEBUG: later tests' caplog would then catch
    library debug lines (with their secrets) outside of our redacting handlers."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def test_no_token_or_password_at_vvv(onprem, root_logging):
    office = onprem()
    r = office.sync("-vvv")
    assert r.code == 0, r.err
    assert "Request headers" in r.err  # exchangelib's debug output is there ...
    _no_auth_material(office, r.out + r.err)  # ... without the handshake
    office.fx.clear_requests()
    office.cli("config", "set", "ews_password", "Wr0ng-Passw0rd")
    r = office.sync("-vvv")
    assert r.code == 2
    _no_auth_material(office, r.out + r.err)
    assert "Wr0ng-Passw0rd" not in r.out + r.err


def test_no_token_or_password_in_journal_lines(onprem, db_url):
    """Under systemd (stderr is the journal): the run's lines with priorities, at -vvv."""
    office = onprem()
    with tempfile.TemporaryFile() as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
               "CONTACTSYNC_SYSLOG": "0"}
        proc = subprocess.run([sys.executable, "-m", "ucware_contactsync", "--db", db_url,
                               "sync", "-vvv"], stdout=subprocess.PIPE, stderr=err,
                              env=env, timeout=120, check=False)
        err.seek(0)
        journal = err.read().decode()
    assert proc.returncode == 0, journal[-2000:]
    assert re.search(r"^<5>.*sync via ews: 2 users synced", journal, re.MULTILINE)
    assert re.search(r"^<7>.*Request headers", journal, re.MULTILINE)
    _no_auth_material(office, journal + proc.stdout.decode())


# -- the fake's IIS behaviour, on the raw wire ------------------------------------------------

def _leg(session, fx, auth: str | None):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "text/xml; charset=utf-8", **({"Authorization": auth} if auth
                                                             else {})}
    return session.post(fx.ews_url, data=b"<x/>", headers=headers, verify=fx.ca_file)


@pytest.mark.parametrize("scheme", ["NTLM", "Negotiate"])
def test_fake_iis_handshake_on_the_wire(scheme):
    """401 with one WWW-Authenticate line per scheme; the challenge belongs to its connection;
    DOMAIN\\user and UPN sign in (Extended Protection off: the raw client sends no binding)."""
    import base64

    import requests
    import spnego

    from ucware_contactsync.testing import FakeExchange

    tenant = generate_tenant(seed=1, mailboxes=1, contacts_per_mailbox=1)
    with FakeExchange(tenant, on_premises=True, extended_protection=False) as fx:
        acct = fx.service_account
        with requests.Session() as s:
            first = _leg(s, fx, None)
            assert first.status_code == 401
            assert first.raw.headers.getlist("WWW-Authenticate") == ["Negotiate", "NTLM"]
            for name in (acct.name, acct.upn):
                client = spnego.client(name, acct.password, protocol="ntlm",
                                       options=spnego.NegotiateOptions.use_ntlm)
                token = base64.b64encode(client.step()).decode()
                second = _leg(s, fx, f"{scheme} {token}")
                assert second.status_code == 401
                challenge = second.headers["WWW-Authenticate"]
                assert challenge.startswith(f"{scheme} ")
                reply = client.step(base64.b64decode(challenge.split(" ", 1)[1]))
                third = _leg(s, fx, f"{scheme} {base64.b64encode(reply).decode()}")
                # signed in: EWS itself answers (a schema error for the junk body)
                assert third.status_code == 500 and b"ErrorSchemaValidation" in third.content
                assert _leg(s, fx, None).status_code == 500  # the connection stays signed in
        assert acct.logons == 2
        # The third leg on another connection than the challenge: refused, as IIS does.
        client = spnego.client(acct.name, acct.password, protocol="ntlm",
                               options=spnego.NegotiateOptions.use_ntlm)
        with requests.Session() as a, requests.Session() as b:
            token = base64.b64encode(client.step()).decode()
            challenge = _leg(a, fx, f"NTLM {token}").headers["WWW-Authenticate"]
            reply = client.step(base64.b64decode(challenge.split(" ", 1)[1]))
            assert _leg(b, fx, f"NTLM {base64.b64encode(reply).decode()}").status_code == 401
        assert fx.ntlm.outcomes["no_handshake"] == 1 and acct.logons == 2


def test_fake_extended_protection_refuses_a_foreign_binding():
    """With Extended Protection (the default) a channel binding for another certificate fails,
    even with the right password."""
    import base64

    import requests
    import spnego
    from spnego.channel_bindings import GssChannelBindings

    from ucware_contactsync.testing import FakeExchange

    tenant = generate_tenant(seed=1, mailboxes=1, contacts_per_mailbox=1)
    with FakeExchange(tenant, on_premises=True) as fx, requests.Session() as s:
        acct = fx.service_account
        other = GssChannelBindings(application_data=b"tls-server-end-point:" + b"\x00" * 32)
        client = spnego.client(acct.name, acct.password, protocol="ntlm", channel_bindings=other,
                               options=spnego.NegotiateOptions.use_ntlm)
        token = base64.b64encode(client.step()).decode()
        challenge = _leg(s, fx, f"NTLM {token}").headers["WWW-Authenticate"]
        reply = client.step(base64.b64decode(challenge.split(" ", 1)[1]))
        assert _leg(s, fx, f"NTLM {base64.b64encode(reply).decode()}").status_code == 401
        assert fx.ntlm.outcomes["channel_binding"] == 1 and acct.bad_logons == 0
