"""Faults: a store outage, corrupted objects. Each degrades predictably and loses nothing else."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from memoturn.config import Settings
from memoturn.errors import DataCorrupt, Unavailable
from memoturn.metrics import sample
from memoturn.names import manifest_key
from memoturn.server.api.app import create_app
from memoturn.server.api.problems import status_of
from memoturn.server.node import Node
from memoturn.storage.manifest import load_manifest
from support.nodes import make_node


def _kv(node, db, key, value, durable=False):
    from memoturn.data import kv

    return node.write(db, lambda c: kv.put(c, key, json.dumps(value), None), durable=durable)[1]


def _get(node, db, key):
    from memoturn.data import kv

    item, _ = node.read(db, lambda c: kv.get(c, key))
    return None if item is None else item["value"]


def test_store_outage_standard_keeps_acking_durable_refuses_then_everything_ships(tmp_path, s3_store, minio):
    node = make_node(tmp_path, s3_store)
    try:
        node.create_database("outage")
        _kv(node, "outage", "before", 1, durable=True)
        minio.stop()
        try:
            txids = [_kv(node, "outage", f"during-{i}", i) for i in range(20)]  # standard: local commit acks
            deadline = time.monotonic() + 30
            while not node.shipper.store_down and time.monotonic() < deadline:
                time.sleep(0.05)
            assert node.shipper.store_down
            assert node.shipper.unshipped_txids > 0
            assert b"memoturn_unshipped_txids" in node.metrics.render()
            assert sample(node.metrics.unshipped_txids) > 0
            assert node.ready() == (False, "object store unavailable")
            with pytest.raises(Unavailable) as exc:
                _kv(node, "outage", "durable-during", 1, durable=True)
            assert status_of(exc.value) == 503
        finally:
            minio.start()
        deadline = time.monotonic() + 60
        while node.shipper.unshipped_txids and time.monotonic() < deadline:
            time.sleep(0.1)
        assert node.shipper.unshipped_txids == 0, "the unshipped tail must ship once the store is back"
        manifest, _ = load_manifest(s3_store, "outage", "main")
        assert manifest.head_txid == max(txids)
        _kv(node, "outage", "after", 2, durable=True)
    finally:
        node.stop()
    fresh = make_node(tmp_path, s3_store, name="fresh")
    try:
        assert [_get(fresh, "outage", f"during-{i}") for i in range(20)] == list(range(20))
        assert _get(fresh, "outage", "after") == 2
    finally:
        fresh.stop()


def _two_databases(tmp_path, store):
    node = make_node(tmp_path, store, name="writer")
    try:
        for db in ("victim", "bystander"):
            node.create_database(db)
            for i in range(5):
                _kv(node, db, f"k{i}", i)
    finally:
        node.stop()


def _flip(store, key, offset):
    data, _ = store.get(key)
    bad = bytearray(data)
    bad[offset % len(bad)] ^= 0x20
    store.put(key, bytes(bad))
    return data


@pytest.mark.parametrize("what", ["segment", "manifest"])
def test_a_flipped_byte_gives_a_clear_error_and_loses_nothing_else(tmp_path, file_store, what):
    _two_databases(tmp_path, file_store)
    manifest, _ = load_manifest(file_store, "victim", "main")
    key = manifest.segments[-1].key if what == "segment" else manifest_key("victim", "main")
    original = _flip(file_store, key, 40)
    node = Node(Settings(data_dir=str(tmp_path / "reader"), node_id="reader"), store=file_store)
    with TestClient(create_app(node), raise_server_exceptions=False) as client:
        r = client.get("/v1/databases/victim/kv/k0")
        assert r.status_code == 502 and r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == "data-corrupt" and (
            "checksum" in r.json()["detail"] or "corrupt" in r.json()["detail"]
        )
        r = client.put("/v1/databases/victim/kv/k9", json={"value": 9})
        assert r.status_code == 502  # nothing is written on top of a branch that cannot be restored
        assert client.get("/v1/databases/bystander/kv/k4").json()["value"] == 4
        # Repairing the object makes the database whole again: nothing was lost or overwritten.
        file_store.put(key, original)
        assert client.get("/v1/databases/victim/kv/k4").json()["value"] == 4


def test_a_missing_segment_is_a_gap_not_silent_data_loss(tmp_path, file_store):
    _two_databases(tmp_path, file_store)
    manifest, _ = load_manifest(file_store, "victim", "main")
    file_store.delete(manifest.segments[0].key)
    node = make_node(tmp_path, file_store, name="reader")
    try:
        with pytest.raises(DataCorrupt, match="missing"):
            node.open("victim")
    finally:
        node.stop()


def test_a_corrupt_manifest_on_a_hot_database_refuses_writes_with_data_corrupt_until_repaired(tmp_path, file_store):
    """Not a 30 s durable timeout, and no standard write acknowledged into a branch that cannot ship."""
    node = make_node(tmp_path, file_store)
    try:
        node.create_database("rot")
        _kv(node, "rot", "before", 1, durable=True)
        key = manifest_key("rot", "main")
        good, _ = file_store.get(key)
        file_store.put(key, b"{not a manifest")
        t0 = time.monotonic()
        with pytest.raises(DataCorrupt) as exc:
            _kv(node, "rot", "durable", 2, durable=True)
        assert exc.value.type == "data-corrupt" and time.monotonic() - t0 < 10
        with pytest.raises(DataCorrupt):
            _kv(node, "rot", "standard", 3)  # refused before committing: never acknowledged, never lost
        assert sample(node.metrics.ship_errors) >= 1
        file_store.put(key, good)  # the operator repairs it
        deadline = time.monotonic() + 15
        while True:
            try:
                txid = _kv(node, "rot", "after", 4, durable=True)
                break
            except DataCorrupt:
                assert time.monotonic() < deadline, "writes did not resume after the repair"
                time.sleep(0.2)
        manifest, _ = load_manifest(file_store, "rot", "main")
        assert manifest.head_txid == txid
        assert _get(node, "rot", "after") == 4 and _get(node, "rot", "before") == 1
    finally:
        node.stop()
