"""The Debian package, for real: build the .deb, install it with preseeded debconf answers,
find the answers in the key-value store and the nightly job, run the documented manual import
as ``ucservices`` against the fake Exchange Online, reconfigure, and purge.

It installs a package on this machine, so it runs only as root with the Debian build tools
present (``.ci/run`` installs them). Under CI (``CI=true``) missing tools are a failure, not
a skip. ``CONTACTSYNC_SKIP_DEB=1`` skips it outside CI; ``CONTACTSYNC_DEB=/path/x.deb`` tests
that .deb instead of building one.

The tests of this module depend on each other and run in file order on one installation
(module-scoped fixtures); the last one purges the package.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from terminal import Terminal

ROOT = Path(__file__).resolve().parent.parent
PKG = "ucware-contactsync"
SVC_USER = "ucservices"
CLI = "/usr/bin/ucware-contactsync"
RUNNER = "/usr/lib/ucware-contactsync/runner.py"
CONF_DIR = Path("/etc/ucware-contactsync")
STATE_DIR = Path("/var/lib/ucware-contactsync")
LIB_DIR = Path("/usr/lib/ucware-contactsync")
DB_FILE = STATE_DIR / "contactsync.db"
CRON_FILE = Path("/etc/cron.d/ucware-contactsync")
TIMER_LINK = Path("/etc/systemd/system/timers.target.wants/ucware-contactsync.timer")
UNIT_DIRS = (Path("/lib/systemd/system"), Path("/usr/lib/systemd/system"))

TENANT_ID = "6c1e0b8a-3f2d-4a5b-9c8d-7e6f5a4b3c2d"
CLIENT_ID = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"
SECRET = "Deb~Preseed.Secret_7f3a9"
TOOLS = ("dpkg-buildpackage", "dpkg-checkbuilddeps", "dh", "dh_virtualenv", "po2debconf",
         "debconf-set-selections", "debconf-communicate", "apt-get", "dpkg", "runuser")
IN_CI = os.environ.get("CI") == "true"

# One worker builds, installs and purges the package in order (pytest-xdist --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("debian")]


def _require() -> None:
    if os.environ.get("CONTACTSYNC_SKIP_DEB") == "1" and not IN_CI:
        pytest.skip("CONTACTSYNC_SKIP_DEB=1")
    reasons = []
    if os.geteuid() != 0:
        reasons.append("needs root (it installs and purges the package)")
    missing = [t for t in TOOLS if not shutil.which(t, path=SYS_PATH)]
    if missing:
        reasons.append(f"missing tools: {', '.join(missing)}")
    elif not os.environ.get("CONTACTSYNC_DEB"):
        r = run(["dpkg-checkbuilddeps"], cwd=ROOT)
        if r.returncode != 0:
            reasons.append((r.stdout + r.stderr).strip())
    if reasons:
        msg = ("Debian package test: " + "; ".join(reasons) + ". Install the build tools: "
               "apt-get install -y --no-install-recommends build-essential debhelper "
               "dh-virtualenv po-debconf python3-venv")
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


SYS_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _env(**extra: str) -> dict[str, str]:
    """A clean system environment: no developer venv, no pyenv, no test database URL."""
    env = {"PATH": SYS_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
    env.update(extra)
    return env


def run(argv: list[str], *, input: str | None = None, cwd: Path | str = "/",
        timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=input, cwd=cwd, env=_env(**env), capture_output=True,
                          text=True, timeout=timeout, stdin=None if input is not None
                          else subprocess.DEVNULL)


def as_service(*argv: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed CLI as ucservices (as the docs tell the admin to run it)."""
    return run(["runuser", "-u", SVC_USER, "--", CLI, *argv], input=input)


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"{r.args} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def _purge() -> None:
    """Remove the package and its debconf answers, whatever state an earlier run left."""
    if run(["dpkg-query", "-W", PKG]).returncode == 0:
        run(["apt-get", "purge", "-y", PKG], DEBIAN_FRONTEND="noninteractive")
        run(["dpkg", "--purge", PKG])
    if run(["dpkg-query", "-W", PKG]).returncode != 0:
        run(["debconf-communicate", PKG], input="PURGE\n")  # preseeded, never installed


def _copy_sources(dest: Path) -> None:
    """The project's files (tracked and new, not ignored), as a fresh clone would have."""
    r = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    if r.returncode == 0 and r.stdout:
        for name in r.stdout.split("\0"):
            src = ROOT / name
            if name and src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
        return
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
        ".ruff_cache", "*.db"))


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb, built once per test session with ``dpkg-buildpackage -us -uc -b``."""
    _require()
    if os.environ.get("CONTACTSYNC_DEB"):
        return Path(os.environ["CONTACTSYNC_DEB"])
    work = tmp_path_factory.mktemp("deb")
    src = work / PKG
    _copy_sources(src)
    started = time.monotonic()
    r = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, timeout=1200)
    log = r.stdout + r.stderr
    assert r.returncode == 0, f"dpkg-buildpackage failed:\n{log[-6000:]}"
    print(f"built the .deb in {time.monotonic() - started:.0f} s")
    debs = sorted(work.glob(f"{PKG}_*.deb"))
    assert len(debs) == 1, log[-3000:]
    return debs[0]


@dataclass
class Office:
    fx: object
    mailboxes: list[str]
    ca_file: str


@pytest.fixture(scope="module")
def office() -> Iterator[Office]:
    """The fake Exchange Online, in this process; its app has the preseeded credentials."""
    from ucware_contactsync.testing import FakeExchange, generate_tenant

    tenant = generate_tenant(seed=11, mailboxes=2, contacts_per_mailbox=25, subfolders=1,
                             distribution_lists=1, tenant_id=TENANT_ID, client_id=CLIENT_ID,
                             secret=SECRET)
    cadir = Path(tempfile.mkdtemp(prefix="contactsync-ca-"))
    cadir.chmod(0o755)  # ucservices must read the CA (pytest's tmp dirs are 0700)
    with FakeExchange(tenant) as fx:
        ca = cadir / "ca.pem"
        shutil.copyfile(fx.ca_file, ca)
        ca.chmod(0o644)
        yield Office(fx, sorted(m for m in tenant.mailboxes), str(ca))
    shutil.rmtree(cadir, ignore_errors=True)


@pytest.fixture(scope="module")
def machine_lock() -> Iterator[None]:
    """One installation at a time on this machine: test runs started in parallel (several
    developers' pytest runs as root) wait for each other instead of purging each other's
    package."""
    fd = os.open("/run/lock/ucware-contactsync-debtest.lock", os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + 1200
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                pytest.fail("another Debian package test held the machine for 20 minutes")
            time.sleep(2)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@pytest.fixture(scope="module")
def installed(deb: Path, office: Office, machine_lock: None) -> Iterator[str]:
    """The package installed with preseeded answers; purged again at the end."""
    _purge()
    preseed = "\n".join([
        f"{PKG} {PKG}/office365 boolean true",
        f"{PKG} {PKG}/tenant_id string {TENANT_ID}",
        f"{PKG} {PKG}/client_id string {CLIENT_ID}",
        f"{PKG} {PKG}/client_secret password {SECRET}",
    ]) + "\n"
    ok(run(["debconf-set-selections"], input=preseed))
    started = time.monotonic()
    r = ok(run(["apt-get", "install", "-y", str(deb)], DEBIAN_FRONTEND="noninteractive"))
    print(f"installed in {time.monotonic() - started:.0f} s")
    yield r.stdout + r.stderr
    _purge()


def _kv() -> dict[str, str]:
    """The key-value store, read from the installed SQLite file as ucservices (a root
    connection would leave root-owned journal files behind)."""
    code = ("import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(json.dumps("
            "dict(c.execute(\"SELECT key, value FROM kv_store WHERE namespace = "
            "'contactsync'\").fetchall())))")
    r = ok(run(["runuser", "-u", SVC_USER, "--", "/usr/bin/python3", "-c", code, str(DB_FILE)]))
    return json.loads(r.stdout)


def _owner(path: Path) -> tuple[str, int]:
    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, stat.S_IMODE(st.st_mode)


def test_install_stores_the_preseeded_answers_in_the_key_value_store(installed: str) -> None:
    kv = _kv()
    assert kv["office365"] == "true"
    assert kv["tenant_id"] == TENANT_ID
    assert kv["client_id"] == CLIENT_ID
    assert kv["client_secret"] == SECRET
    assert SECRET not in installed  # not in apt's output either


def test_the_secret_does_not_stay_in_debconf(installed: str) -> None:
    r = ok(run(["debconf-communicate", PKG], input=f"GET {PKG}/client_secret\n"))
    assert r.stdout.strip() == "0", r.stdout  # "0" + empty value
    r = ok(run(["debconf-communicate", PKG], input=f"GET {PKG}/tenant_id\n"))
    assert r.stdout.strip() == f"0 {TENANT_ID}"
    for f in Path("/var/cache/debconf").glob("*.dat*"):
        assert SECRET not in f.read_text(errors="replace"), f


def test_the_questions_are_translated_to_german(installed: str) -> None:
    templates = Path("/var/cache/debconf/templates.dat").read_text(errors="replace")
    assert "Kontakte aus Office 365 (office365.com) importieren?" in templates
    assert "Secret (Wert des geheimen Clientschlüssels):" in templates


def test_user_files_and_permissions(installed: str) -> None:
    assert pwd.getpwnam(SVC_USER)
    assert _owner(CONF_DIR) == (SVC_USER, 0o750)
    assert _owner(CONF_DIR / "database.url") == (SVC_USER, 0o640)
    assert (CONF_DIR / "database.url").read_text().strip() == f"sqlite:///{DB_FILE}"
    assert _owner(STATE_DIR) == (SVC_USER, 0o750)
    assert _owner(DB_FILE)[0] == SVC_USER
    assert os.access(CLI, os.X_OK) and Path(RUNNER).is_file()
    # The virtual environment runs Debian's python3, not whatever python3 is first on PATH.
    venv_python = LIB_DIR / "venv" / "bin" / "python3"
    assert venv_python.resolve() == Path("/usr/bin/python3").resolve()


def test_nightly_job_timer_or_cron_never_both(installed: str) -> None:
    timer = next(d / "ucware-contactsync.timer" for d in UNIT_DIRS
                 if (d / "ucware-contactsync.timer").exists())
    text = timer.read_text()
    assert "OnCalendar=" in text and "RandomizedDelaySec=" in text
    assert "Persistent=true" in text
    service = (timer.parent / "ucware-contactsync.service").read_text()
    assert "User=ucservices" in service
    assert "ExecStart=/usr/bin/ucware-contactsync sync" in service
    assert TIMER_LINK.is_symlink()  # enabled (deb-systemd-helper works without systemd too)
    if shutil.which("systemd-analyze", path=SYS_PATH):
        r = run(["systemd-analyze", "verify", str(timer)])
        assert "ucware-contactsync" not in r.stderr or r.returncode == 0, r.stderr

    lines = [ln for ln in CRON_FILE.read_text().splitlines()
             if ln.strip() and not ln.startswith("#") and "=" not in ln.split()[0]]
    assert len(lines) == 1, lines
    fields = lines[0].split(None, 6)
    assert fields[5] == SVC_USER
    command = fields[6]
    assert command.startswith("[ -d /run/systemd/system ] ||"), command
    # The guard really ends the cron job where systemd runs (a stand-in directory here).
    probe = command.replace("/run/systemd/system", "/etc").replace(CLI, "/bin/false")
    assert run(["sh", "-c", probe]).returncode == 0
    probe = command.replace("/run/systemd/system", "/nonexistent").replace(CLI, "/bin/false")
    assert run(["sh", "-c", probe]).returncode != 0


def test_documented_manual_import_as_ucservices_against_fake_exchange_online(
        installed: str, office: Office) -> None:
    fx = office.fx
    for key, value in (("login_url", fx.login_url), ("graph_url", fx.graph_url),
                       ("ews_url", fx.ews_url), ("ca_bundle", office.ca_file)):
        ok(as_service("config", "set", key, value))
    ok(as_service("groups", "add", "Kontakte"))
    ok(as_service("groups", "set", "Kontakte", "ews_synccontacts", "true"))
    for mbx in office.mailboxes:
        ok(as_service("users", "add", mbx))
        ok(as_service("groups", "add-member", "Kontakte", mbx))

    # The seed's command, with Debian's python3: sudo -u ucservices python3 …/runner.py -v
    r = run(["runuser", "-u", SVC_USER, "--", "python3", RUNNER, "-v"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert SECRET not in r.stdout + r.stderr

    books = json.loads(ok(as_service("phonebook", "show", "--json")).stdout)
    owners = {b["owner"].lower(): b for b in books}
    assert set(office.mailboxes) <= set(owners), books
    for mbx in office.mailboxes:
        assert owners[mbx]["name"] == "Privat"
        assert len(owners[mbx]["entries"]) > 0

    # root running the runner (a forgotten sudo -u) is switched to ucservices, so the
    # nightly job never meets root-owned database, journal or lock files.
    r = run(["python3", RUNNER, "-v"])
    assert r.returncode == 0, r.stdout + r.stderr
    from ucware_contactsync.sync.lock import lock_path

    ours = [DB_FILE, *STATE_DIR.glob("contactsync.db-*"),
            STATE_DIR / lock_path(f"sqlite:///{DB_FILE}").name]
    root_owned = [p for p in ours if p.exists() and p.stat().st_uid == 0]
    assert not root_owned, root_owned
    assert (STATE_DIR / lock_path(f"sqlite:///{DB_FILE}").name).exists()


def test_reconfigure_keeps_the_secret_and_the_admins_key_changes(installed: str) -> None:
    # The admin changes a key in the key-value store, as the original admin page says.
    new_client = "11111111-2222-4333-8444-555555555555"
    ok(as_service("config", "set", "client_id", new_client))
    r = ok(run(["dpkg-reconfigure", "-f", "noninteractive", PKG]))
    assert SECRET not in r.stdout + r.stderr
    kv = _kv()
    assert kv["client_id"] == new_client  # not overwritten by the old debconf answer
    assert kv["client_secret"] == SECRET  # empty debconf secret = keep
    r = ok(run(["debconf-communicate", PKG], input=f"GET {PKG}/client_id\n"))
    assert r.stdout.strip() == f"0 {new_client}"  # debconf shows the store's value
    ok(as_service("config", "set", "client_id", CLIENT_ID))




def test_interactive_dpkg_reconfigure_checks_answers_and_hides_the_secret(
        installed: str) -> None:
    """dpkg-reconfigure on a terminal (debconf's readline frontend): a wrong client id is
    asked again, the new secret is not echoed, and both end up in the key-value store."""
    new_secret = "Reconf~Secret.9x2"
    new_client = "22222222-3333-4444-8555-666666666666"
    t = Terminal(["dpkg-reconfigure", "-f", "readline", PKG],
                 _env(DEBIAN_PRIORITY="high"))
    t.expect("Import contacts from Office 365 (office365.com)? [yes/no]")
    t.send("yes")
    t.expect("Directory (tenant) ID:")
    t.send("")  # keep
    t.expect("Application (client) ID:")
    t.send("no-guid")
    t.expect("Invalid Application (client) ID")
    t.expect("Application (client) ID:")
    t.send(new_client)
    t.expect("Secret:")
    t.send(new_secret)
    t.expect("company phonebook from the directory (empty: none):")
    t.send("Firma")
    code = t.wait()
    transcript = t.text
    assert code == 0, transcript
    assert new_secret not in transcript and SECRET not in transcript
    kv = _kv()
    assert kv["client_id"] == new_client
    assert kv["client_secret"] == new_secret
    assert kv["directory_phonebook"] == "Firma"
    r = ok(run(["debconf-communicate", PKG], input=f"GET {PKG}/client_secret\n"))
    assert r.stdout.strip() == "0"


def test_purge_leaves_nothing_behind_but_the_shared_user(installed: str) -> None:
    r = ok(run(["apt-get", "purge", "-y", PKG], DEBIAN_FRONTEND="noninteractive"))
    assert "dpkg: warning" not in r.stdout + r.stderr, r.stdout + r.stderr  # e.g. dir not empty
    assert run(["dpkg-query", "-W", "-f=${Status}", PKG]).stdout in ("", "unknown ok not-installed")
    for path in (LIB_DIR, CONF_DIR, STATE_DIR, CRON_FILE, TIMER_LINK, Path(CLI),
                 *(d / "ucware-contactsync.timer" for d in UNIT_DIRS)):
        assert not os.path.lexists(path), path
    assert run(["debconf-show", PKG]).stdout.strip() == ""
    for f in Path("/var/cache/debconf").glob("*.dat"):
        assert f"{PKG}/" not in f.read_text(errors="replace"), f
    assert not list(Path("/var/lib/systemd/deb-systemd-helper-enabled").rglob("ucware-*"))
    # Documented policy: ucservices stays (the UCware server's other services use it).
    assert pwd.getpwnam(SVC_USER)
