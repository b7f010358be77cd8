import sys

from ucware_contactsync.cli import main

sys.exit(main())
