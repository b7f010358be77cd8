"""A small HTTP(S) server on 127.0.0.1 that logs every request and answers as told: the
redirecting token endpoint, the hijacked Graph URL and the sink a secret must never reach."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        return f"{self.method} {self.path}\n{self.headers}\n" + self.body.decode("latin-1")


# (status, headers, body) for a request
Answer = tuple[int, dict[str, str], bytes]


class Recorder:
    """``answer(seen)`` decides the reply; ``seen`` lists every request in order. With
    ``cert_dir`` (the fake Exchange's, so the same CA is trusted) it speaks HTTPS."""

    def __init__(self, answer: Callable[[Seen], Answer], cert_dir: Path | None = None) -> None:
        self.answer = answer
        self.seen: list[Seen] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers),
                            self.rfile.read(size) if size else b"")
                recorder.seen.append(seen)
                status, headers, body = recorder.answer(seen)
                self.send_response(status)
                for k, v in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any  # noqa: N815 - stdlib naming

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if cert_dir is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert_dir / "server.pem"), str(cert_dir / "server.key"))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def all_text(self) -> str:
        return "\n".join(s.text() for s in self.seen)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def redirect(status: int, location: str) -> Callable[[Seen], Answer]:
    return lambda seen: (status, {"Location": location + seen.path}, b"")
