"""HTTP that stays where the configuration points: no redirect off the configured origin.

A ``requests`` session follows redirects on its own, to any host and from https to http, and
for 307/308 it repeats a POST with its body (the client secret of a token request). Every
request of ours goes through an ``OriginAdapter``: it sends only to the origin it was made
for and refuses an answer that redirects anywhere else (or, for the token request, anywhere
at all) with a ``SourceError`` naming the key to check. requests calls the adapter for each
hop of a redirect, so a hop elsewhere is refused before anything is sent there.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from .base import Kind, SourceError

_DEFAULT_PORTS = {"https": 443, "http": 80}


def origin(url: str) -> str:
    """scheme://host:port, lower case and with the default port spelled out."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:  # a port that is not a number
        port = -1
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def refusal(key: str, configured: str, target: str, kind: Kind, redirect: bool
            ) -> SourceError:
    """The one line for a request that would leave ``configured`` (no secret in it: the URLs
    are ours or the server's Location, with any query cut off)."""
    shown = target.split("?", 1)[0][:200]
    what = (f"{key} {configured} redirected to {shown}" if redirect else
            f"a request for {key} {configured} would go to {shown}")
    return SourceError(kind, f"{what}; redirects are not followed",
                       f"set {key} to the service's own https:// address with "
                       f"'ucware-contactsync config set {key} URL'")


class OriginAdapter(requests.adapters.HTTPAdapter):
    """Sends only to ``configured``'s origin; a redirect elsewhere (or any redirect, with
    ``same_origin_redirects=False``) raises ``SourceError(kind)``."""

    def __init__(self, configured: str, key: str, kind: Kind = Kind.TRANSIENT,
                 same_origin_redirects: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.configured = configured
        self.origin = origin(configured)
        self.key = key
        self.kind = kind
        self.same_origin_redirects = same_origin_redirects

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
             ) -> requests.Response:
        url = request.url or ""
        if origin(url) != self.origin:
            raise refusal(self.key, self.configured, url, self.kind, redirect=False)
        resp = super().send(request, *args, **kwargs)
        if resp.is_redirect or resp.is_permanent_redirect:
            target = urljoin(url, resp.headers.get("Location", ""))
            if not self.same_origin_redirects or origin(target) != self.origin:
                resp.close()
                raise refusal(self.key, self.configured, target, self.kind, redirect=True)
        return resp


def mount(session: requests.Session, adapter: OriginAdapter) -> requests.Session:
    """The adapter for every URL of ``session`` (http:// too: that is where it refuses)."""
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
