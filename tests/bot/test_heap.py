"""settle_heap: once the bot is built, what exists is frozen and young collections are rarer."""

from __future__ import annotations

import gc

from bot.app import GC_THRESHOLDS, settle_heap


def test_settle_heap_freezes_what_startup_built_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    built = [object() for _ in range(10)]  # stands for what startup leaves: lives on
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(built)
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
