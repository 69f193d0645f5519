"""Read replicas: segments apply only on an unbroken chain; a gap falls back to restore."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from memoturn.data import kv
from memoturn.metrics import sample
from memoturn.storage.manifest import load_manifest
from support.cluster import Cluster
from support.nodes import dump, make_node


def _segments(store, db):
    manifest, _ = load_manifest(store, db, "main")
    return [store.get(ref.key)[0] for ref in sorted(manifest.segments, key=lambda s: s.first_txid)]


def test_replica_applies_the_chain_and_restores_instead_of_crossing_a_gap(tmp_path, file_store):
    owner = make_node(tmp_path, file_store, name="owner")
    replica = make_node(tmp_path, file_store, name="replica")
    try:
        owner.create_database("rep")
        for i in range(12):
            owner.write("rep", lambda c: kv.put(c, f"k{i}", json.dumps(i), None))
            owner.shipper.ship_all(10)
        segs = _segments(file_store, "rep")
        assert len(segs) >= 6
        first = replica.replicas.apply("rep", "main", segs[0])
        assert first["reason"] == "restored"  # a new copy starts from the store's head
        assert first["head_txid"] == load_manifest(file_store, "rep", "main")[0].head_txid
        restores = sample(replica.metrics.replica_restores)
        # Now stream live: new commits, one segment deliberately lost.
        for i in range(12, 18):
            owner.write("rep", lambda c: kv.put(c, f"k{i}", json.dumps(i), None))
            owner.shipper.ship_all(10)
        new = _segments(file_store, "rep")[len(segs) :]
        assert len(new) >= 3
        applied = replica.replicas.apply("rep", "main", new[0])
        assert applied["reason"] == "applied"
        gap = replica.replicas.apply("rep", "main", new[2])  # new[1] never arrives
        assert gap["reason"] == "restored" and sample(replica.metrics.replica_gaps) == 1
        assert sample(replica.metrics.replica_restores) == restores + 1
        manifest, _ = load_manifest(file_store, "rep", "main")
        assert gap["head_txid"] == manifest.head_txid
        value, txid = replica.replicas.read("rep", "main", lambda c: kv.get(c, "k17"), min_txid=manifest.head_txid)
        assert value["value"] == 17 and txid == manifest.head_txid
        copy = replica.replicas._copy("rep", "main")
        with owner.open("rep").lock:
            expected = dump(owner.open("rep").path)
        with copy.lock:
            assert dump(copy.path) == expected
        stale = replica.replicas.apply("rep", "main", new[0])
        assert stale["reason"] == "old" and stale["applied"] is False
    finally:
        owner.stop()
        replica.stop()


def test_replica_rejects_a_corrupt_or_misaddressed_segment(tmp_path, file_store):
    from memoturn.errors import BadRequest

    node = make_node(tmp_path, file_store)
    try:
        node.create_database("a")
        node.write("a", lambda c: kv.put(c, "k", "1", None))
        node.shipper.ship_all(10)
        seg = _segments(file_store, "a")[0]
        with pytest.raises(BadRequest, match="checksum"):
            node.replicas.apply("a", "main", seg[:-1] + bytes([seg[-1] ^ 1]))
        with pytest.raises(BadRequest, match="not b/main"):
            node.replicas.apply("b", "main", seg)
    finally:
        node.stop()


@pytest.mark.slow
def test_replica_reads_through_the_gateway_keep_read_your_writes(tmp_path, etcd, minio):
    c = Cluster(tmp_path, etcd, minio, nodes=3, ttl=5, env={"MEMOTURN_REPLICAS": "1"})
    try:
        gw = c.gateway.client
        gw.post("/v1/databases", json={"name": "ryw"})
        served = []
        for i in range(30):
            w = gw.put(f"/v1/databases/ryw/kv/k{i}", json={"value": i})
            assert w.status_code == 200, w.text
            txid = int(w.headers["Memoturn-Txid"])
            r = gw.get(
                f"/v1/databases/ryw/kv/k{i}", headers={"Memoturn-Read": "replica", "Memoturn-Min-Txid": str(txid)}
            )
            assert r.status_code == 200 and r.json()["value"] == i, r.text
            assert int(r.headers["Memoturn-Txid"]) >= txid
            served.append(r.headers["Memoturn-Served-By"])
        time.sleep(0.5)
        r = gw.get("/v1/databases/ryw/kv/k29", headers={"Memoturn-Read": "replica"})
        assert r.status_code == 200 and r.headers["Memoturn-Served-By"] == "replica"
        assert "replica" in served, "streamed segments should let the replica answer"
        # Without a replica allowance the owner answers.
        assert gw.get("/v1/databases/ryw/kv/k0").headers["Memoturn-Served-By"] == "primary"
        # Replica metrics are exported on the replica node.
        owner = c.gateway.owner("ryw")
        others = [n for i, n in c.nodes.items() if i != owner]
        text = "".join(httpx.get(f"{n.url}/metrics").text for n in others)
        assert "memoturn_replica_lag_seconds_count" in text
        # Operations from the command line, through the gateway.
        import subprocess
        import sys

        def cli(*args):
            r = subprocess.run(
                [sys.executable, "-m", "memoturn.cli", "--url", c.gateway.url, *args],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert r.returncode == 0, r.stderr
            return json.loads(r.stdout)

        assert sorted(n["id"] for n in cli("nodes")) == sorted(c.nodes)
        info = cli("owner", "ryw")
        assert info["owner"] == owner and info["head_txid"] >= 30 and info["epoch"] > 0
        assert info["replicas"] and info["replicas"][0]["node"] != owner
        assert info["replicas"][0]["lag_txids"] >= 0
    finally:
        c.close()


def test_a_replica_follows_a_rewind_through_the_new_timeline(tmp_path, file_store):
    from memoturn.server import branches

    owner = make_node(tmp_path, file_store, name="owner")
    replica = make_node(tmp_path, file_store, name="replica")
    try:
        owner.create_database("rw")
        for i in range(5):
            owner.write("rw", lambda c: kv.put(c, f"k{i}", json.dumps(i), None))
        owner.shipper.ship_all(10)
        first = replica.replicas.apply("rw", "main", _segments(file_store, "rw")[0])
        assert first["head_txid"] == owner.open("rw").head_txid
        branches.rewind(owner, "rw", "main", txid=first["head_txid"] - 2)
        owner.write("rw", lambda c: kv.put(c, "after", json.dumps("rewind"), None))
        owner.shipper.ship_all(10)
        manifest, _ = load_manifest(file_store, "rw", "main")
        on_new_timeline = [s for s in manifest.segments if ".t1." in s.key]
        assert len(on_new_timeline) == 1  # the write after the rewind
        newest = on_new_timeline[0]
        assert newest.first_txid == first["head_txid"] - 1
        # Same txid numbers as before the rewind, but a new timeline: the copy must not keep
        # its old pages; it restores.
        result = replica.replicas.apply("rw", "main", file_store.get(newest.key)[0])
        assert result["reason"] == "restored" and result["head_txid"] == manifest.head_txid
        got, _ = replica.replicas.read("rw", "main", lambda c: kv.get(c, "after"), min_txid=None)
        assert got["value"] == "rewind"
        gone, _ = replica.replicas.read("rw", "main", lambda c: kv.get(c, "k4"), min_txid=None)
        assert gone is None
    finally:
        owner.stop()
        replica.stop()
