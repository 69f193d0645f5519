"""Issue 7: what a node keeps per database is bounded by its tier budgets, not by how many
databases it has ever touched. These tests prove the bound (counts of handles, in-memory
entries and local files), not speed: no wall-clock assertions. ``bench/scale.py`` measures
the same at up to 1,000,000 databases.
"""

from __future__ import annotations

import gc
import os
import re
import sqlite3
import time

import numpy as np
from fastapi.testclient import TestClient
from memoturn.data import kv, kv_cache
from memoturn.data.vector_cache import _ENTRY_OVERHEAD, VectorCache
from memoturn.server.api.app import create_app
from memoturn.storage.database import Database
from memoturn.storage.local_files import drop_local_files, restore_into
from memoturn.storage.manifest import Manifest
from support.nodes import make_node

MAX_HOT = 10
MAX_DISK = 128 * 1024  # room for a handful of warm files
DATABASES = 600  # sixty times the hot budget
TIER_EVERY = 20  # touches between explicit tier passes (the tier thread is idle in these tests)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _per_database_state(node) -> dict[str, int]:
    """Every structure of a node that holds an entry per database (branch)."""
    for _ in range(1000):  # ship_all shipped everything; let the workers drop what they had queued
        if not node.shipper._queued:
            break
        time.sleep(0.01)
    gc.collect()
    return {
        "hot": len(node._hot),
        "warm": len(node.tiers._warm),
        "lease_owners": len(node.leases._owners),
        "shipper_queued": len(node.shipper._queued),
        "shipper_backoff": len(node.shipper._backoff),
        "replica_copies": len(node.replicas._copies),
        "database_objects": sum(isinstance(o, Database) and o.services is node.services for o in gc.get_objects()),
        "kv_cache_entries": sum(len(db.kv_cache) for db in node.hot_databases()),
    }


def _local_files(cache_dir: str) -> dict[str, int]:
    dirs = files = 0
    for _path, dirnames, filenames in os.walk(cache_dir):
        dirs += len(dirnames)
        files += len(filenames)
    return {"dirs": dirs, "files": files}


def test_handles_memory_and_files_stay_within_the_budgets(tmp_path, file_store):
    node = make_node(tmp_path, file_store, max_hot=MAX_HOT, max_disk_bytes=MAX_DISK, hot_idle_seconds=3600)
    cache_dir = node.settings.cache_dir
    gc.collect()  # earlier tests' garbage closing its files during this one would hide ours
    fds_before = _fds()
    worst: dict[str, int] = {}
    try:
        for i in range(DATABASES):
            name = f"p{i:05d}"
            node.create_database(name)
            # Durable, so no handle is kept hot by unshipped segments: the budgets then hold
            # exactly, after every request and not only after a tier pass.
            node.write(name, lambda c: kv.put(c, "k", '"v"', None), durable=True)
            assert node.kv_get(name, "k")[0]["value"] == "v"
            assert len(node._hot) <= MAX_HOT
            assert node.tiers._disk_bytes <= MAX_DISK
            if (i + 1) % TIER_EVERY == 0:
                assert node.shipper.ship_all(30)
                node.tiers.run_once()
                state = {**_per_database_state(node), **_local_files(cache_dir), "fds": _fds() - fds_before}
                for key, value in state.items():
                    worst[key] = max(worst.get(key, 0), value)
                assert state["hot"] <= MAX_HOT
                assert node.tiers._disk_bytes <= MAX_DISK
        # A database touched long ago is still there: it wakes from object storage.
        assert node.describe("p00000")["tier"] == "cold"
        assert node.kv_get("p00000", "k")[0]["value"] == "v"
    finally:
        node.stop()

    warm_max = worst["warm"]
    assert worst["hot"] <= MAX_HOT
    assert warm_max <= MAX_DISK // 4096, "a warm file is at least a page; the disk budget caps their number"
    # Everything that is per database is bounded by hot + warm, whatever DATABASES is.
    assert worst["lease_owners"] <= MAX_HOT
    # (a shipper worker keeps a reference to the last handle it shipped until it gets the next)
    assert worst["database_objects"] <= MAX_HOT + node.settings.ship_workers
    assert worst["shipper_queued"] <= MAX_HOT and worst["shipper_backoff"] == 0
    assert worst["replica_copies"] == 0
    assert worst["kv_cache_entries"] <= MAX_HOT * kv_cache.ENTRIES
    # Four descriptors per hot handle (SQLite's file, WAL and shared memory; capture's reader of
    # the WAL), plus slack for the store.
    assert worst["fds"] <= 4 * MAX_HOT + 8
    # Local files: a file, WAL and shm per hot handle, a file and sidecar per warm one, and one
    # directory per database that has any of those: not one per database ever opened.
    assert worst["files"] <= 3 * MAX_HOT + 2 * warm_max
    assert worst["dirs"] <= MAX_HOT + warm_max


def test_a_pruned_directory_is_recreated_by_the_next_restore(tmp_path, file_store):
    cache = tmp_path / "cache"
    a, b = cache / "db" / "a.db", cache / "db" / "b.db"
    os.makedirs(a.parent)
    a.write_bytes(b"x")
    b.write_bytes(b"y")
    drop_local_files(str(a))
    assert a.parent.is_dir(), "a sibling branch still has a file there"
    drop_local_files(str(b))
    assert not a.parent.exists(), "the last file of a database takes its directory with it"
    restore_into(file_store, Manifest(database="db", branch="a"), str(a))
    assert a.exists() and a.stat().st_size == 0


def test_vector_cache_entries_are_bounded_even_when_empty(tmp_path):
    budget = 64 * _ENTRY_OVERHEAD
    cache = VectorCache(budget_bytes=budget)
    query = np.ones(4, dtype=np.float32)
    for i in range(300):
        conn = sqlite3.connect(str(tmp_path / f"{i}.db"))
        conn.execute("CREATE TABLE __memoturn_meta(key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("CREATE TABLE __memoturn_memories(embedding BLOB)")
        assert cache.search(conn, query, 10) == []
        conn.close()
    assert len(cache._entries) <= budget // _ENTRY_OVERHEAD
    assert cache.nbytes <= budget


def test_request_metrics_are_labelled_by_route_not_by_database(tmp_path, file_store):
    node = make_node(tmp_path, file_store)

    def label_sets() -> set[str]:
        text = client.get("/metrics").text
        return {line.split(" ")[0] for line in text.splitlines() if line.startswith("memoturn_")}

    with TestClient(create_app(node, manage_lifecycle=False)) as client:

        def touch(i: int) -> None:
            assert client.post("/v1/databases", json={"name": f"m{i}"}).status_code == 201
            assert client.put(f"/v1/databases/m{i}/kv/k{i}", json={"value": i}).status_code == 200
            assert client.get(f"/v1/databases/m{i}/kv/k{i}").status_code == 200
            assert client.get(f"/v1/databases/m{i}/kv/absent").status_code == 404
            assert client.get(f"/v1/databases/m{i}").status_code == 200

        touch(0)
        touch(1)
        label_sets()  # the first scrape is itself observed
        before = label_sets()
        for i in range(2, 30):
            touch(i)
        after = label_sets()
    node.stop()
    assert after == before, sorted(after - before)
    assert not [s for s in after if re.search(r"/m\d+\b", s)], "no label names a database"
