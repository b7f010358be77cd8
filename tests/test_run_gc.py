"""The sync run collects garbage less often while it runs, and puts the thresholds back."""

from __future__ import annotations

import gc

import pytest

from ucware_contactsync.sync.engine import fewer_collections


def test_thresholds_are_restored_even_on_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        assert gc.get_threshold() == (max(10_000, before[0]), *before[1:])
        raise RuntimeError("a run that fails")
    assert gc.get_threshold() == before


def test_overlapping_runs_restore_once_the_last_ends() -> None:
    before = gc.get_threshold()
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first run ends while the second still runs
    assert gc.get_threshold()[0] >= 10_000
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
