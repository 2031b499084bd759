"""What is alive at start-up is kept out of the cyclic garbage collector's traversals."""

from __future__ import annotations

import gc

from mcs_apiserver.server import freeze_heap


def test_objects_alive_at_start_up_are_no_longer_traversed_by_the_collector() -> None:
    cache = {f"export-{i}": {"ports": [i]} for i in range(1000)}  # like a member's cache at start-up
    assert any(o is cache for o in gc.get_objects())
    try:
        freeze_heap()
        assert gc.get_freeze_count() >= len(cache)
        assert not any(o is cache for o in gc.get_objects())  # no generation holds it: never traversed
        made_later = [[0]]
        assert any(o is made_later for o in gc.get_objects())  # what comes later still is
    finally:
        gc.unfreeze()
