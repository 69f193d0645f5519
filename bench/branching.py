"""Branching benchmarks: fork latency (file:// and MinIO), first read on a fresh fork, PITR
restore time against history length, GC pass time against object count.
JSON in bench/results/branching.json.

    python -m bench.branching [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from memoturn.data import kv
from memoturn.server import branches
from memoturn.storage.manifest import load_manifest
from memoturn.storage.restore import restore
from memoturn.storage.store.file import FileStore
from memoturn.storage.store.s3 import S3Store
from support.minio import MinioServer

from bench.storage import make_node, summarize, write_results


def history(node: Any, db: str, txids: int) -> None:
    node.create_database(db)
    for i in range(txids):
        node.write(db, lambda c: kv.put(c, f"k{i % 200}", json.dumps({"i": i, "pad": "x" * 100}), None), durable=False)
    node.shipper.ship_all(120)


def forks(node: Any, db: str, n: int) -> dict[str, Any]:
    fork_t, read_t = [], []
    for i in range(n):
        t0 = time.perf_counter()
        branches.fork(node, db, f"f{i}")
        t1 = time.perf_counter()
        node.read(db, lambda c: kv.get(c, "k1"), branch=f"f{i}")
        t2 = time.perf_counter()
        fork_t.append(t1 - t0)
        read_t.append(t2 - t1)
        node.drop_local(db, f"f{i}")
    return {"fork": summarize(fork_t), "first_read_on_fork": summarize(read_t)}


def pitr(node: Any, store: Any, tmp: str, lengths: list[int]) -> dict[str, Any]:
    out = {}
    for n in lengths:
        db = f"pitr{n}"
        history(node, db, n)
        manifest, _ = load_manifest(store, db, "main")
        samples = []
        for k in range(5):
            target = max(1, n * (k + 1) // 6)
            t0 = time.perf_counter()
            restore(store, manifest, os.path.join(tmp, f"{db}-{k}.db"), txid=target)
            samples.append(time.perf_counter() - t0)
        out[str(n)] = summarize(samples, segments=len(manifest.segments), snapshots=len(manifest.snapshots))
    return out


def gc_passes(node: Any, store: Any, counts: list[int]) -> dict[str, Any]:
    out = {}
    for n in counts:
        db = f"gc{n}"
        history(node, db, n)  # one segment object per shipped batch, plus snapshots
        objects = sum(1 for _ in store.iter_keys(f"db/{db}/"))
        t0 = time.perf_counter()
        report = branches.collect(node, db, grace=600)
        out[str(n)] = {
            "objects": objects,
            "seconds": round(time.perf_counter() - t0, 4),
            "unreferenced": report["unreferenced"],
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    n = 50 if args.quick else 300
    tmp = tempfile.mkdtemp(prefix="memoturn-bench-branch-")
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m bench.branching" + (" --quick" if args.quick else ""),
    }
    with MinioServer() as minio:
        for k, v in minio.credentials.items():
            os.environ[k] = v
        stores = {"file": FileStore(os.path.join(tmp, "store")), "s3": S3Store.from_url(minio.store_url("bench"))}
        for label, store in stores.items():
            node = make_node(tmp, f"n-{label}", store, keep_snapshots=1000)
            try:
                history(node, "forked", 200)
                results[f"forks_{label}"] = forks(node, "forked", n)
                if label == "s3":
                    results["pitr_restore_s3"] = pitr(
                        node, store, tmp, [100, 1000] if args.quick else [100, 1000, 5000]
                    )
                    results["gc_pass_s3"] = gc_passes(node, store, [100, 1000] if args.quick else [100, 1000, 5000])
            finally:
                node.stop()
    write_results("branching", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
