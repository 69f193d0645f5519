"""Ownership in one process: two nodes sharing a lease table stand in for a cluster."""

from __future__ import annotations

import json

import pytest
from memoturn.config import Settings
from memoturn.data import kv
from memoturn.errors import NotOwner
from memoturn.metrics import sample
from memoturn.server.node import Node
from memoturn.storage.leases import LocalLeaseTable
from memoturn.storage.manifest import load_manifest


class SharedTable(LocalLeaseTable):
    shared = True


def _node(tmp_path, store, table, name, **kw):
    return Node(
        Settings(data_dir=str(tmp_path / name), node_id=name, tier_interval_seconds=3600, **kw),
        store=store,
        leases=table,
    ).start()


def test_a_node_that_was_refused_serves_once_the_owner_is_gone(tmp_path, file_store):
    table = SharedTable()
    a = _node(tmp_path, file_store, table, "a", ship_workers=0)  # a never ships: its tail dies with it
    b = _node(tmp_path, file_store, table, "b")
    try:
        a.create_database("x")
        a.write("x", lambda c: kv.put(c, "from-a", json.dumps(1), None))
        with pytest.raises(NotOwner):
            b.write("x", lambda c: kv.put(c, "from-b", json.dumps(2), None))
        with pytest.raises(NotOwner):
            b.read("x", lambda c: kv.get(c, "from-a"))
        table.release("x/main", "a")  # a's lease "expired"
        _, txid = b.write("x", lambda c: kv.put(c, "from-b", json.dumps(2), None))
        assert b.read("x", lambda c: kv.get(c, "from-b"))[0]["value"] == 2
        assert b.read("x", lambda c: kv.get(c, "from-a"))[0] is None  # a's unshipped standard write is lost
        b.shipper.ship_all(10)
        manifest, _ = load_manifest(file_store, "x", "main")
        assert manifest.owner == "b" and manifest.head_txid == txid
        assert sample(b.metrics.failovers) == 1
    finally:
        a.stop()
        b.stop()


def test_the_old_owner_is_fenced_when_a_newer_epoch_lands(tmp_path, file_store):
    table = SharedTable()
    a = _node(tmp_path, file_store, table, "a", ship_workers=0)
    b = _node(tmp_path, file_store, table, "b")
    try:
        a.create_database("y")
        a.write("y", lambda c: kv.put(c, "k", json.dumps("a"), None))
        table.release("y/main", "a")
        b.write("y", lambda c: kv.put(c, "k", json.dumps("b"), None), durable=True)
        # a still believes it owns y (its local table entry is gone, its handle is not): its
        # pending segment can never land, and it stops serving y.
        db = a.open("y")
        a.shipper.ship(db.log)
        assert db.fenced and sample(a.metrics.fencing_events) == 1
        with pytest.raises(NotOwner):
            db.write(lambda c: kv.put(c, "k", json.dumps("zombie"), None), durable=False)
        assert b.read("y", lambda c: kv.get(c, "k"))[0]["value"] == "b"
    finally:
        a.stop()
        b.stop()
