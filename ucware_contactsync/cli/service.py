"""configure (the installer's questions) and check (pre-flight)."""

from __future__ import annotations

import argparse

from ..errors import ContactSyncError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("configure", parents=[common],
                       help="answer the installer's questions on a terminal")
    p.set_defaults(func=configure)
    p = sub.add_parser("check", parents=[common], help="pre-flight: token and each mailbox")
    p.set_defaults(func=check)


def configure(args: argparse.Namespace) -> int:
    raise ContactSyncError("configure is not available yet in this build")


def check(args: argparse.Namespace) -> int:
    raise ContactSyncError("check is not available yet in this build")
