"""Per-process caches for loaded models that several threads may ask for at once.

``functools.lru_cache`` does not hold a lock while it computes: two threads asking for the
same model together both load it. The embedded run loads its models on a helper thread while
the flow starts (tasks/preload.py), and a stage may ask for one while that load is still
running; ``loaded_once`` makes the second caller wait for the first load and take its result.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def loaded_once(maxsize: int) -> Callable[[F], F]:
    """``lru_cache(maxsize)`` whose misses are computed under a lock (one load per key)."""

    def decorate(fn: F) -> F:
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        lock = threading.RLock()

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return cached(*args, **kwargs)

        call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        call.cache_info = cached.cache_info  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return decorate
