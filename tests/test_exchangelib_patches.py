"""The exchangelib internals that sources/exchangelib_patches.py relies on are still there.

When one of these fails after an exchangelib upgrade: read the changed exchangelib code, adapt
the patch (or drop it if the bug is fixed), then update the fingerprint here and TESTED and the
upper bound in setup.cfg.
"""

from __future__ import annotations

import configparser
import hashlib
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import exchangelib
import pytest
from exchangelib import NTLM, Build, Configuration, Credentials, OAuth2Credentials, Version
from exchangelib import util as ews_util
from exchangelib.properties import EWSElement
from exchangelib.protocol import BaseProtocol, FailFast, Protocol
from exchangelib.services import SyncFolderHierarchy, SyncFolderItems
from exchangelib.services import common as services_common

from ucware_contactsync.sources import exchangelib_patches

ROOT = Path(__file__).resolve().parent.parent


def fingerprint(fn: Any) -> str:
    return hashlib.sha256(textwrap.dedent(inspect.getsource(fn)).encode()).hexdigest()[:16]


# What each patch replaces or overrides, as written in exchangelib 5.6.
REPLACED = {
    "BaseProtocol.decrease_poolsize (replaced: it deadlocks)":
        (exchangelib_patches.ORIGINAL_DECREASE_POOLSIZE, "3e172c58be089c8e"),
    "SyncFolderHierarchy._elem_to_obj (overridden by FolderChanges)":
        (SyncFolderHierarchy._elem_to_obj, "b260880936c7c051"),
    "SyncFolderItems._elem_to_obj (overridden by ContactChanges)":
        (SyncFolderItems._elem_to_obj, "a0a9a38b4ce8f1ad"),
    "EWSElement.from_xml (ContactChanges parses our fields the same way)":
        (EWSElement.from_xml, "1b5d18b590403a8f"),
    "EWSService._get_soap_parts (wrapped by WholeChunks)":
        (services_common.EWSService._get_soap_parts, "58f7ea4dfdaeab97"),
    "FailFast.raise_response_errors (extended by RetryPolicy)":
        (FailFast.raise_response_errors, "eb13fc25fbf71b83"),
    "OAuth2Credentials.session_params (overridden by ProviderCredentials)":
        (OAuth2Credentials.session_params, "e11f8d43dce2a384"),
    "BaseProtocol.get_adapter (builds HTTP_ADAPTER_CLS)":
        (BaseProtocol.get_adapter, "3c263948a5da2539"),
}

# Where exchangelib calls what we change: the patch is dead code if a call site goes.
CALL_SITES = [
    (BaseProtocol.get_adapter, "cls.HTTP_ADAPTER_CLS("),
    (ews_util.post_ratelimited, "retry_policy.raise_response_errors("),
    (services_common.EWSService._elems_to_objs, "self._elem_to_obj("),
    (services_common.EWSService._get_soap_parts, "to_xml(response.iter_content())"),
    (Protocol.create_oauth2_session, "self.credentials.session_params()"),
    (Protocol.create_oauth2_session, "self.credentials.token_url"),
]


def test_exchangelib_version_is_one_the_patches_were_written_for() -> None:
    major_minor = ".".join(exchangelib.__version__.split(".")[:2])
    assert major_minor in exchangelib_patches.TESTED, (
        f"exchangelib {exchangelib.__version__} is not one sources/exchangelib_patches.py "
        f"was written for ({', '.join(exchangelib_patches.TESTED)})")
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    req = next(line for line in cfg["options"]["install_requires"].splitlines()
               if line.strip().startswith("exchangelib"))
    assert "<" in req, "setup.cfg must bound exchangelib from above (the patches' versions)"


@pytest.mark.parametrize("name", list(REPLACED))
def test_replaced_exchangelib_code_is_unchanged(name: str) -> None:
    fn, expected = REPLACED[name]
    assert fingerprint(fn) == expected, (
        f"exchangelib changed {name}: review sources/exchangelib_patches.py against it")


@pytest.mark.parametrize(("fn", "text"), CALL_SITES,
                         ids=[f"{fn.__qualname__}:{text}" for fn, text in CALL_SITES])
def test_exchangelib_still_calls_what_the_patches_change(fn: Any, text: str) -> None:
    assert text in inspect.getsource(fn), (
        f"exchangelib's {fn.__qualname__} no longer contains {text!r}: the patch that relies "
        f"on it in sources/exchangelib_patches.py may no longer take effect")


def test_session_pool_attributes_the_replacement_uses_exist() -> None:
    config = Configuration(service_endpoint="https://127.0.0.1:9/EWS/Exchange.asmx",
                           credentials=Credentials("svc", "pw"), auth_type=NTLM,
                           version=Version(build=Build(15, 1, 2507, 6)))
    protocol = Protocol(config=config)  # cached by exchangelib: cleared again below
    try:
        for attr in ("_session_pool_lock", "_session_pool", "_session_pool_size",
                     "close_session", "session_pool_size"):
            assert hasattr(protocol, attr), f"exchangelib's Protocol lost {attr}"
        assert "block" in inspect.signature(protocol._session_pool.get).parameters
    finally:
        Protocol.clear_cache()


def test_nothing_is_patched_at_import_time() -> None:
    """Importing the EWS source changes nothing in exchangelib; building it applies them."""
    code = textwrap.dedent("""
        import requests
        from exchangelib.protocol import BaseProtocol
        from ucware_contactsync.settings import Settings
        from ucware_contactsync.sources import exchangelib_patches as p
        from ucware_contactsync.sources.ews import EwsSource
        assert BaseProtocol.decrease_poolsize is p.ORIGINAL_DECREASE_POOLSIZE
        assert BaseProtocol.HTTP_ADAPTER_CLS is requests.adapters.HTTPAdapter
        EwsSource(Settings(office365=False, ews_username="svc", ews_password="pw",
                           ews_url="https://127.0.0.1:9/EWS/Exchange.asmx"))
        assert BaseProtocol.decrease_poolsize is not p.ORIGINAL_DECREASE_POOLSIZE
        assert BaseProtocol.HTTP_ADAPTER_CLS is p.TrustAdapter
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_contact_changes_parses_what_exchangelib_parses() -> None:
    """ContactChanges' own parse of a contact gives the same Contact as exchangelib's."""
    from exchangelib.indexed_properties import EmailAddress, PhoneNumber
    from exchangelib.items import Contact as EwsContact
    from exchangelib.util import TNS, create_element, set_xml_value, to_xml, xml_to_str

    from ucware_contactsync.sources.ews import to_contact

    item = EwsContact(
        display_name="Müller, Jörg", given_name="Jörg", surname="Müller", company_name="A & B",
        department="Einkauf", job_title="Leiter <Nord>", categories=["VIP", "Kunde"],
        email_addresses=[EmailAddress(label="EmailAddress2", email="b@example.com"),
                         EmailAddress(label="EmailAddress1", email="a@example.com")],
        phone_numbers=[PhoneNumber(label="MobilePhone", phone_number="0171 2345678"),
                       PhoneNumber(label="BusinessPhone", phone_number="+49 89 1234-0")],
    )
    version = Version(build=Build(15, 1, 2507, 6))
    node = item.to_xml(version=version)
    node.insert(0, create_element("t:ItemId", attrs={"Id": "AAMk+/x=", "ChangeKey": "CQAA"}))
    create = create_element("t:Create")
    set_xml_value(create, node, version=version)
    xml = xml_to_str(create).encode()

    def parse(cls: Any) -> Any:
        svc = cls.__new__(cls)
        svc.account = None
        elem = to_xml(b'<r xmlns:t="' + TNS.encode() + b'">' + xml + b"</r>").getroot()[0]
        return svc._elem_to_obj(elem)

    ours, theirs = parse(exchangelib_patches.ContactChanges), parse(SyncFolderItems)
    assert ours[0] == theirs[0] == "create"
    assert isinstance(ours[1], exchangelib_patches.ContactFields)
    assert to_contact(ours[1], "f") == to_contact(theirs[1], "f")
    c = to_contact(ours[1])
    assert (c.emails, len(c.numbers), c.categories, c.source_id, c.change_key) == (
        ("a@example.com", "b@example.com"), 2, ("VIP", "Kunde"), "AAMk-_x=", "CQAA")
