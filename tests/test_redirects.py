"""Secrets stay home: the token request never follows a redirect, Graph and EWS never leave the
configured origin, and no wire spelling of a secret reaches any output at any verbosity.

Every case runs against servers on 127.0.0.1: the fake Exchange Online, a `Recorder` that
answers with the redirect, and a `Recorder` sink that logs what reaches it (it must stay empty).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hostile import Recorder, Seen, redirect

from ucware_contactsync import db as dbmod
from ucware_contactsync.testing import generate_tenant
from ucware_contactsync.testing.tenant import App

SECRET = "Ab+/=@[]:*?cd+Ef/gh=ij@KL[mn]op:qr*st?uv"
ROLES = {"ews": ("full_access_as_app",), "graph": ("Contacts.Read",)}


def wire_forms(secret: str, user: str) -> list[str]:
    """How the secret travels: raw, URL-encoded both ways, JSON, Basic auth's base64."""
    return [secret, quote(secret, safe=""), quote_plus(secret), quote(secret),
            re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe="")),
            json.dumps(secret)[1:-1],
            base64.b64encode(f"{user}:{secret}".encode()).decode()[8:],
            base64.b64encode(f"{quote_plus(user)}:{quote_plus(secret)}".encode()).decode()[8:]]


@pytest.fixture(scope="module")
def backend_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite only: nothing here depends on the database server."""
    url = f"sqlite:///{tmp_path_factory.mktemp('redirects') / 'test.db'}"
    engine = dbmod.make_engine(url)
    dbmod.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def root_logging() -> Iterator[None]:
    """-vvv turns the root logger to DEBUG in this process; later tests must not inherit it."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.fixture
def office(office_factory, request):  # type: ignore[no-untyped-def]
    api = getattr(request, "param", "graph")
    tenant = generate_tenant(seed=11, mailboxes=2, contacts_per_mailbox=4, subfolders=0,
                             distribution_lists=0, roles=ROLES[api])
    old = next(iter(tenant.apps.values()))
    tenant.apps = {old.client_id: App(old.client_id, SECRET, old.roles)}
    return office_factory(tenant, api=api)


@pytest.fixture
def servers(office) -> Iterator[tuple[Recorder, Recorder, Recorder]]:  # type: ignore[no-untyped-def]
    """(https sink, http sink, redirector): the sinks answer 200 with a token-like and a
    Graph-like body, so a client that followed would have something to use."""
    certs = Path(office.fx.ca_file).parent
    body = json.dumps({"token_type": "Bearer", "expires_in": 3600, "access_token": "x" * 40,
                       "value": [{"id": "AAMk-evil", "displayName": "Injected",
                                  "businessPhones": ["+49 30 666666"]}]}).encode()

    def ok(_seen: Seen) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/json"}, body

    sink, plain = Recorder(ok, certs), Recorder(ok)
    hop = Recorder(redirect(307, sink.url), certs)
    yield sink, plain, hop
    for r in (sink, plain, hop):
        r.stop()


def assert_no_secret(text: str, office) -> None:  # type: ignore[no-untyped-def]
    leaked = [f for f in wire_forms(SECRET, office.app.client_id) if f in text]
    assert not leaked, f"a spelling of the secret is in the output: {leaked[0][:4]}..."


@pytest.mark.parametrize("status", [307, 308, 302])
@pytest.mark.parametrize("to", ["https", "http"])
def test_token_request_never_follows_a_redirect(office, servers, cli, status, to,
                                                root_logging) -> None:
    sink, plain, hop = servers
    hop.answer = redirect(status, (sink if to == "https" else plain).url)
    assert cli("config", "set", "login_url", hop.url).code == 0
    for verbosity in ((), ("-vvv",)):
        r = office.sync(*verbosity)
        assert r.code == 2, r.err
        assert "login_url" in r.err and "redirect" in r.err, r.err
        assert r.err.count("error:") == 1, r.err
        assert_no_secret(r.out + r.err, office)
    assert hop.seen and all(s.method == "POST" for s in hop.seen)  # the configured one
    assert not sink.seen and not plain.seen, "the token request followed the redirect"
    # Nothing reached Graph without a token either.
    assert not [q for q in office.fx.requests if q.api == "graph"]


@pytest.mark.parametrize("office", ["graph", "ews"], indirect=True)
@pytest.mark.parametrize("to", ["other-origin", "http-downgrade"])
def test_api_redirect_off_the_origin_fails_the_mailbox(office, servers, cli, to,
                                                       root_logging) -> None:
    sink, plain, hop = servers
    assert office.sync().code == 0
    mailboxes = sorted(office.tenant.mailboxes)
    before = {m: office.book(m)["entries"] for m in mailboxes}
    api = office.fx.requests[-1].api
    key = "graph_url" if api == "graph" else "ews_url"
    path = "" if api == "graph" else "/EWS/Exchange.asmx"
    # 302 to the real service at another origin, or to plain http.
    target = sink.url if to == "other-origin" else plain.url
    hop.answer = redirect(302 if api == "graph" else 307, target)
    assert cli("config", "set", key, hop.url + path).code == 0
    for verbosity in ((), ("-vvv",)):
        r = office.sync(*verbosity)
        assert r.code == 1, r.err
        assert key in r.err and "redirect" in r.err, r.err
        assert "Traceback" not in r.err or verbosity, r.err
        assert_no_secret(r.out + r.err, office)
    assert hop.seen, "the configured URL was never asked"
    assert not sink.seen and not plain.seen, "a request followed the redirect"
    assert {m: office.book(m)["entries"] for m in mailboxes} == before


@pytest.mark.parametrize("office", ["graph", "ews"], indirect=True)
def test_no_spelling_of_the_secret_in_any_output(office, cli, root_logging) -> None:
    for verbosity in ((), ("-v",), ("-vv",), ("-vvv",)):
        r = office.sync(*verbosity)
        assert r.code == 0, r.err
        assert_no_secret(r.out + r.err, office)
    r = office.sync("-vvv")
    assert "client_secret=********" in r.err, "the token body was not logged: nothing checked"
    # The secret went to the token endpoint only.
    for q in office.fx.requests:
        if q.api != "token":
            assert_no_secret(q.body + json.dumps(q.headers) + q.query, office)


def test_redaction_covers_every_wire_spelling() -> None:
    """The spellings a library may log, each masked (the run above shows the real ones)."""
    from ucware_contactsync import logs

    secret = "Pw+/=@[]:*? x"
    logs.register_secret(secret)
    user = "svc@contoso.de"
    for form in [*wire_forms(secret, user), quote_plus(secret).replace("%2B", "%2b"),
                 json.dumps(secret).replace("/", "\\/"),
                 base64.b64encode(f"{user}:{secret}".encode()).decode()]:
        shown = logs.redact(f"body: {form} end")
        assert shown.startswith("body: ") and shown.endswith(" end")
        assert form not in shown or len(form) < 8, (form, shown)
    assert logs.redact("an ordinary line with Pw and x") == "an ordinary line with Pw and x"
