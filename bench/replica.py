"""Embedded-replica benchmarks: local reads vs reads through the gateway, sync time, bytes moved.

One run, one cluster (real etcd, MinIO, two memoturnd processes and a gateway on 127.0.0.x):

* recall and KV read latency (p50/p99) answered by an embedded replica's local file, next to
  the same reads through the gateway (to the owner's hot handle);
* the time ``sync()`` takes to apply 1, 100 and 10,000 new transactions, and the bytes it
  received, next to what a full restore of the profile reads at that moment (its newest
  snapshot plus every segment after it), and a fresh replica's first sync.

Memories carry their own random unit vectors and queries pass one too, so both read paths
skip the embedder (it costs the same on either side) and measure what differs: the network
hop, the gateway and the server. JSON in bench/results/replica.json.

    python -m bench.replica [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from memoturn.client import Memoturn
from memoturn.replica import EmbeddedReplica, open_replica
from support.cluster import Cluster
from support.etcd import EtcdServer
from support.minio import MinioServer

from bench.storage import summarize, write_results
from bench.words import WORDS

NS, PROFILE = "bench", "replica"
DB = f"{NS}--{PROFILE}"
DIM = 384


def _vectors(rng: np.random.Generator, n: int) -> list[list[float]]:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return [[float(x) for x in row] for row in v]


def _interleaved(n: int, local: Any, gateway: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``n`` timed calls of each, alternating, so both paths see the same machine load."""
    samples: tuple[list[float], list[float]] = ([], [])
    for i in range(n):
        for fn, out in ((local, samples[0]), (gateway, samples[1])):
            t0 = time.perf_counter()
            fn(i)
            out.append(time.perf_counter() - t0)
    return summarize(samples[0]), summarize(samples[1])


def _full_restore_bytes(mt: Memoturn) -> int:
    """What restoring the profile from scratch reads: its newest snapshot and the segments after it."""
    view = mt.http.get(f"/v1/namespaces/{NS}/profiles/{PROFILE}/replica/manifest").json()
    return int((view["snapshot"] or {}).get("size", 0) + sum(s["size"] for s in view["segments"]))


def reads(mt: Memoturn, replica: EmbeddedReplica, n: int, memories: int, rng: np.random.Generator) -> dict[str, Any]:
    """Recall (text + vector) and KV reads, from the replica and through the gateway, interleaved."""
    pyrng = random.Random(7)
    for start in range(0, memories, 500):
        count = min(500, memories - start)
        batch = [
            {
                "content": " ".join(pyrng.choice(WORDS) for _ in range(pyrng.randint(8, 20))),
                "type": "fact",
                "embedding": v,
            }
            for v in _vectors(rng, count)
        ]
        mt.profile(NS, PROFILE).add_many(batch)
    for i in range(100):
        mt.database(DB).kv_put(f"key-{i}", {"i": i, "text": "x" * 64})
    replica.sync()
    queries = [(" ".join(pyrng.choice(WORDS) for _ in range(2)), v) for v in _vectors(rng, 16)]
    remote_profile, remote_db = mt.profile(NS, PROFILE), mt.database(DB)

    def local_recall(i: int) -> Any:
        return replica.recall(queries[i % 16][0], embedding=queries[i % 16][1], limit=10)

    def gateway_recall(i: int) -> Any:
        return remote_profile.recall(queries[i % 16][0], embedding=queries[i % 16][1], limit=10)

    def local_kv(i: int) -> Any:
        return replica.kv_get(f"key-{i % 100}")

    def gateway_kv(i: int) -> Any:
        return remote_db.kv_get(f"key-{i % 100}")

    for i in range(20):  # warm both paths (vector matrix, KV cache, connections)
        for warm in (local_recall, gateway_recall, local_kv, gateway_kv):
            warm(i)
    recall_local, recall_gateway = _interleaved(n, local_recall, gateway_recall)
    kv_local, kv_gateway = _interleaved(n, local_kv, gateway_kv)
    return {
        "memories": memories,
        "recall_local": recall_local,
        "recall_gateway": recall_gateway,
        "kv_get_local": kv_local,
        "kv_get_gateway": kv_gateway,
    }


def syncs(mt: Memoturn, replica: EmbeddedReplica, sizes: list[int], tmp: Path) -> dict[str, Any]:
    """Per size: the default replica (takes the snapshot when it moves fewer bytes) and one that
    always replays segments, both starting at the same txid."""
    out: dict[str, Any] = {}
    db = mt.database(DB)
    with EmbeddedReplica(mt, NS, PROFILE, tmp / "segments-only" / "r.db", snapshot_if_smaller=False) as replay:
        for size in sizes:
            replica.sync()
            replay.sync()
            start = replica.txid
            for i in range(size):
                db.kv_put(f"sync-{size}-{i}", i)
            head = mt.profile(NS, PROFILE).stats().txid or 0
            full = _full_restore_bytes(mt)
            row: dict[str, Any] = {"txns": head - start, "full_restore_bytes": full}
            for name, r in (("default", replica), ("segments_only", replay)):
                report = r.sync()
                assert r.txid == head, (name, r.txid, head)
                row[name] = {
                    "sync_ms": round(report.seconds * 1000, 2),
                    "from_snapshot": report.snapshot,
                    "bytes": report.bytes,
                    "bytes_vs_full_restore": round(report.bytes / full, 4) if full else None,
                }
            out[str(size)] = row
    fresh_dir = tmp / "fresh"
    t0 = time.perf_counter()
    with open_replica(mt, NS, PROFILE, fresh_dir / "fresh.db") as fresh:
        out["fresh_replica"] = {
            "txid": fresh.txid,
            "sync_ms": round((time.perf_counter() - t0) * 1000, 2),
            "bytes": fresh.bytes_received,
            "full_restore_bytes": _full_restore_bytes(mt),
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    n = 200 if args.quick else 1000
    memories = 1000 if args.quick else 5000
    sizes = [1, 100, 1000] if args.quick else [1, 100, 10_000]
    tmp = Path(tempfile.mkdtemp(prefix="memoturn-bench-replica-"))
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m bench.replica" + (" --quick" if args.quick else ""),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
    }
    rng = np.random.default_rng(1)
    with EtcdServer() as etcd, MinioServer() as minio:
        for k, v in minio.credentials.items():
            os.environ[k] = v
        cluster = Cluster(tmp, etcd, minio, nodes=2)
        try:
            with Memoturn(cluster.gateway.url) as mt:
                mt.profile(NS, PROFILE).add("seed", type="fact", embedding=_vectors(rng, 1)[0])
                # Keep every segment (no snapshot in the way), so each sync measures the segment path.
                mt.database(DB).set_policy(snapshot_every_txids=1_000_000, keep_snapshots=100)
                with open_replica(mt, NS, PROFILE, tmp / "device" / "replica.db") as replica:
                    results["reads"] = reads(mt, replica, n, memories, rng)
                    results["sync"] = syncs(mt, replica, sizes, tmp)
        finally:
            cluster.close()
            shutil.rmtree(tmp, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()[0]
    write_results("replica", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
