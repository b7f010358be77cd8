"""``python3 -m ucware_contactsync.testing``: run a fake Exchange Online in the foreground.

Prints the URLs, the app's credentials, the CA file and the ``ucware-contactsync config set``
lines that point the module at it. Ctrl-C (or SIGTERM) stops it cleanly.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from types import FrameType

from .generator import generate_tenant
from .server import FakeExchange


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m ucware_contactsync.testing",
                                description="Fake Exchange Online (Entra token endpoint, EWS, "
                                            "Graph) over HTTPS on 127.0.0.1.")
    p.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument("--mailboxes", type=int, default=3, help="number of mailboxes (default 3)")
    p.add_argument("--contacts", type=int, default=200,
                   help="contacts per mailbox (default 200)")
    p.add_argument("--subfolders", type=int, default=2, help="subfolders per mailbox")
    p.add_argument("--distribution-lists", type=int, default=2, help="lists per mailbox")
    p.add_argument("--roles", default="full_access_as_app,Contacts.Read",
                   help="comma-separated app roles (default: both EWS and Graph)")
    p.add_argument("--cert-dir", help="write the CA/certificate here (default: a temp dir, "
                                      "removed on exit)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tenant = generate_tenant(seed=args.seed, mailboxes=args.mailboxes,
                             contacts_per_mailbox=args.contacts, subfolders=args.subfolders,
                             distribution_lists=args.distribution_lists,
                             roles=[r.strip() for r in args.roles.split(",") if r.strip()])
    app = next(iter(tenant.apps.values()))
    # Installed before anything is printed: whoever reads our output may SIGTERM at once.
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    fx = FakeExchange(tenant, port=args.port, host=args.host, cert_dir=args.cert_dir)
    try:
        fx.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    settings = fx.settings()
    mailboxes = {m.smtp: len(m.items) for m in tenant.mailboxes.values()}
    if args.json:
        print(json.dumps({**settings, "roles": list(app.roles), "mailboxes": mailboxes}),
              flush=True)
    else:
        width = max(map(len, settings)) + 1
        lines = ["Fake Exchange Online is running (Ctrl-C stops it).", ""]
        lines += [f"  {k + ':':<{width}} {v}" for k, v in settings.items()]
        lines += [f"  {'roles:':<{width}} {', '.join(app.roles)}", "", "Mailboxes:"]
        lines += [f"  {smtp}  ({n} items)" for smtp, n in mailboxes.items()]
        lines += ["", "Point ucware-contactsync at it:"]
        lines += [f"  ucware-contactsync config set {k} {shlex.quote(v)}"
                  for k, v in settings.items()]
        print("\n".join(lines), flush=True)

    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        fx.stop()
    if not args.json:
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
