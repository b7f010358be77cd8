"""The hand-written syncs the tenant benchmark compares with, one per API.

What an admin would write in an afternoon, for each user in turn:

* **Graph** (``naive_graph``): one token, then ``GET /users/{m}/contacts?$top=100`` and every
  ``@odata.nextLink``; because real mailboxes have contact subfolders, also
  ``GET /users/{m}/contactFolders`` and, for each folder found, its contacts (paged the same
  way) and its ``childFolders`` (nested folders). No ``$select``, no delta, no batching.
* **EWS** (``naive_ews``): exchangelib's ``account.contacts.all()`` (the default folder) and,
  per subfolder that ``account.contacts.walk()`` finds, ``folder.all()``.

Both then delete the user's phonebook entries and insert them all again in one transaction,
through the ORM. The numbers are normalised with the module's own ``to_e164``, so the rows
are the same kind of rows the module writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def write_all(db: Any, conf: Any, uid: int, contacts: Iterable[Any]) -> None:
    """Delete the user's phonebook entries and insert ``contacts`` again (one transaction)."""
    from sqlalchemy import delete, select

    from ucware_contactsync.model import Entry, Number, Phonebook, User
    from ucware_contactsync.phone import to_e164

    with db.session() as s:
        user = s.get(User, uid)
        book = s.scalar(select(Phonebook).where(Phonebook.owner_id == uid,
                                                Phonebook.title == conf.phonebookname))
        if book is None:
            book = Phonebook(owner=user, title=conf.phonebookname, source="office365")
            s.add(book)
            s.flush()
        old = select(Entry.id).where(Entry.phonebook_id == book.id)
        s.execute(delete(Number).where(Number.entry_id.in_(old)))
        s.execute(delete(Entry).where(Entry.phonebook_id == book.id))
        for c in contacts:
            if not c.numbers:
                continue
            s.add(Entry(phonebook=book, origin="office365", source_id=c.source_id,
                        display_name=c.name[:255], given_name=c.given_name[:255],
                        surname=c.surname[:255], company=c.company[:255],
                        department=c.department[:255], job_title=c.job_title[:255],
                        emails=list(c.emails), categories=list(c.categories),
                        numbers=[Number(position=i, type=n.type, number=n.number[:64],
                                        e164=to_e164(n.number, conf.default_region))
                                 for i, n in enumerate(c.numbers)]))


def _users(url: str) -> tuple[Any, Any, list[tuple[int, str]]]:
    from ucware_contactsync import directory, settings_store
    from ucware_contactsync.db import Database

    db = Database(url)
    with db.session() as s:
        conf = settings_store.load(s)
        users = [(u.id, u.email) for u in directory.selected_users(s)]
    return db, conf, users


def naive_graph(url: str) -> int:
    import requests

    from ucware_contactsync.sources.graph import to_contact

    db, conf, users = _users(url)
    http = requests.Session()
    token = http.post(f"{conf.login_url}/{conf.tenant_id}/oauth2/v2.0/token",
                      verify=conf.ca_bundle, timeout=60,
                      data={"grant_type": "client_credentials", "client_id": conf.client_id,
                            "client_secret": conf.client_secret,
                            "scope": conf.graph_url.rstrip("/") + "/.default"}
                      ).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    base = conf.graph_url.rstrip("/") + "/v1.0"

    def pages(link: str) -> Iterable[dict[str, Any]]:
        next_link: str | None = link
        while next_link:
            r = http.get(next_link, verify=conf.ca_bundle, timeout=60)
            r.raise_for_status()
            body = r.json()
            yield from body.get("value", [])
            next_link = body.get("@odata.nextLink")

    for uid, email in users:
        m = f"{base}/users/{email}"
        items = list(pages(f"{m}/contacts?$top=100"))
        folders = [f["id"] for f in pages(f"{m}/contactFolders")]
        while folders:
            fid = folders.pop()
            items += pages(f"{m}/contactFolders/{fid}/contacts?$top=100")
            folders += [f["id"] for f in pages(f"{m}/contactFolders/{fid}/childFolders")]
        write_all(db, conf, uid, (to_contact(i) for i in items))
    return 0


def naive_ews(url: str) -> int:
    import requests
    from exchangelib import (
        IMPERSONATION,
        OAUTH2,
        Account,
        Configuration,
        OAuth2Credentials,
        Version,
    )
    from exchangelib.protocol import BaseProtocol
    from exchangelib.version import EXCHANGE_O365

    from ucware_contactsync.sources.ews import to_contact

    db, conf, users = _users(url)

    class Creds(OAuth2Credentials):  # the documented way to reach another login endpoint
        @property
        def token_url(self) -> str:  # type: ignore[override]
            return f"{conf.login_url}/{conf.tenant_id}/oauth2/v2.0/token"

        @property
        def scope(self) -> list[str]:  # type: ignore[override]
            return [conf.ews_url.split("/EWS/")[0] + "/.default"]

    class Adapter(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):  # type: ignore[no-untyped-def, override]
            kwargs["verify"] = conf.ca_bundle
            return super().send(request, **kwargs)

    BaseProtocol.HTTP_ADAPTER_CLS = Adapter
    config = Configuration(service_endpoint=conf.ews_url, auth_type=OAUTH2,
                           version=Version(build=EXCHANGE_O365),
                           credentials=Creds(conf.client_id, conf.client_secret,
                                             tenant_id=conf.tenant_id))
    for uid, email in users:
        account = Account(email, access_type=IMPERSONATION, config=config, autodiscover=False)
        items = list(account.contacts.all())
        for folder in account.contacts.walk():
            items += folder.all()
        write_all(db, conf, uid, (to_contact(i) for i in items if hasattr(i, "phone_numbers")))
    return 0
