"""Graph JSON batching (``POST /v1.0/$batch``) for the fake, answered as Graph answers it.

* The batch itself: 200 with ``{"responses": [...]}``, one entry per sub-request with its own
  ``id``, ``status``, ``headers`` and ``body``; so a 200 batch can carry 404s and 429s.
  More than 20 sub-requests, duplicate ids or a body that is not a batch: 400 for the whole
  batch. Authentication is the batch's (its ``Authorization`` header covers every
  sub-request); a token Graph refuses fails the batch with 401.
* Outlook's MailboxConcurrency: at most 4 requests per app and mailbox at once. The
  sub-requests of a batch run side by side (this fake ignores ``dependsOn``), so the fifth
  for one mailbox in a batch, or any beyond what other requests in flight leave, gets 429
  ``ApplicationThrottled`` with ``Retry-After``.
* Each sub-request is recorded in ``fx.requests`` like a plain request, with ``batch`` set to
  the batch's request-id; the batch is recorded with operation ``$batch``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..contact import compact_json

if TYPE_CHECKING:
    from .httpd import RequestRecord
    from .server import FakeExchange

MAX_REQUESTS = 20  # Graph's limit per batch
MAILBOX_CONCURRENCY = 4  # Outlook: requests per app and mailbox at once


class _Headers(dict[str, str]):
    """Case-insensitive header lookup (what ``http.server`` headers offer)."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__({k.lower(): v for k, v in values.items()})

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass
class GraphCall:
    """The parts of one Graph request the router needs (a plain request or a sub-request)."""

    command: str
    headers: Any  # .get(name) case-insensitive
    held: list[str] = field(default_factory=list)  # mailboxes occupied until the answer


def handle_batch(fx: FakeExchange, h: Any, rec: RequestRecord, body: bytes
                 ) -> tuple[int, dict[str, str], bytes]:
    from .server import RequestRecord

    rec.operation = "$batch"
    request_id = rec.request_id = str(uuid.uuid4())
    headers = {"Content-Type": "application/json; charset=utf-8", "request-id": request_id}

    def bad(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
        return status, headers, json.dumps({"error": {"code": code, "message": message}}
                                           ).encode("utf-8")

    if h.command != "POST":
        return bad(405, "BadRequest", "Only POST is supported on $batch.")
    claims = fx._bearer(h.headers)
    if not isinstance(claims, dict):
        return bad(401, "InvalidAuthenticationToken", "Access token validation failure.")
    throttled = fx.faults.take_graph_throttle()
    if throttled is not None:
        from .server import _seconds

        rec.fault = "throttle_graph"
        status, wait = throttled
        code = "ApplicationThrottled" if status == 429 else "ServiceUnavailable"
        return status, {**headers, "Retry-After": _seconds(wait)}, json.dumps(
            {"error": {"code": code, "message": "Too many requests."}}).encode("utf-8")
    try:
        requests = json.loads(body.decode("utf-8"))["requests"]
        if not isinstance(requests, list) or not all(
                isinstance(r, dict) and {"id", "method", "url"} <= set(r) for r in requests):
            raise ValueError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return bad(400, "BadRequest", "Invalid batch payload format.")
    if len(requests) > MAX_REQUESTS:
        return bad(400, "BadRequest",
                   f"The number of requests in the batch exceeds the limit of {MAX_REQUESTS}.")
    ids = [str(r["id"]) for r in requests]
    if len(set(ids)) != len(ids):
        return bad(400, "BadRequest", "Batch request ids must be unique.")
    outer = _Headers({k: v for k, v in h.headers.items()})
    responses: list[bytes] = []
    for r in requests:
        url = str(r["url"])
        split = urlsplit(url if url.startswith("/") else "/" + url)
        path = split.path if split.path.startswith("/v1.0/") else "/v1.0" + split.path
        given = {str(k): str(v) for k, v in (r.get("headers") or {}).items()}
        sub_headers = _Headers({**given, "Authorization": outer.get("Authorization", ""),
                                "Host": outer.get("Host", "")})
        sub = RequestRecord(str(r["method"]).upper(), path, split.query, "graph",
                            headers=given, started=time.monotonic(), batch=request_id)
        status, sub_out, payload = fx._graph_request(
            GraphCall(sub.method, sub_headers, h.held), sub, path, split.query, sub=True)
        sub.status, sub.response_bytes = status, len(payload)
        sub.duration = time.monotonic() - sub.started
        fx._log(sub)
        keep = {k: v for k, v in sub_out.items() if k.lower() in ("retry-after", "content-type",
                                                                   "preference-applied")}
        # The sub-response's JSON goes in as it is, not parsed and written again.
        responses.append(b'{"id":%s,"status":%d,"headers":%s,"body":%s}' % (
            compact_json(str(r["id"])).encode(), status, compact_json(keep).encode(),
            payload or b"null"))
    return 200, headers, b'{"responses":[%s]}' % b",".join(responses)
