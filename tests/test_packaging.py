"""The README's promise: `pip install .` in a fresh venv, then the seed's admin steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_fresh_venv_pip_install_and_admin_steps(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT)],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-2000:]
    exe = str(venv / "bin" / "ucware-contactsync")
    url = f"sqlite:///{tmp_path / 'x.db'}"

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, "--db", url, *argv], capture_output=True, text=True,
                              cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    for argv in (["db", "init"], ["users", "add", "Anna.Berg@contoso.de"], ["groups", "add", "G"],
                 ["groups", "set", "G", "ews_synccontacts", "true"],
                 ["groups", "add-member", "G", "anna.berg@contoso.de"],
                 ["config", "set", "client_secret", "Sup3r-Secret~x"]):
        r = run(*argv)
        assert r.returncode == 0, (argv, r.stderr)
    r = run("phonebook", "show", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == []
    r = run("config", "list")
    assert "Sup3r-Secret~x" not in r.stdout and "********" in r.stdout
    # the installed package carries the migrations and the fake for the demo
    r = subprocess.run([exe, "demo"], capture_output=True, text=True, cwd=tmp_path,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "second run" in r.stdout and "Pizzeria Da Mario" in r.stdout
