"""The cluster with real etcd, real MinIO, several memoturnd processes and a gateway."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest
from memoturn.storage.manifest import load_manifest
from memoturn.storage.store import open_store
from support.cluster import Cluster, until_status

TTL = 3


@pytest.fixture
def cluster(tmp_path, etcd, minio):
    c = Cluster(tmp_path, etcd, minio, nodes=3, ttl=TTL, env={"MEMOTURN_DURABILITY": "durable"})
    yield c
    c.close()


def _chain_unbroken(store, db):
    manifest, _ = load_manifest(store, db, "main")
    base = max((s.txid for s in manifest.snapshots), default=0)
    expected = 1 if not manifest.snapshots else base + 1
    for seg in sorted(manifest.segments, key=lambda s: s.first_txid):
        if seg.last_txid < expected:
            continue
        assert seg.first_txid <= expected, f"gap before txid {seg.first_txid} in {db}"
        expected = seg.last_txid + 1
    assert expected == manifest.head_txid + 1
    return manifest


def test_gateway_routes_to_the_owner_and_every_node_agrees(cluster):
    gw = cluster.gateway.client
    for i in range(6):
        assert gw.post("/v1/databases", json={"name": f"r{i}"}).status_code == 201
        r = gw.put(f"/v1/databases/r{i}/kv/a", json={"value": i})
        assert r.status_code == 200, r.text
    owners = {cluster.gateway.wait_owner(f"r{i}") for i in range(6)}
    assert owners <= set(cluster.nodes) and None not in owners
    assert len(owners) > 1, "rendezvous hashing spreads databases over nodes"
    for i in range(6):
        r = gw.get(f"/v1/databases/r{i}/kv/a")
        assert r.json()["value"] == i and int(r.headers["Memoturn-Txid"]) >= 1
    # Asking a node that is not the owner gives a clear not-owner answer (the gateway retries on it).
    owner = cluster.gateway.owner("r0")
    other = next(n for n in cluster.nodes.values() if n is not cluster.nodes[owner])
    r = other.client.put("/v1/databases/r0/kv/b", json={"value": 1})
    assert r.status_code == 409 and r.json()["type"] == "not-owner"
    nodes = gw.get("/v1/cluster/nodes").json()["nodes"]
    assert sorted(n["id"] for n in nodes) == sorted(cluster.nodes)


def _writer(url: str, db: str, acked: list, stop: threading.Event, errors: list) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = client.put(f"/v1/databases/{db}/kv/k{i}", json={"value": i})
            except httpx.TransportError as exc:
                errors.append((time.monotonic(), repr(exc)))
                continue
            if r.status_code == 200:
                acked.append((time.monotonic(), i, int(r.headers["Memoturn-Txid"])))
            else:
                errors.append((time.monotonic(), r.status_code))
                time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_the_owner_under_durable_load_loses_no_acknowledged_write(cluster, minio):
    gw = cluster.gateway.client
    dbs = ["f0", "f1", "f2"]
    for db in dbs:
        gw.post("/v1/databases", json={"name": db})
        assert gw.put(f"/v1/databases/{db}/kv/seed", json={"value": 0}).status_code == 200
    victim = cluster.gateway.wait_owner("f0")
    stop = threading.Event()
    acked = {db: [] for db in dbs}
    errors = {db: [] for db in dbs}
    threads = [
        threading.Thread(target=_writer, args=(cluster.gateway.url, db, acked[db], stop, errors[db])) for db in dbs
    ]
    for t in threads:
        t.start()
    time.sleep(1.5)
    killed_at = time.monotonic()
    cluster.nodes[victim].kill(signal.SIGKILL)
    deadline = killed_at + TTL + 20
    while time.monotonic() < deadline:
        if any(t > killed_at for t, _, _ in acked["f0"]):
            break
        time.sleep(0.05)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    recovered = [t for t, _, _ in acked["f0"] if t > killed_at]
    assert recovered, f"writes to f0 never succeeded after the owner died; errors: {errors['f0'][-3:]}"
    failover = recovered[0] - killed_at
    print(f"\nfailover after kill -9: {failover:.2f}s (lease TTL {TTL}s)")
    assert failover <= TTL + 10
    assert cluster.gateway.owner("f0") != victim

    store = open_store(cluster.store_url)
    for db in dbs:
        _chain_unbroken(store, db)
        for _, i, txid in acked[db]:
            r = gw.get(f"/v1/databases/{db}/kv/k{i}")
            assert r.status_code == 200 and r.json()["value"] == i, f"{db}: acknowledged k{i} (txid {txid}) is missing"


@pytest.mark.slow
def test_a_zombie_owner_can_never_land_a_write(tmp_path, etcd, minio):
    c = Cluster(tmp_path, etcd, minio, nodes=2, ttl=TTL)  # standard durability: the harder case
    try:
        gw = c.gateway.client
        gw.post("/v1/databases", json={"name": "z"})
        # Durable, so "before" is in the store ahead of the pause (a standard write may be in its loss window).
        before = gw.put("/v1/databases/z/kv/before", json={"value": 1}, headers={"Memoturn-Durability": "durable"})
        assert before.status_code == 200
        zombie_id = c.gateway.wait_owner("z")
        zombie = c.nodes[zombie_id]
        heir = next(n for i, n in c.nodes.items() if i != zombie_id)
        zombie.proc.send_signal(signal.SIGSTOP)
        try:
            # A request that reaches the zombie while it is frozen: it runs after SIGCONT.
            late: list = []
            t = threading.Thread(
                target=lambda: late.append(
                    httpx.put(f"{zombie.url}/v1/databases/z/kv/zombie-late", json={"value": 1}, timeout=60)
                )
            )
            t.start()
            r = until_status(lambda: heir.client.put("/v1/databases/z/kv/heir", json={"value": 2}), 200, TTL + 15)
            assert r.status_code == 200, r.text
            for i in range(5):
                assert heir.client.put(f"/v1/databases/z/kv/heir{i}", json={"value": i}).status_code == 200
        finally:
            zombie.proc.send_signal(signal.SIGCONT)
        t.join(timeout=60)
        answers = [late[0]] + [zombie.client.put(f"/v1/databases/z/kv/zombie{i}", json={"value": i}) for i in range(5)]
        for r in answers:
            assert r.status_code in (409, 503), f"the zombie acknowledged a write: {r.status_code} {r.text}"
            assert r.json()["type"] in ("not-owner", "lease-lost", "fenced")
        time.sleep(1.0)  # give any zombie shipping a chance to (fail to) land
        store = open_store(c.store_url)
        manifest = _chain_unbroken(store, "z")
        assert manifest.owner != zombie_id
        for key, expected in [("before", 1), ("heir", 2)] + [(f"heir{i}", i) for i in range(5)]:
            r = heir.client.get(f"/v1/databases/z/kv/{key}")
            assert r.status_code == 200 and r.json()["value"] == expected, (key, r.text)
        for key in ["zombie-late"] + [f"zombie{i}" for i in range(5)]:
            assert heir.client.get(f"/v1/databases/z/kv/{key}").status_code == 404
    finally:
        c.close()


@pytest.mark.slow
def test_etcd_outage_stops_writes_with_503_and_the_cluster_recovers_alone(tmp_path, etcd, minio):
    c = Cluster(tmp_path, etcd, minio, nodes=1, ttl=TTL)
    try:
        node = next(iter(c.nodes.values()))
        node.client.post("/v1/databases", json={"name": "e"})
        assert node.client.put("/v1/databases/e/kv/a", json={"value": 1}).status_code == 200
        etcd.stop()
        try:
            deadline = time.monotonic() + TTL + 10
            status = None
            while time.monotonic() < deadline:
                r = node.client.put("/v1/databases/e/kv/b", json={"value": 2})
                status = r.status_code
                if status == 503:
                    break
                time.sleep(0.2)
            assert status == 503 and r.json()["type"] == "lease-lost", "writes must stop, not be silently accepted"
            assert node.client.get("/v1/ready").status_code == 503
            time.sleep(TTL)  # longer than the TTL in all
        finally:
            etcd.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = node.client.put("/v1/databases/e/kv/c", json={"value": 3})
            if r.status_code == 200:
                break
            time.sleep(0.2)
        assert r.status_code == 200, r.text
        assert node.client.get("/v1/databases/e/kv/a").json()["value"] == 1
    finally:
        c.close()


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


@pytest.mark.slow
def test_s3_outage_standard_keeps_acking_durable_gets_503_then_everything_ships(tmp_path, etcd, minio):
    c = Cluster(tmp_path, etcd, minio, nodes=2, ttl=TTL)
    try:
        gw = c.gateway.client
        gw.post("/v1/databases", json={"name": "s3out"})
        assert (
            gw.put(
                "/v1/databases/s3out/kv/before", json={"value": 0}, headers={"Memoturn-Durability": "durable"}
            ).status_code
            == 200
        )
        owner = c.nodes[c.gateway.wait_owner("s3out")]
        minio.stop()
        try:
            acked = []
            for i in range(20):
                r = gw.put(f"/v1/databases/s3out/kv/k{i}", json={"value": i})
                assert r.status_code == 200, r.text
                acked.append(int(r.headers["Memoturn-Txid"]))
            deadline = time.monotonic() + 30
            while _metric(owner.url, "memoturn_unshipped_txids") == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _metric(owner.url, "memoturn_unshipped_txids") > 0
            r = gw.put("/v1/databases/s3out/kv/durable", json={"value": 1}, headers={"Memoturn-Durability": "durable"})
            assert r.status_code == 503 and r.json()["type"] == "store-unavailable", r.text
        finally:
            minio.start()
        deadline = time.monotonic() + 60
        while _metric(owner.url, "memoturn_unshipped_txids") > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _metric(owner.url, "memoturn_unshipped_txids") == 0
        manifest = _chain_unbroken(open_store(c.store_url), "s3out")
        assert manifest.head_txid >= max(acked)
        assert (
            gw.put(
                "/v1/databases/s3out/kv/after", json={"value": 2}, headers={"Memoturn-Durability": "durable"}
            ).status_code
            == 200
        )
    finally:
        c.close()
