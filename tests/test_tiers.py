"""Tiers: hot -> warm -> cold by idle time and budget; waking restores transparently."""

from __future__ import annotations

import json

from memoturn.data import kv
from memoturn.metrics import sample
from support.nodes import make_node


def _put(node, db, key, value):
    return node.write(db, lambda c: kv.put(c, key, json.dumps(value), None))[1]


def _get(node, db, key):
    return node.read(db, lambda c: kv.get(c, key))[0]["value"]


def _restores(node) -> float:
    return sample(node.metrics.restores)


def test_idle_hot_becomes_warm_and_is_reused_without_restore(tmp_path, file_store):
    node = make_node(tmp_path, file_store, hot_idle_seconds=0, warm_idle_seconds=3600)
    try:
        node.create_database("t1")
        _put(node, "t1", "a", 1)
        node.shipper.ship_all(10)
        node.tiers.run_once()
        assert node.describe("t1")["tier"] == "warm"
        before = _restores(node)
        assert _get(node, "t1", "a") == 1
        assert _restores(node) == before, "a warm file that matches the manifest is reused"
        assert node.describe("t1")["tier"] == "hot"
    finally:
        node.stop()


def test_disk_budget_pushes_warm_to_cold_and_wake_restores(tmp_path, file_store):
    node = make_node(tmp_path, file_store, hot_idle_seconds=0, max_disk_bytes=0)
    try:
        node.create_database("t2")
        _put(node, "t2", "a", {"deep": [1, 2, 3]})
        node.shipper.ship_all(10)
        node.tiers.run_once()  # hot -> warm, then over the disk budget -> cold
        assert node.describe("t2")["tier"] == "cold"
        before = _restores(node)
        assert _get(node, "t2", "a") == {"deep": [1, 2, 3]}
        assert _restores(node) == before + 1
    finally:
        node.stop()


def test_hot_budget_keeps_only_the_most_recent(tmp_path, file_store):
    node = make_node(tmp_path, file_store, max_hot=3)
    try:
        for i in range(8):
            node.create_database(f"d{i}")
            _put(node, f"d{i}", "k", i)
        node.shipper.ship_all(10)
        node.tiers.run_once()
        hot = sorted(db.name for db in node.hot_databases())
        assert hot == ["d5", "d6", "d7"]
        assert [_get(node, f"d{i}", "k") for i in range(8)] == list(range(8))
    finally:
        node.stop()


def test_a_handle_with_unshipped_segments_is_not_closed(tmp_path, s3_store, minio):
    node = make_node(tmp_path, s3_store, hot_idle_seconds=0)
    try:
        node.create_database("t3")
        _put(node, "t3", "a", 1)
        node.shipper.ship_all(10)
        minio.stop()
        try:
            _put(node, "t3", "b", 2)
            node.tiers.run_once()
            assert node.is_hot("t3/main"), "unshipped data must stay hot"
        finally:
            minio.start()
        assert node.shipper.ship_all(30)
        node.tiers.run_once()
        assert not node.is_hot("t3/main")
    finally:
        node.stop()


def test_a_warm_copy_is_not_trusted_after_another_node_wrote(tmp_path, file_store):
    one = make_node(tmp_path, file_store, name="one", hot_idle_seconds=0)
    two = make_node(tmp_path, file_store, name="two")
    try:
        one.create_database("shared")
        _put(one, "shared", "a", "from-one")
        one.shipper.ship_all(10)
        one.tiers.run_once()  # one keeps a warm copy
        assert one.describe("shared")["tier"] == "warm"
        _put(two, "shared", "a", "from-two")
        two.stop()
        assert _get(one, "shared", "a") == "from-two"
    finally:
        one.stop()
