#!/usr/bin/env python3
"""The documented entry point: ``python3 runner.py -v`` runs the contact sync."""
import sys

from ucware_contactsync.cli import main

if __name__ == "__main__":
    sys.exit(main())
