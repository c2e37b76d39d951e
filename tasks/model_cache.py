"""Per-process caches for loaded models that several threads may ask for at once.

``functools.lru_cache`` does not hold a lock while it computes: two threads asking for the
same model together both load it. The embedded run loads its models on a helper thread while
the flow starts (tasks/preload.py), and a stage may ask for one while that load is still
running; ``loaded_once`` makes the second caller wait for the first load and take its result.

All loaders share ONE process-wide lock, not one each: a load's ``from_pretrained`` may import
modules lazily (transformers' Auto classes, diffusers' components by class name), and two
loads importing at once on two threads can hand one of them a partially initialised module
(tasks/warm_imports.py, issue #21). Loads are rare and mostly I/O- and GIL-bound, so running
them one at a time costs little.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

LOAD_LOCK = threading.RLock()


def loaded_once(maxsize: int) -> Callable[[F], F]:
    """``lru_cache(maxsize)`` whose misses are computed under the process-wide load lock."""

    def decorate(fn: F) -> F:
        cached = functools.lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with LOAD_LOCK:
                return cached(*args, **kwargs)

        call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        call.cache_info = cached.cache_info  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return decorate
