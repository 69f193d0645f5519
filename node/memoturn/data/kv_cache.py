"""A branch's KV read cache: recent reads, valid only while the branch head is the txid read at.

Entries are ``key -> (item, txid)``; a hit counts only if ``txid`` is still the head, so any
commit invalidates every entry without bookkeeping. Bounded (least recently used out) and
thread-safe: request threads and the event loop read it concurrently.
"""

from __future__ import annotations

import threading
from typing import Any

from cachetools import LRUCache

ENTRIES = 256


class KvReadCache:
    def __init__(self, entries: int = ENTRIES) -> None:
        self._cache: LRUCache[str, tuple[Any, int]] = LRUCache(maxsize=entries)
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[Any, int] | None:
        with self._lock:
            return self._cache.get(key)

    def put(self, key: str, item: Any, txid: int) -> None:
        with self._lock:
            self._cache[key] = (item, txid)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)
