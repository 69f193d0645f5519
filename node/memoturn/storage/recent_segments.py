"""The bytes of segments this node shipped lately, kept for the merges that join them.

A merge joins the small segments a branch accumulated, and those are the ones this node just
shipped: reading them back from the object store cost one GET each, as many requests again as
the shipments themselves. The cache is node-wide and bounded in bytes (least recently added
out first); a miss only means the merge reads the store.
"""

from __future__ import annotations

import threading

from cachetools import FIFOCache

#: Bytes kept node-wide.
RECENT_SEGMENTS_BYTES = 32 << 20


class RecentSegments:
    """Segment bytes by object key, at most ``budget`` bytes, none of ``max_item_bytes`` or more
    (segments that big are never merged). Thread-safe."""

    def __init__(self, budget: int = RECENT_SEGMENTS_BYTES, *, max_item_bytes: int) -> None:
        self.budget = budget
        self.max_item_bytes = max_item_bytes
        self._items: FIFOCache[str, bytes] = FIFOCache(maxsize=budget, getsizeof=len)
        self._lock = threading.Lock()

    def add(self, key: str, data: bytes) -> None:
        if len(data) >= self.max_item_bytes or len(data) > self.budget:
            return
        with self._lock:
            if key not in self._items:
                self._items[key] = data

    def take(self, key: str) -> bytes | None:
        """The bytes shipped under ``key``, forgotten as they are handed out (a merged segment is
        not merged again), or None."""
        with self._lock:
            return self._items.pop(key, None)
