"""Storage benchmarks (``make bench``): p50/p99 and throughput, JSON under bench/results/.

Everything runs in one process and one run, so ratios compare like with like: the plain
SQLite commit (WAL, synchronous FULL and NORMAL) is measured next to Memoturn's puts as the
physical floor. The object-store figures go through the client the node really uses,
``open_store(url)`` (``CloudStore``, obstore): S3 on a real MinIO server and Azure Blob on a real
Azurite, both started on 127.0.0.1. One comparison row, ``kv_put.durable_s3_boto3``, runs the
same durable puts through the boto3 ``S3Store`` that ``open_store`` no longer opens. GCS is not
measured: fake-gcs-server has no XML API upload, which obstore writes through (see
tests/test_emulators.py), so ``gcs`` records the gap instead of a number.

    python -m bench.storage [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from memoturn.config import Settings
from memoturn.data import kv
from memoturn.server.node import Node
from memoturn.storage.manifest import load_manifest
from memoturn.storage.restore import restore
from memoturn.storage.store import open_store
from memoturn.storage.store.file import FileStore
from memoturn.storage.store.s3 import S3Store

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def write_results(name: str, results: dict[str, Any]) -> str:
    """Write ``bench/results/{name}.json``, print the results and where they went."""
    os.makedirs(RESULTS, exist_ok=True)
    out = os.path.join(RESULTS, f"{name}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return out


def summarize(samples: list[float], total_seconds: float | None = None, **extra: Any) -> dict[str, Any]:
    """Latency percentiles in milliseconds plus throughput."""
    s = sorted(samples)

    def pick(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))] * 1000

    total = total_seconds if total_seconds is not None else sum(s)
    return {
        "n": len(s),
        "p50_ms": round(pick(0.50), 4),
        "p99_ms": round(pick(0.99), 4),
        "mean_ms": round(statistics.fmean(s) * 1000, 4),
        "ops_per_s": round(len(s) / total, 1) if total else None,
        **extra,
    }


def timed(n: int, fn: Callable[[int], Any]) -> dict[str, Any]:
    samples = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t0)
    return summarize(samples, time.perf_counter() - start)


def plain_sqlite(tmp: str, n: int, sync: str) -> dict[str, Any]:
    path = os.path.join(tmp, f"plain-{sync}.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.execute("CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT)")
    r = timed(n, lambda i: conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"k{i}", '{"v":1}')))
    conn.close()
    return r


def make_node(tmp: str, name: str, store: Any, **overrides: Any) -> Node:
    settings = Settings(data_dir=os.path.join(tmp, name), node_id=name, tier_interval_seconds=3600, **overrides)
    return Node(settings, store=store).start()


def kv_puts(node: Node, db: str, n: int, durable: bool) -> dict[str, Any]:
    node.create_database(db)
    node.write(db, lambda c: kv.put(c, "warmup", "1", None), durable=durable)
    return timed(n, lambda i: node.write(db, lambda c: kv.put(c, f"k{i}", '{"v":1}', None), durable=durable))


def seal_and_ship(tmp: str, store: Any, n: int) -> dict[str, Any]:
    """Ship one single-transaction segment at a time, synchronously (encode + PUT + manifest CAS)."""
    node = make_node(tmp, "ship", store, ship_workers=0)
    try:
        node.create_database("ship")
        db = node.open("ship")
        node.shipper.ship(db.log)
        samples = []
        for i in range(n):
            node.write("ship", lambda c: kv.put(c, f"k{i}", '{"v":1}', None), durable=False)
            t0 = time.perf_counter()
            node.shipper.ship(db.log)
            samples.append(time.perf_counter() - t0)
        return summarize(samples)
    finally:
        node.stop()


def fill(node: Node, db: str, megabytes: int) -> None:
    node.create_database(db)
    node.write(db, lambda c: c.execute("CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB)"), durable=False)
    for _ in range(megabytes):
        node.write(
            db,
            lambda c: [c.execute("INSERT INTO blobs(b) VALUES (randomblob(65536))") for _ in range(16)],
            durable=False,
        )


def restore_throughput(tmp: str, store: Any, txids: int) -> dict[str, Any]:
    """Replay a long segment chain (no snapshot) into an empty file."""
    node = make_node(tmp, "restore-src", store, snapshot_every_txids=10**9, snapshot_every_bytes=10**12)
    try:
        node.create_database("replay")
        for i in range(txids):
            node.write(
                "replay", lambda c: kv.put(c, f"k{i}", json.dumps({"i": i, "pad": "x" * 200}), None), durable=False
            )
        node.shipper.ship_all(120)
    finally:
        node.stop()
    manifest, _ = load_manifest(store, "replay", "main")
    samples, mb, applied = [], 0.0, 0
    for i in range(3):
        path = os.path.join(tmp, f"replay-{i}.db")
        t0 = time.perf_counter()
        result = restore(store, manifest, path)
        samples.append(time.perf_counter() - t0)
        mb, applied = result.bytes_read / 1e6, result.txns_applied
    best = min(samples)
    return {
        "txids": applied,
        "segments": len(manifest.segments),
        "megabytes": round(mb, 2),
        "seconds_p50": round(statistics.median(samples), 4),
        "mb_per_s": round(mb / best, 1),
        "txids_per_s": round(applied / best, 1),
    }


def cold_wake(tmp: str, store: Any, megabytes: int, rounds: int) -> dict[str, Any]:
    """Time from 'not on this node' to the first read answered, restoring from the snapshot."""
    name = f"wake{megabytes}"
    src = make_node(tmp, f"{name}-src", store)
    try:
        fill(src, name, megabytes)
        src.write(name, lambda c: kv.put(c, "probe", "1", None), durable=True)
        src.compact(name)
    finally:
        src.stop()
    node = make_node(tmp, f"{name}-dst", store, hot_idle_seconds=0, max_disk_bytes=0)
    samples = []
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            node.read(name, lambda c: kv.get(c, "probe"))
            samples.append(time.perf_counter() - t0)
            node.tiers.run_once()  # hot -> warm -> cold (disk budget 0)
            assert not node.is_hot(f"{name}/main")
    finally:
        node.stop()
    manifest, _ = load_manifest(store, name, "main")
    return summarize(samples, megabytes=megabytes, snapshots=len(manifest.snapshots), segments=len(manifest.segments))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    tmp = tempfile.mkdtemp(prefix="memoturn-bench-")
    from support.azurite import DEFAULT_BIN as AZURITE_DEFAULT_BIN
    from support.azurite import AzuriteServer
    from support.fakegcs import FAKEGCS_VERSION
    from support.minio import MinioServer

    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "make bench",
    }
    # Which client each backend's rows went through (the S3 rows before this key existed: boto3).
    results["clients"] = {
        "file": "FileStore",
        "s3": "obstore",
        "s3_boto3": "boto3",
        "azure": "obstore",
    }
    # Azure is measured when Azurite is installed (.ci/install-azurite); without it the run goes on
    # and says why the Azure rows are absent.
    azurite_bin = os.environ.get("MEMOTURN_AZURITE_BIN") or AZURITE_DEFAULT_BIN
    with contextlib.ExitStack() as stack:
        minio = stack.enter_context(MinioServer())
        azurite = stack.enter_context(AzuriteServer(binary=azurite_bin)) if os.access(azurite_bin, os.X_OK) else None
        for k, v in minio.credentials.items():
            os.environ[k] = v
        s3 = open_store(minio.store_url("bench"))
        fstore = FileStore(os.path.join(tmp, "store"))
        az = open_store(azurite.store_url("bench")) if azurite else None
        if az is None:
            results["azure"] = {
                "measured": False,
                "reason": f"Azurite not found at {azurite_bin}: run .ci/install-azurite (or set MEMOTURN_AZURITE_BIN)",
            }
        r = results["plain_sqlite_commit"] = {
            "wal_full": plain_sqlite(tmp, n, "FULL"),
            "wal_normal": plain_sqlite(tmp, n, "NORMAL"),
        }
        node = make_node(tmp, "kv-file", fstore)
        try:
            r_std = kv_puts(node, "std-file", n, durable=False)
            r_dur_file = kv_puts(node, "dur-file", n // 4, durable=True)
            results["create_database_file"] = timed(n, lambda i: node.create_database(f"c{i}"))
        finally:
            node.stop()
        node = make_node(tmp, "kv-s3", s3)
        try:
            r_std_s3 = kv_puts(node, "std-s3", n, durable=False)
            r_dur_s3 = kv_puts(node, "dur-s3", n // 4, durable=True)
            results["create_database_s3"] = timed(n // 4, lambda i: node.create_database(f"c{i}"))
        finally:
            node.stop()
        boto = S3Store.from_url(minio.store_url("bench-boto3"))
        node = make_node(tmp, "kv-s3-boto3", boto)
        try:
            r_dur_boto = kv_puts(node, "dur-s3-boto3", n // 4, durable=True)
        finally:
            node.stop()
            boto.close()
        results["kv_put"] = {
            "standard_file": r_std,
            "standard_s3": r_std_s3,
            "durable_file": r_dur_file,
            "durable_s3": r_dur_s3,
            "durable_s3_boto3": r_dur_boto,
        }
        if az is not None:
            node = make_node(tmp, "kv-azure", az)
            try:
                results["kv_put"]["durable_azure"] = kv_puts(node, "dur-azure", n // 4, durable=True)
            finally:
                node.stop()
        # Each seal + ship gets its own node directory: the same node name on a reused one would
        # find the previous backend's database on disk.
        results["segment_seal_ship_s3"] = seal_and_ship(tempfile.mkdtemp(dir=tmp), s3, n // 4)
        results["segment_seal_ship_file"] = seal_and_ship(tempfile.mkdtemp(dir=tmp), fstore, n // 4)
        if az is not None:
            results["segment_seal_ship_azure"] = seal_and_ship(tempfile.mkdtemp(dir=tmp), az, n // 4)
        results["restore_s3"] = restore_throughput(tmp, s3, 500 if args.quick else 3000)
        results["cold_wake_1mb_file"] = cold_wake(tmp, fstore, 1, 20 if args.quick else 50)
        results["cold_wake_1mb_s3"] = cold_wake(tmp, s3, 1, 20 if args.quick else 50)
        results["cold_wake_100mb_file"] = cold_wake(tmp, fstore, 10 if args.quick else 100, 3 if args.quick else 5)
        s3.close()
        if az is not None:
            az.close()
    results["gcs"] = {
        "measurable": False,
        "reason": (
            f"emulator gap: fake-gcs-server {FAKEGCS_VERSION} has no XML API object upload, and obstore "
            "(the node's GCS client) writes with PUT /bucket/key, which it answers 400 'invalid "
            "uploadType' (fsouza/fake-gcs-server#331); see tests/test_emulators.py"
        ),
    }
    full = r["wal_full"]["p50_ms"]
    results["targets"] = {
        "standard_put_p50_over_sqlite_full_p50": round(r_std["p50_ms"] / full, 3),
        "standard_put_target_ratio": 2.0,
        "durable_put_s3_p50_ms": r_dur_s3["p50_ms"],
        "durable_put_target_ms": 15.0,
        "cold_wake_1mb_file_p50_ms": results["cold_wake_1mb_file"]["p50_ms"],
        "cold_wake_target_ms": 10.0,
        "create_database_file_p50_ms": results["create_database_file"]["p50_ms"],
        "create_target_ms": 1.0,
    }
    write_results("storage", results)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
