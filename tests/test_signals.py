"""Ctrl-C and SIGTERM through the real program (reliability/signals.py) at suite size: a
throttled sync stops within seconds with one line and exit 130 / 143, every phonebook old or
new, the lock released. ``python3 -m reliability --only throttled`` runs all the variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.signals import sigint_three_times, sigterm_throttled


@pytest.fixture(scope="module")
def backend_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite only here; the reliability table runs the cases on the server databases."""
    from ucware_contactsync import db as dbmod

    url = f"sqlite:///{tmp_path_factory.mktemp('signals') / 'test.db'}"
    engine = dbmod.make_engine(url)
    dbmod.upgrade(engine)
    engine.dispose()
    return url


@pytest.mark.parametrize("case", [sigint_three_times, sigterm_throttled],
                         ids=["sigint-three-times", "sigterm"])
def test_a_throttled_sync_stops_at_once(case, db_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outcome = case(db_url, tmp_path, False)
    assert outcome.passed, f"{outcome.happened}; lost: {outcome.lost}"
