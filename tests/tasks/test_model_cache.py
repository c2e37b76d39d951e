"""tasks/model_cache.py: a model asked for by two threads at once is loaded once."""

from __future__ import annotations

import threading
import time

from tasks.model_cache import loaded_once


def test_concurrent_callers_share_one_load() -> None:
    loads: list[str] = []

    @loaded_once(maxsize=2)
    def load(name: str) -> object:
        loads.append(name)
        time.sleep(0.2)  # long enough for every thread below to arrive during the load
        return object()

    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(load("bundle"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == ["bundle"] and len({id(r) for r in results}) == 1
    assert load("other") is not results[0] and loads == ["bundle", "other"]
    load.cache_clear()  # type: ignore[attr-defined]
    load("bundle")
    assert loads == ["bundle", "other", "bundle"]
