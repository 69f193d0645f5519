"""Cluster benchmarks (``make bench``): failover after kill -9 and after SIGTERM, gateway
overhead, replica lag under load. Real etcd, MinIO, memoturnd processes and a gateway on
127.0.0.x; JSON under bench/results/cluster.json.

    python -m bench.cluster [--quick] [--ttl 15] [--trials 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from support.cluster import Cluster
from support.etcd import EtcdServer
from support.minio import MinioServer

from bench.storage import summarize, write_results


def failover(cluster: Cluster, trial: int, sig: int) -> float:
    gw = cluster.gateway.client
    db = f"fo-{sig}-{trial}"
    gw.post("/v1/databases", json={"name": db})
    assert gw.put(f"/v1/databases/{db}/kv/seed", json={"value": 0}).status_code == 200
    deadline = time.monotonic() + 5
    while cluster.gateway.owner(db) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    victim = cluster.gateway.owner(db)
    t0 = time.monotonic()
    node = cluster.nodes.pop(victim)
    node.kill(sig)
    node.close()
    i, last = 0, None
    deadline = t0 + cluster.ttl + 60
    while True:
        i += 1
        try:
            r = gw.put(f"/v1/databases/{db}/kv/k{i}", json={"value": i}, headers={"Memoturn-Durability": "durable"})
            if r.status_code == 200:
                break
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{db}: writes did not recover within TTL + 60 s; last answer: {last}")
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    replacement = cluster.add_node(f"{victim}-r{trial}")
    replacement.wait_ready()
    cluster.gateway.wait_ready(len(cluster.nodes))
    return elapsed


def gateway_overhead(cluster: Cluster, n: int) -> dict[str, Any]:
    gw = cluster.gateway.client
    gw.post("/v1/databases", json={"name": "overhead"})
    gw.put("/v1/databases/overhead/kv/a", json={"value": "x" * 100})
    time.sleep(0.3)
    owner = cluster.nodes[cluster.gateway.owner("overhead")]
    direct, via = [], []
    for _ in range(n):  # interleaved, so both see the same machine state
        t0 = time.perf_counter()
        assert owner.client.get("/v1/databases/overhead/kv/a").status_code == 200
        t1 = time.perf_counter()
        assert gw.get("/v1/databases/overhead/kv/a").status_code == 200
        t2 = time.perf_counter()
        direct.append(t1 - t0)
        via.append(t2 - t1)
    d, g = summarize(direct), summarize(via)
    return {
        "direct": d,
        "gateway": g,
        "overhead_p50_ms": round(g["p50_ms"] - d["p50_ms"], 4),
        "overhead_p99_ms": round(g["p99_ms"] - d["p99_ms"], 4),
    }


def replica_lag(cluster: Cluster, n: int) -> dict[str, Any]:
    gw = cluster.gateway.client
    gw.post("/v1/databases", json={"name": "lag"})
    gw.put("/v1/databases/lag/kv/a", json={"value": 0})
    time.sleep(0.3)
    placement = gw.get("/v1/cluster/placement/lag").json()
    replica_url = placement["replicas"][0]["url"]
    stop = threading.Event()

    def background() -> None:  # load on other databases meanwhile
        with httpx.Client(base_url=cluster.gateway.url, timeout=30) as c:
            c.post("/v1/databases", json={"name": "lag-load"})
            i = 0
            while not stop.is_set():
                i += 1
                c.put(f"/v1/databases/lag-load/kv/k{i % 500}", json={"value": i})

    t = threading.Thread(target=background)
    t.start()
    samples = []
    try:
        with httpx.Client(timeout=30) as rc:
            for i in range(n):
                w = gw.put(f"/v1/databases/lag/kv/k{i}", json={"value": i})
                txid = int(w.headers["Memoturn-Txid"])
                t0 = time.perf_counter()
                while True:
                    r = rc.get(f"{replica_url}/internal/v1/replicas/lag")
                    if r.status_code == 200 and r.json()["head_txid"] >= txid:
                        break
                    time.sleep(0.0005)
                samples.append(time.perf_counter() - t0)
    finally:
        stop.set()
        t.join()
    return summarize(samples, note="ack of a standard write to the replica holding its txid")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--ttl", type=int, default=15)
    p.add_argument("--trials", type=int, default=10)
    args = p.parse_args()
    if args.quick:
        args.ttl, args.trials = 3, 3
    tmp = Path(tempfile.mkdtemp(prefix="memoturn-bench-cluster-"))
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "make bench",
        "lease_ttl_seconds": args.ttl,
    }
    with EtcdServer() as etcd, MinioServer() as minio:
        for k, v in minio.credentials.items():
            os.environ[k] = v
        cluster = Cluster(tmp, etcd, minio, nodes=3, ttl=args.ttl, env={"MEMOTURN_REPLICAS": "1"})
        try:
            results["gateway_overhead_kv_get"] = gateway_overhead(cluster, 300 if args.quick else 2000)
            results["replica_lag"] = replica_lag(cluster, 50 if args.quick else 300)
            kill = [failover(cluster, i, signal.SIGKILL) for i in range(args.trials)]
            term = [failover(cluster, i, signal.SIGTERM) for i in range(args.trials)]
            results["failover_kill9_seconds"] = {
                "samples": [round(x, 3) for x in kill],
                "p50": round(sorted(kill)[len(kill) // 2], 3),
                "max": round(max(kill), 3),
                "target": f"<= TTL + 2 = {args.ttl + 2}",
            }
            results["failover_sigterm_seconds"] = {
                "samples": [round(x, 3) for x in term],
                "p50": round(sorted(term)[len(term) // 2], 3),
                "max": round(max(term), 3),
                "target": "<= 1",
            }
        finally:
            cluster.close()
    write_results("cluster", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
