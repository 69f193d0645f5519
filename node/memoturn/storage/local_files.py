"""A branch's local copy on the node's disk: its files, how it is opened, removed and restored.

The local copy is a cache (object storage is the source of truth), so every function here
may throw it away; what must not be lost lives in the branch log until it ships.
"""

from __future__ import annotations

import os
from typing import Any

from ..sql.connection import Connection
from ..sql.connection import connect as open_connection
from . import store as st
from .manifest import Manifest
from .restore import restore


def sidecar_path(path: str) -> str:
    """The warm file's note of the manifest generation and head it was closed at."""
    return path + ".state.json"


def drop_local_files(path: str) -> None:
    """Remove a database file and everything beside it (the cache copy is expendable).

    The per-database directory goes too once it is empty, so local disk is bounded by the
    hot and warm tiers rather than growing by one directory per database ever opened; a
    concurrent opener recreates it (:func:`restore_into`).
    """
    for suffix in ("", "-wal", "-shm", ".state.json"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(os.path.dirname(path))  # fails, harmlessly, while a sibling branch has files
    except OSError:
        pass


def restore_into(store: st.ObjectStore, manifest: Manifest, path: str) -> Any:
    """:func:`restore` a new local copy at ``path``, creating its directory; retried if a
    sibling branch's :func:`drop_local_files` removed the (then empty) directory meanwhile."""
    for attempt in range(3):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            return restore(store, manifest, path)
        except FileNotFoundError:
            if attempt == 2:
                raise
    return None


def connect(path: str, cache_kib: int) -> Connection:
    """Open a libSQL connection the way the node needs it: WAL, no auto-checkpoint."""
    conn = open_connection(path)
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("PRAGMA wal_autocheckpoint=0").fetchall()
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn
