"""The sync run collects garbage less often while it runs, and puts everything back."""

from __future__ import annotations

import gc

import pytest

from ucware_contactsync.sync.engine import fewer_collections


def test_thresholds_and_freeze_are_restored_even_on_error() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    assert frozen == 0
    with pytest.raises(RuntimeError), fewer_collections():
        assert gc.get_threshold()[0] == 10_000
        assert gc.get_freeze_count() > 0
        raise RuntimeError("a run that fails")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_freeze_of_the_embedding_program_is_left_alone() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with fewer_collections():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
