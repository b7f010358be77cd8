#!/usr/bin/python3
"""The documented manual import of the Debian package.

    sudo -u ucservices python3 /usr/lib/ucware-contactsync/runner.py -v

Installed by the Debian package. Works with any python3 on PATH: it hands over to the
package's own virtual environment (Debian's python3 plus the libraries it needs), with the
same arguments, so ``runner.py`` and ``/usr/bin/ucware-contactsync`` are the same program.
Run as root it switches to the service user ucservices first, as /usr/bin/ucware-contactsync
does (CONTACTSYNC_AS_ROOT=1 keeps root).
"""
import os
import pwd
import sys

VENV_PYTHON = "/usr/lib/ucware-contactsync/venv/bin/python3"
SERVICE_USER = "ucservices"
RUNUSER = "/usr/sbin/runuser"


def main():
    if not os.access(VENV_PYTHON, os.X_OK):
        sys.stderr.write(f"ucware-contactsync: {VENV_PYTHON} is missing; reinstall the "
                         "package (apt-get install --reinstall ucware-contactsync)\n")
        return 2
    # -I: isolated mode, so neither the caller's working directory nor PYTHONPATH can
    # shadow the installed package.
    argv = [VENV_PYTHON, "-I", "-m", "ucware_contactsync"] + sys.argv[1:]
    if os.geteuid() == 0 and os.environ.get("CONTACTSYNC_AS_ROOT") != "1":
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            pass
        else:
            if os.access(RUNUSER, os.X_OK):
                argv = [RUNUSER, "-u", SERVICE_USER, "--"] + argv
    os.execv(argv[0], argv)
    return 2  # not reached


if __name__ == "__main__":
    sys.exit(main())
