import sys

from ucware_contactsync.cli import main

if __name__ == "__main__":
    sys.exit(main())
