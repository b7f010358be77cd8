"""check: which API and why, the token, and each selected mailbox with its fix."""

from __future__ import annotations

from ucware_contactsync.testing import generate_tenant


def test_check_ews_only_app(office_factory):
    tenant = generate_tenant(seed=3, mailboxes=2, contacts_per_mailbox=5,
                             roles=("full_access_as_app",))
    office = office_factory(tenant)
    office.fx.faults.fail_mailbox("juergen.schaefer@contoso.de", "denied")
    r = office.cli("check")
    assert r.code == 1, r.out + r.err
    assert "api: ews — api=auto and the app holds only full_access_as_app" in r.out
    assert "2027-04-01" in r.out and "Contacts.Read" in r.out
    assert "anna.berg@contoso.de: ok" in r.out
    assert "juergen.schaefer@contoso.de: FAILED (access denied)" in r.out
    assert office.app.secret not in r.out + r.err


def test_check_no_roles_in_token_tries_graph(office_factory):
    """No role visible (nothing granted, or RBAC for Applications): Graph, with a warning;
    the mailboxes then say what is missing."""
    tenant = generate_tenant(seed=3, mailboxes=1, contacts_per_mailbox=1, roles=())
    office = office_factory(tenant)
    r = office.cli("check")
    assert r.code == 1, r.out + r.err
    assert "api: graph — api=auto and the token carries no roles" in r.out
    assert "RBAC for Applications" in r.out
    assert "anna.berg@contoso.de: FAILED (access denied)" in r.out and "Contacts.Read" in r.out


def test_check_wrong_tenant(office_factory):
    tenant = generate_tenant(seed=3, mailboxes=1, contacts_per_mailbox=1,
                             roles=("full_access_as_app",))
    office = office_factory(tenant)
    office.cli("config", "set", "tenant_id", "00000000-0000-0000-0000-000000000000")
    r = office.cli("check")
    assert r.code == 2
    assert "AADSTS90002" in r.out and "tenant_id" in r.out


def test_missing_app_keys_is_config_error(cli, admin_setup):
    admin_setup("a@x.de")
    r = cli("check")
    assert r.code == 2 and "tenant_id" in r.err and "configure" in r.err


def test_on_premises_service_account_refused(office_factory):
    """office365=false: EWS with a service account (NTLM); a refusal names the keys to fix."""
    tenant = generate_tenant(seed=3, mailboxes=1, contacts_per_mailbox=2,
                             roles=("full_access_as_app",))
    office = office_factory(tenant)
    cli = office.cli
    assert cli("config", "set", "office365", "false").code == 0
    r = cli("check")
    assert r.code == 2 and "ews_username and ews_password" in r.out + r.err
    assert "unexpected" not in r.err
    assert cli("config", "set", "ews_username", "CONTOSO\\svc-ucware").code == 0
    assert cli("config", "set", "ews_password", "Pa55-word!x").code == 0
    r = cli("check")
    assert "api: ews — office365=false" in r.out
    r = office.sync()
    assert r.code == 2, r.err
    assert "refused the service account CONTOSO\\svc-ucware" in r.err
    assert "check ews_username (DOMAIN\\user or user@domain) and ews_password" in r.err
    assert "Pa55-word!x" not in r.out + r.err
    assert office.books() == []
