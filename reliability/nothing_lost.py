"""Nothing lost under ordinary but adversarial admin and mailbox sequences, through the CLI.

Each case drives the real command line against the fake Exchange Online and checks the
phonebooks afterwards: a changed contact whose GET answers 404 once (Graph), a short
complete re-read after HTTP 410 (the guard), ``phonebookname`` back and forth with edits in
between, a user's e-mail moved to another mailbox, the sync's title taken by a hand-made
phonebook, two spellings of one database URL, a user who leaves the sync group.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import make_url

from ucware_contactsync.testing import mutate

from .common import Case, Outcome, by_origin
from .lab import Lab, Run, fast_retries, short, small_tenant

APIS = ("ews", "graph")
VICTIM = "juergen.schaefer@contoso.de"


def _outcome(what: str, problems: list[str], damage: list[str]) -> Outcome:
    happened = what + (" — NOT OK: " + "; ".join(problems) if problems else "")
    return Outcome(happened, "; ".join(damage) or "nothing", ok=not problems)


def _line(run: Run, email: str) -> str:
    return next((ln for ln in run.lines if ln.lower().startswith(email.lower() + ":")), "")


def _healed(lab: Lab, title: str = "Privat") -> list[str]:
    differs = lab.mismatch(lab.snap(), title)
    return [f"afterwards: {differs}"] if differs else []


def graph_item_404(db_url: str, workdir: Path, full: bool) -> Outcome:
    with Lab(db_url, workdir, small_tenant("graph", full)) as lab, fast_retries():
        lab.must("sync")
        mbx = lab.tenant.mailbox(VICTIM)
        item = next(i for i in mbx.all_items() if i.kind == "contact"
                    and i.graph_id in lab.expected(VICTIM))
        mbx.update_contact(item.ews_id, display_name="Geändert vor dem 404")
        lab.fx.faults.item_not_found(1)
        run = lab.sync()
        kept = any(e[1] == item.graph_id for e in lab.snap().get((VICTIM, "Privat"), ()))
        heal = lab.sync()
        problems = [f"exit {run.code}"] if run.code else []
        problems += [f"next run exit {heal.code}"] if heal.code else []
        damage = [] if kept else ["the changed contact was deleted on a 404"]
        damage += _healed(lab)
        return _outcome(f"exit {run.code}: {short(run.headline)}; the contact stayed and the "
                        "next run read it from the same delta link", problems, damage)


def short_full_read(api: str):  # type: ignore[no-untyped-def]
    def run(db_url: str, workdir: Path, full: bool) -> Outcome:
        with Lab(db_url, workdir, small_tenant(api, full)) as lab, fast_retries():
            lab.must("sync")
            old = lab.snap()
            mbx = lab.tenant.mailbox(VICTIM)
            keep = next(iter(lab.expected(VICTIM)))
            for i in list(mbx.all_items()):
                if i.kind == "contact" and i.graph_id != keep:
                    mbx.delete_contact(i.ews_id)
            lab.fx.faults.invalidate_sync_states(VICTIM)
            first = lab.sync()
            again = lab.sync("--dry-run")
            after = lab.snap()
            problems = [] if first.code == 1 else [f"exit {first.code}, expected 1"]
            problems += first.problems()
            line = first.failed.get(VICTIM, "")
            if "refused" not in line or "--force" not in line:
                problems.append(f"no guard line for {VICTIM}: {short(first.headline)}")
            if VICTIM not in again.failed:
                problems.append("--dry-run did not show the same verdict")
            damage = [] if after.get((VICTIM, "Privat")) == old.get((VICTIM, "Privat")) else [
                "the phonebook shrank without --force"]
            forced = lab.sync("--force", "--user", VICTIM)
            problems += [f"--force gave exit {forced.code}"] if forced.code else []
            damage += _healed(lab)
            return _outcome(f"exit {first.code}: {short(line or first.headline, 160)}",
                            problems, damage)
    return run


def title_back_and_forth(api: str):  # type: ignore[no-untyped-def]
    def run(db_url: str, workdir: Path, full: bool) -> Outcome:
        with Lab(db_url, workdir, small_tenant(api, full)) as lab, fast_retries():
            lab.must("sync")
            lab.must("config", "set", "phonebookname", "Outlook")
            lab.must("sync")
            mutate(lab.tenant, seed=23, adds=3, updates=3, deletes=2)
            lab.must("sync")
            lab.must("config", "set", "phonebookname", "Privat")
            back = lab.must("sync", "-v")
            full_reads = sum(f"(full, {api})" in ln for ln in back.err.splitlines())
            problems = [] if full_reads == len(lab.tenant.mailboxes) else [
                f"{full_reads} full reads after switching back"]
            return _outcome(f"exit {back.code}: {short(back.headline)}; Privat read in full "
                            "for every user", problems, _healed(lab))
    return run


def hand_made_title(db_url: str, workdir: Path, full: bool) -> Outcome:
    with Lab(db_url, workdir, small_tenant("graph", full)) as lab, fast_retries():
        lab.must("sync")
        lab.must("phonebook", "add", "--user", VICTIM, "--phonebook", "Outlook", "--name",
                 "Per Hand", "--number", "mobile:0170 1234567")
        old = lab.snap()
        lab.must("config", "set", "phonebookname", "Outlook")
        run = lab.sync()
        after = lab.snap()
        problems = [] if run.code == 1 else [f"exit {run.code}, expected 1"]
        problems += run.problems()
        if "rename" not in run.failed.get(VICTIM, ""):
            problems.append(f"no clash line for {VICTIM}")
        if set(run.failed) != {VICTIM}:
            problems.append(f"failed: {sorted(run.failed)}")
        damage = [] if after.get((VICTIM, "Outlook")) == old.get((VICTIM, "Outlook")) else [
            "Outlook contacts were merged into the hand-made phonebook"]
        return _outcome(f"exit {run.code}: {short(run.failed.get(VICTIM, run.headline), 170)}",
                        problems, damage)


def left_the_group(db_url: str, workdir: Path, full: bool) -> Outcome:
    with Lab(db_url, workdir, small_tenant("graph", full)) as lab, fast_retries():
        lab.must("sync")
        lab.add_other_origins()
        old = lab.snap()
        group = "Kontakte"  # the group Lab made
        lab.must("groups", "set", group, "ews_synccontacts", "false")
        mutate(lab.tenant, seed=29, adds=2, updates=2, deletes=2)
        run = lab.sync()
        after = lab.snap()
        said = [ln for ln in run.lines if "no longer in a group" in ln]
        problems = [] if run.code == 0 else [f"exit {run.code}"]
        if len(said) != len(lab.tenant.mailboxes):
            problems.append(f"{len(said)} lines for {len(lab.tenant.mailboxes)} users")
        damage = [] if after == old else ["a phonebook changed after its user left the group"]
        lab.must("groups", "set", group, "ews_synccontacts", "true")
        lab.must("sync")
        if by_origin(lab.snap(), ("manual", "csv")) != by_origin(old, ("manual", "csv")):
            damage.append("hand-typed or CSV entries changed")
        damage += _healed(lab)
        return _outcome(f"exit {run.code}: {short(said[0] if said else run.headline, 170)}",
                        problems, damage)


def _other_spelling(db_url: str, workdir: Path) -> str:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        link = workdir / "same-database.db"
        link.symlink_to(url.database or "")
        return f"sqlite:///{link}"
    extra = ({"charset": "utf8mb4"} if url.get_backend_name() == "mysql"
             else {"application_name": "contactsync-b"})
    return url.set(host="localhost", port=None).update_query_dict(extra).render_as_string(
        hide_password=False)


def two_spellings(db_url: str, workdir: Path, full: bool) -> Outcome:
    with Lab(db_url, workdir, small_tenant("graph", full)) as lab:
        other = _other_spelling(db_url, workdir)
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time\n"
             "from ucware_contactsync.sync.lock import RunLock\n"
             "RunLock(sys.argv[1]).__enter__(); print('held', flush=True); time.sleep(120)",
             db_url], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None
            holder.stdout.readline()
            loser = lab.cli("--db", other, "sync")
        finally:
            holder.kill()
            holder.wait()
        problems = [] if loser.code == 75 else [f"exit {loser.code}, expected 75"]
        if "IntegrityError" in loser.err:
            problems.append("a raw IntegrityError")
        for _ in range(50):
            after = lab.cli("--db", other, "sync")
            if after.code != 75:
                break
            time.sleep(0.1)
        problems += [f"after SIGKILL of the holder: exit {after.code}"] if after.code else []
        return _outcome(f"exit {loser.code}: {short(loser.headline, 170)}; free again after "
                        "SIGKILL of the holder", problems, _healed(lab))


CASES: list[Case] = [
    Case("item-404-graph", "changed contact answers 404 once (graph)", graph_item_404),
    *[Case(f"short-full-read-{api}", f"full re-read after 410 returns 1 contact ({api})",
           short_full_read(api)) for api in APIS],
    *[Case(f"title-back-{api}", f"phonebookname Privat → Outlook → Privat with edits ({api})",
           title_back_and_forth(api)) for api in APIS],
    Case("hand-made-title", "phonebookname set to a hand-made phonebook's title", hand_made_title),
    Case("left-the-group", "users leave the sync group", left_the_group),
    Case("two-url-spellings", "two spellings of one database URL, holder SIGKILLed",
         two_spellings),
]
