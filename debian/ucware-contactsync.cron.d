# ucware-contactsync: nightly import of Outlook contacts into UCware phonebooks.
# Only for systems without systemd: where systemd runs, ucware-contactsync.timer does the
# job and this line exits at once, so the import never runs twice.
# Output: -q keeps cron's mail for errors; the summary and failures go to syslog.
SHELL=/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin

17 2 * * *	ucservices	[ -d /run/systemd/system ] || [ ! -x /usr/bin/ucware-contactsync ] || /usr/bin/ucware-contactsync -q sync
