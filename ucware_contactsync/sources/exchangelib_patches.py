"""Everything we change in or derive from exchangelib's internals, in one place.

Written for exchangelib 5.6 (setup.cfg allows ``>=5.6,<5.7``); ``tests/test_exchangelib_patches.py``
fails, naming the internal, when a new version changes what these rely on. Raise the upper
bound only after that test passes on the new version.

* ``decrease_poolsize``: exchangelib answers ErrorServerBusy by shrinking its session pool,
  and its own version deadlocks when every session is in use (it waits for one while holding
  the lock that adding one needs): replaced by one that never waits.
* ``HTTP_ADAPTER_CLS``: exchangelib builds its sessions from one class-level adapter; ours
  sends only to ``ews_url``'s origin (and those ``trust`` adds, for tests), verifies TLS
  against the CA registered for it, and refuses a redirect elsewhere; so neither
  $REQUESTS_CA_BUNDLE nor another source's CA widens the trust.
* ``RetryPolicy``, ``ProviderCredentials``, ``FolderChanges``, ``ContactChanges``: subclasses
  that override exchangelib methods (see each).

Nothing happens at import time: the EWS source calls :func:`apply`.
"""

from __future__ import annotations

import threading
import time
from queue import Empty
from typing import Any
from urllib.parse import urljoin

import requests
from exchangelib import OAuth2Credentials
from exchangelib import errors as ews_errors
from exchangelib.folders import BaseFolder
from exchangelib.items import Contact as EwsContact
from exchangelib.protocol import BaseProtocol, FailFast
from exchangelib.services import SyncFolderHierarchy, SyncFolderItems
from exchangelib.util import TNS
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from .auth import TokenProvider
from .base import Kind, retry_after
from .origin import origin, refusal

TESTED = ("5.6",)  # exchangelib versions (major.minor) these were written for

_lock = threading.Lock()
# exchangelib's own, kept for the test that notices when a new version changes it.
ORIGINAL_DECREASE_POOLSIZE = BaseProtocol.decrease_poolsize
_source: dict[str, tuple[str, str]] = {}  # the last EWS source's origin -> (ews_url, CA file)
_trusted: dict[str, tuple[str, str]] = {}  # added by trust() (tests), same shape


def _decrease_poolsize(self: BaseProtocol) -> None:
    """exchangelib's decrease_poolsize, minus the wait: it takes a session out of the pool
    while holding ``_session_pool_lock``, and with every session in use get_session() tries
    to add one, which needs that lock: the thread hangs forever, and the run with it (found
    by a throttling storm with four mailboxes in parallel). Throttling pauses are ours
    anyway (the source's retry loop); here an idle session is dropped if there is one."""
    with self._session_pool_lock:
        if self._session_pool_size <= 1:
            raise ews_errors.SessionPoolMinSizeReached("Session pool size cannot be decreased "
                                                       "further")
        try:
            session = self._session_pool.get(block=False)
        except Empty:
            return  # all in use: nothing idle to drop now
        self.close_session(session)
        self._session_pool_size -= 1


class TrustAdapter(requests.adapters.HTTPAdapter):
    """Sends only to a registered origin (``ews_url``'s, see ``apply``), verifies TLS against
    the CA registered for it (a path, never True: True would let $REQUESTS_CA_BUNDLE decide),
    and refuses a redirect to another origin with a ``SourceError`` (as ``origin.py`` does
    for Graph and the token endpoint)."""

    def send(self, request: requests.PreparedRequest,
             *args: Any, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        here = _source.get(origin(url)) or _trusted.get(origin(url))
        if here is None:
            configured = next(iter(_source.values()), (url, ""))[0]
            raise refusal("ews_url", configured, url, Kind.TRANSIENT, redirect=False)
        configured, ca_file = here
        kwargs["verify"] = ca_file
        resp = super().send(request, *args, **kwargs)
        if resp.is_redirect or resp.is_permanent_redirect:
            target = urljoin(url, resp.headers.get("Location", ""))
            if origin(target) != origin(url):
                resp.close()
                raise refusal("ews_url", configured, target, Kind.TRANSIENT, redirect=True)
        return resp


def trust(url: str, ca_file: str) -> None:
    """exchangelib may send to ``url``'s origin, verifying TLS against ``ca_file``."""
    with _lock:
        _trusted[origin(url)] = (url, ca_file)


def forget(url: str) -> None:
    with _lock:
        _trusted.pop(origin(url), None)


def apply(ews_url: str = "", ca_file: str = DEFAULT_CA_BUNDLE_PATH) -> None:
    """Install the patches (again: idempotent). With ``ews_url``: exchangelib sends only
    there, trusting ``ca_file``; an earlier source's origin and CA are dropped, so they never
    widen what this one trusts."""
    with _lock:
        BaseProtocol.decrease_poolsize = _decrease_poolsize
        BaseProtocol.HTTP_ADAPTER_CLS = TrustAdapter
        if ews_url:
            _source.clear()
            _source[origin(ews_url)] = (ews_url, ca_file)


class RetryPolicy(FailFast):
    """Fail fast (the source retries itself), but turn HTTP 429 into ErrorServerBusy with
    Retry-After, and a SOAP answer that does not end its envelope into MalformedResponseError."""

    def raise_response_errors(self, response: requests.Response) -> None:
        if response.status_code == 429:
            raise ews_errors.ErrorServerBusy(
                "HTTP 429 Too Many Requests", back_off=max(1.0, retry_after(response) or 5.0)
            )
        # exchangelib parses with lxml's recover=True: a body cut short (a proxy, a broken
        # server) would parse as the first items plus a SyncState that claims the rest, and
        # a full read would then delete the missing entries. A whole answer ends its envelope.
        # (Our requests never stream, so the body is already read here.)
        body = response.content
        if b"Envelope" in body[:300] and not body.rstrip().endswith(b"Envelope>"):
            raise ews_errors.MalformedResponseError(
                f"incomplete SOAP response (HTTP {response.status_code}, {len(body)} bytes)")
        super().raise_response_errors(response)


class ProviderCredentials(OAuth2Credentials):
    """OAuth2 credentials that take tokens from our TokenProvider and never auto-refresh:
    an expired token raises TokenExpiredError, which exchangelib answers with a new session
    (and a new token) instead of a refresh-token grant that Entra rejects."""

    def __init__(self, provider: TokenProvider, tenant_id: str) -> None:
        super().__init__(client_id=provider.client_id, client_secret="unused-see-provider",
                         tenant_id=tenant_id)
        self._provider = provider

    @property
    def token_url(self) -> str:
        return self._provider.token_url

    @property
    def scope(self) -> list[str]:
        return [self._provider.scope]

    def session_params(self) -> dict[str, Any]:
        token = self._provider.token()
        lifetime = float(token.get("expires_in", 3600))
        # Let requests-oauthlib call the token expired a little before the server does.
        # (oauthlib rounds expires_at to whole seconds, hence at least 1.5 s).
        token["expires_at"] = float(token["expires_at_real"]) - min(60.0, max(1.5, lifetime / 10))
        token["expires_in"] = max(0.0, token["expires_at"] - time.time())
        return {"token": token}  # no auto_refresh_url: expiry -> TokenExpiredError


class _Chunked:
    """A response whose ``iter_content()`` gives 64 KiB chunks instead of requests' default
    of one byte: exchangelib parses the SOAP body from ``response.iter_content()``, so a
    300 KB page of contacts meant 300,000 Python iterations (18 % of a full EWS read
    in a py-spy profile)."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response

    def iter_content(self, chunk_size: int = 65536, decode_unicode: bool = False) -> Any:
        return self._response.iter_content(chunk_size, decode_unicode)


class WholeChunks:
    """Mix-in for services: parse the SOAP body in 64 KiB chunks (see ``_Chunked``)."""

    @classmethod
    def _get_soap_parts(cls, response: requests.Response) -> Any:
        return super()._get_soap_parts(_Chunked(response))  # type: ignore[misc]


class FolderChanges(WholeChunks, SyncFolderHierarchy):
    """SyncFolderHierarchy answering (change, folder id, folder class): exchangelib's own
    parser needs Folder objects, i.e. the GetFolder round trips this source avoids."""

    def _elem_to_obj(self, elem: Any) -> tuple[str, str, str]:
        change = self.change_types_map[elem.tag]
        node = elem if change == self.DELETE else elem[0]
        fid = node.find(f"{{{TNS}}}FolderId")
        folder_class = "" if change == self.DELETE else node.findtext(f"{{{TNS}}}FolderClass")
        return change, fid.get("Id") if fid is not None else "", folder_class or ""


class ContactFields:
    """The fields of a contact that ``ContactChanges`` parsed, under exchangelib's names:
    ``FIELDS`` are the ones the EWS source asks for."""

    FIELDS = ("display_name", "given_name", "surname", "company_name", "department",
              "job_title", "email_addresses", "phone_numbers", "categories")
    __slots__ = ("id", "changekey", *FIELDS)
    id: str
    changekey: str | None
    display_name: str | None
    given_name: str | None
    surname: str | None
    company_name: str | None
    department: str | None
    job_title: str | None
    email_addresses: list[Any] | None
    phone_numbers: list[Any] | None
    categories: list[str] | None

    def __init__(self, values: dict[str, Any]) -> None:
        item_id = values.pop("_id", None)
        self.id = item_id.id or "" if item_id is not None else ""
        self.changekey = item_id.changekey if item_id is not None else None
        for name in self.FIELDS:
            setattr(self, name, values.get(name))


_CONTACT_FIELDS = tuple(EwsContact.get_field_by_fieldname(n)
                        for n in ("_id", *ContactFields.FIELDS))


class ContactChanges(WholeChunks, SyncFolderItems):
    """SyncFolderItems answering contacts as ``ContactFields``: exchangelib's own parser looks
    up each of Contact's 79 fields in every item and builds the item with all their defaults,
    half the CPU of a full read, though we ask for nine. Other items and deletes stay
    exchangelib's."""

    def _elem_to_obj(self, elem: Any) -> tuple[str, Any]:
        change = self.change_types_map[elem.tag]
        if change in (self.CREATE, self.UPDATE) and len(elem) \
                and BaseFolder.item_model_from_tag(elem[0].tag) is EwsContact:
            node = elem[0]
            values = {f.name: f.from_xml(elem=node, account=self.account) for f in _CONTACT_FIELDS}
            EwsContact._clear(node)
            return change, ContactFields(values)
        result: tuple[str, Any] = super()._elem_to_obj(elem)
        return result
