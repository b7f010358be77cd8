"""The number worker (sync/numbers.py): E.164 of large reads in a second process gives what
the writer would compute itself, and a worker that fails changes nothing but speed."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from ucware_contactsync.phone import to_e164
from ucware_contactsync.sync import numbers
from ucware_contactsync.sync.numbers import NumberWorker
from ucware_contactsync.testing import generate_tenant
from ucware_contactsync.testing.generator import random_number

WRITTEN = ["+49 89 12345-0", "030 1234-567", "0171 1234567", "089 / 12 34 56", "123456",
           "+1 (212) 555-0100", "n/a", "Tel.: 089 123456 (privat)", "0049 30 1234568",
           "1-800-FLOWERS", "+49 (0)40 123456", "91551000", ""]


def sync_through_worker(office_factory: Any, monkeypatch: Any, take: Any, mailboxes: int
                        ) -> tuple[Any, Any, Any]:
    """A first sync (Graph) in which every read goes to the worker and ``take`` replaces
    ``NumberWorker.take``; (office, tenant, result), the run having exited 0."""
    monkeypatch.setattr(numbers, "MIN_NUMBERS", 1)
    monkeypatch.setattr(numbers, "_cores", lambda: 2)
    monkeypatch.setattr(NumberWorker, "take", take)
    tenant = generate_tenant(seed=mailboxes, mailboxes=mailboxes, contacts_per_mailbox=30,
                             roles=("Contacts.Read",))
    office = office_factory(tenant)
    r = office.sync()
    assert r.code == 0, r.err
    return office, tenant, r


def checked_e164(office: Any, tenant: Any) -> int:
    """Every E.164 in the phonebooks is ``to_e164`` of its number as written; how many."""
    checked = 0
    for email in tenant.mailboxes:
        for entry in office.book(email)["entries"]:
            for n in entry["numbers"]:
                assert n["e164"] == to_e164(n["number"], "DE", ""), n
                checked += 1
    return checked


def sample() -> list[str]:
    rng = random.Random(5)
    return WRITTEN + [random_number(rng) for _ in range(300)]


@pytest.mark.parametrize(("region", "area_code"), [("DE", ""), ("DE", "89"), ("NO", "")])
def test_worker_answers_what_to_e164_answers(region: str, area_code: str) -> None:
    with NumberWorker(region, area_code, min_numbers=1) as worker:
        worker.enabled = True  # also on a machine with one core
        got = worker.take(worker.submit(sample()))
    assert got == {n: to_e164(n, region, area_code) for n in sample()}
    assert any(v is None for v in got.values()) and any(v for v in got.values())


def test_worker_on_libphonenumbers_own_examples() -> None:
    """The corpus of tests/test_phone_corpus.py (libphonenumber's example numbers of every
    region and type, written the ways people write them, plus area codes and DIN suffixes):
    through the worker, each region and area code in its own worker round, the same E.164 as
    libphonenumber's truth there."""
    from test_phone_corpus import _corpus

    groups: dict[tuple[str, str], dict[str, str | None]] = {}
    for written, region, area_code, expected in _corpus():
        groups.setdefault((region, area_code), {})[written] = expected
    assert sum(map(len, groups.values())) > 500
    for (region, area_code), expected in groups.items():
        with NumberWorker(region, area_code, min_numbers=1) as worker:
            worker.enabled = True
            assert worker.take(worker.submit(list(expected))) == expected, (region, area_code)


def test_the_worker_yields_the_core_to_the_writer() -> None:
    """The worker runs NICE steps below the run: on a busy machine the writer, the run's
    critical path, gets the core."""
    with NumberWorker("DE", "", min_numbers=1) as worker:
        worker.enabled = True
        assert worker.take(worker.submit(["089 123456"])) == {"089 123456": "+4989123456"}
        assert worker._pool is not None
        (pid,) = worker._pool._processes  # type: ignore[union-attr]
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, mine + numbers.NICE)
        assert os.getpriority(os.PRIO_PROCESS, 0) == mine  # the run itself is untouched


def test_small_reads_stay_in_process() -> None:
    with NumberWorker("DE", "", min_numbers=50) as worker:
        worker.enabled = True
        assert worker.submit(["089 123456"] * 100) is None  # one distinct number
        assert worker._pool is None  # no process was started


def test_a_dead_worker_changes_nothing_but_speed() -> None:
    with NumberWorker("DE", "", min_numbers=1) as worker:
        worker.enabled = True
        assert worker.take(worker.submit(["089 123456"])) == {"089 123456": "+4989123456"}
        assert worker._pool is not None
        for proc in list(worker._pool._processes.values()):  # type: ignore[union-attr]
            proc.kill()
            proc.join()
        assert worker.take(worker.submit(["089 123457"])) == {}  # the writer computes it
        assert not worker.enabled and worker._pool is None
        assert worker.submit(["089 123458"]) is None


def test_sync_through_the_worker_writes_the_same_e164(office_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A first sync whose numbers all go through the worker: every E.164 in the phonebooks is
    to_e164 of the number as written, and the worker answered every mailbox."""
    answered: list[int] = []
    take = NumberWorker.take

    def spy(self: NumberWorker, fut: Any) -> dict[str, str | None]:
        got = take(self, fut)
        answered.append(len(got))
        return got

    office, tenant, r = sync_through_worker(office_factory, monkeypatch, spy, mailboxes=2)
    assert len(answered) == 2 and all(answered), answered
    assert checked_e164(office, tenant) > 40


def test_the_worker_ends_with_a_killed_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL of the run (cron's timeout, the OOM killer) leaves no worker behind: it reads
    the end of its queue and exits, and it never held the run's lock file (spawned, not
    forked)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import sys, time\n"
        "from ucware_contactsync.sync.numbers import NumberWorker\n"
        "w = NumberWorker('DE', '', min_numbers=1); w.enabled = True\n"
        "w.take(w.submit(['089 123456']))\n"
        "print(*w._pool._processes, flush=True)\n"
        "time.sleep(60)\n")
    run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    pid = int(run.stdout.readline())
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # a zombie until init reaps it counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().split()[2] == "Z":
                return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("the number worker outlived the killed run by 20 s")


def test_a_worker_killed_mid_sync_loses_nothing(office_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The worker dies (OOM killer) while the run waits for it: the run computes the numbers
    itself, exits 0 without a word about it, and every E.164 is right."""
    take = NumberWorker.take
    killed: list[int] = []

    def kill_then_take(self: NumberWorker, fut: Any) -> dict[str, str | None]:
        if self._pool is not None and not killed:
            for proc in list(self._pool._processes.values()):
                proc.kill()
                proc.join()
                killed.append(proc.pid)
        return take(self, fut)

    office, tenant, r = sync_through_worker(office_factory, monkeypatch, kill_then_take,
                                            mailboxes=3)
    assert killed and "worker" not in r.err.lower() and "Traceback" not in r.err
    assert checked_e164(office, tenant) > 60
