"""Exact vector search over a profile's memories from an in-memory matrix, kept current cheaply.

Measured on this machine, a libSQL DiskANN index costs ~15 ms per insert and ~13 ms per
query at only 2,000 vectors of 384 dimensions; the exact search over 10,000 such vectors,
refresh included, took ~2 ms when recall was profiled. So recall keeps, per database file,
the matrix of memory embeddings in a node-wide LRU bounded by bytes, and refreshes it
incrementally:

* the entry is keyed by the file's path and inode (a restore replaces the file, so a new
  inode means a new entry);
* new memories are appended by reading rows with ``rowid`` above the last one seen;
* a forget bumps ``memory_deletes`` in ``__memoturn_meta`` (rowids may then be reused), which
  makes the next recall rebuild the entry.

Candidates found here are re-checked in SQL (filters, validity) by the caller, so a stale
row can never be returned, only missed, and only until the next refresh, which happens on
every recall.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
from cachetools import LRUCache

#: What an entry costs beyond its arrays (key, object, array headers), counted in the budget so
#: that entries of profiles with no or few memories cannot accumulate outside it.
_ENTRY_OVERHEAD = 1024


class _Entry:
    __slots__ = ("deletes", "max_rowid", "rowids", "matrix", "dim")

    def __init__(self, dim: int) -> None:
        self.deletes = -1
        self.max_rowid = 0
        self.rowids = np.zeros(0, dtype=np.int64)
        self.matrix = np.zeros((0, dim), dtype=np.float32)
        self.dim = dim

    @property
    def nbytes(self) -> int:
        return self.matrix.nbytes + self.rowids.nbytes + _ENTRY_OVERHEAD


def _nbytes(entry: _Entry) -> int:
    return entry.nbytes


class VectorCache:
    def __init__(self, budget_bytes: int = 256 * 1024**2) -> None:
        self.budget = budget_bytes
        self._lock = threading.Lock()
        # Sized by the entries' bytes; an entry over the whole budget is used once, not kept.
        self._entries: LRUCache[tuple[str, int], _Entry] = LRUCache(maxsize=budget_bytes, getsizeof=_nbytes)

    @property
    def nbytes(self) -> int:
        """Bytes the cached entries hold (at most the budget)."""
        with self._lock:
            return int(self._entries.currsize)

    def _key(self, conn: Any) -> tuple[str, int]:
        path = next((r[2] for r in conn.execute("PRAGMA database_list").fetchall() if r[1] == "main"), "")
        try:
            return path, os.stat(path).st_ino
        except OSError:
            return path, 0

    def search(self, conn: Any, query: np.ndarray, fetch: int) -> list[int]:
        """Rowids of the ``fetch`` memories most similar to ``query`` (called under the db lock)."""
        key = self._key(conn)
        deletes = int(
            (conn.execute("SELECT value FROM __memoturn_meta WHERE key = 'memory_deletes'").fetchone() or (0,))[0]
        )
        with self._lock:
            entry = self._entries.pop(key, None)  # back in below, at its new size
        if entry is None or entry.deletes != deletes or entry.dim != query.shape[0]:
            entry = _Entry(query.shape[0])
            entry.deletes = deletes
        rows = conn.execute(
            "SELECT rowid, embedding FROM __memoturn_memories WHERE rowid > ? ORDER BY rowid", (entry.max_rowid,)
        ).fetchall()
        if rows:
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), entry.dim)
            entry.rowids = np.concatenate([entry.rowids, ids])
            entry.matrix = np.concatenate([entry.matrix, mat]) if len(entry.matrix) else mat.copy()
            entry.max_rowid = int(ids[-1])
        if entry.nbytes <= self.budget:
            with self._lock:
                self._entries[key] = entry
        if not len(entry.rowids):
            return []
        scores = entry.matrix @ query.astype(np.float32)
        n = min(fetch, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top])]
        return [int(x) for x in entry.rowids[top]]
