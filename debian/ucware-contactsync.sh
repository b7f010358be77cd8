#!/bin/sh
# /usr/bin/ucware-contactsync of the Debian package: the program in its own virtual
# environment (/usr/lib/ucware-contactsync/venv).
#
# Run as root, it switches to the service user ucservices first, so the database, its
# journal files and the run lock always belong to the user the nightly job runs as (a
# root-owned lock or SQLite journal would make the next nightly run fail). Files given on
# the command line must then be readable by ucservices. CONTACTSYNC_AS_ROOT=1 keeps root.
PROG=/usr/lib/ucware-contactsync/venv/bin/ucware-contactsync
SVC_USER=ucservices

if [ "$(id -u)" = 0 ] && [ "${CONTACTSYNC_AS_ROOT:-0}" != 1 ] \
        && getent passwd "$SVC_USER" >/dev/null 2>&1; then
    exec runuser -u "$SVC_USER" -- "$PROG" "$@"
fi
exec "$PROG" "$@"
