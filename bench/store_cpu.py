"""Object-store client CPU: boto3 (``S3Store``) vs obstore (``CloudStore``) against one MinIO (issue 14).

    python -m bench.store_cpu [--puts 300] [--size 4096]

One MinIO server on 127.0.0.1; each client gets its own prefix and the same operations, in the
same process: N unconditional PUTs of ``--size`` bytes, N conditional creates
(``if_none_match=True``), N GETs of those objects, and N conditional replaces (an ``if_match``
chain on one key). For each phase: process CPU per operation (``time.process_time()``, which
counts every thread of the process, so obstore's Rust runtime threads are included; MinIO's
CPU is its own process and is not) and wall p50/p99 per operation. Then "per shipped segment":
a real in-process ``Node`` on each client (``durability='durable'``, ``ship_interval_seconds=0``)
takes N durable KV puts, and the process CPU over them is divided by the segments shipped
(``segments_shipped``): the client's share next to SQLite, segment encoding and the manifest
CAS. Phases run client by client in alternating order so neither always goes first. JSON:
bench/results/store_cpu.json with every figure and the ratio boto3/obstore per phase.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from memoturn.config import Settings
from memoturn.data import kv
from memoturn.metrics import sample
from memoturn.server.node import Node
from memoturn.storage.store.base import ObjectStore
from memoturn.storage.store.cloud import CloudStore
from memoturn.storage.store.s3 import S3Store

from bench.storage import summarize, write_results

CLIENTS: dict[str, Callable[[str], ObjectStore]] = {"boto3": S3Store.from_url, "obstore": CloudStore.from_url}
PHASES = ("put", "create", "get", "replace")
WARMUP = 10


def measured(n: int, fn: Callable[[int], Any]) -> dict[str, Any]:
    """Run ``fn(0..n-1)``: wall percentiles per call and process CPU per call (all threads)."""
    samples = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t0)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return summarize(
        samples,
        wall,
        cpu_ms_per_op=round(cpu / n * 1000, 4),
        cpu_seconds=round(cpu, 4),
        cpu_share_of_wall=round(cpu / wall, 3),
    )


def store_phase(store: ObjectStore, phase: str, n: int, data: bytes, run: str) -> dict[str, Any]:
    for i in range(WARMUP):  # connections, first-call setup: not measured
        store.put(f"warm/{run}/{phase}/{i}", data)
        store.get(f"warm/{run}/{phase}/{i}")
    if phase == "put":
        return measured(n, lambda i: store.put(f"put/{run}/{i:06d}", data))
    if phase == "create":
        return measured(n, lambda i: store.put(f"create/{run}/{i:06d}", data, if_none_match=True))
    if phase == "get":
        return measured(n, lambda i: store.get(f"put/{run}/{i:06d}"))
    etag = [store.put(f"replace/{run}", data, if_none_match=True)]

    def replace(i: int) -> None:
        etag[0] = store.put(f"replace/{run}", data, if_match=etag[0])

    return measured(n, replace)


def per_segment(tmp: str, name: str, url: str, n: int) -> dict[str, Any]:
    """N durable KV puts on an in-process Node over this client; process CPU per shipped segment."""
    store = CLIENTS[name](url)
    settings = Settings(
        data_dir=os.path.join(tmp, f"node-{name}"),
        node_id=f"cpu-{name}",
        store_url=url,
        ship_interval_seconds=0,
        durability="durable",
        tier_interval_seconds=3600,
    )
    node = Node(settings, store=store).start()
    try:
        node.create_database("b")
        for i in range(WARMUP):
            node.write("b", lambda c: kv.put(c, f"warm{i}", '"v"', None), durable=True)
        shipped0 = sample(node.metrics.segments_shipped)
        r = measured(n, lambda i: node.write("b", lambda c: kv.put(c, f"k{i}", '"v"', None), durable=True))
        segments = int(sample(node.metrics.segments_shipped) - shipped0)
    finally:
        node.stop()
        store.close()
    r["segments_shipped"] = segments
    r["cpu_ms_per_segment"] = round(r["cpu_seconds"] / max(1, segments) * 1000, 4)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--puts", type=int, default=300, help="operations per phase and client (default 300)")
    ap.add_argument("--size", type=int, default=4096, help="object size in bytes (default 4096)")
    args = ap.parse_args()
    n, data = max(1, args.puts), os.urandom(max(0, args.size))
    from support.minio import MinioServer

    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m bench.store_cpu " + " ".join(sys.argv[1:]),
        "puts": n,
        "size_bytes": len(data),
        "load_average_before": list(os.getloadavg()),
        "cpu_clock": "time.process_time(): every thread of this process (obstore's Rust threads included)",
    }
    clients: dict[str, dict[str, Any]] = {name: {} for name in CLIENTS}
    tmp = tempfile.mkdtemp(prefix="memoturn-bench-cpu-")
    try:
        with MinioServer() as minio:
            for k, v in minio.credentials.items():
                os.environ[k] = v
            stores = {name: CLIENTS[name](minio.store_url(f"cpu-{name}")) for name in CLIENTS}
            order = list(CLIENTS)
            try:
                for phase in PHASES:
                    for name in order:
                        r = clients[name][phase] = store_phase(stores[name], phase, n, data, "r")
                        print(
                            f"{name:8s} {phase:8s} cpu {r['cpu_ms_per_op']:7.3f} ms/op  "
                            f"p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms",
                            flush=True,
                        )
                    order.reverse()
            finally:
                for s in stores.values():
                    s.close()
            for name in order:
                r = clients[name]["segment"] = per_segment(tmp, name, minio.store_url(f"node-{name}"), n)
                print(
                    f"{name:8s} segment  cpu {r['cpu_ms_per_segment']:7.3f} ms/segment "
                    f"({r['segments_shipped']} segments)  put p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms",
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["load_average_after"] = list(os.getloadavg())
    results["clients"] = clients

    def cpu(name: str, phase: str) -> float:
        r = clients[name][phase]
        return r["cpu_ms_per_segment"] if phase == "segment" else r["cpu_ms_per_op"]

    phases = (*PHASES, "segment")
    results["ratio_boto3_over_obstore"] = {
        p: {
            "cpu": round(cpu("boto3", p) / cpu("obstore", p), 3) if cpu("obstore", p) else None,
            "p50": round(clients["boto3"][p]["p50_ms"] / clients["obstore"][p]["p50_ms"], 3),
            "p99": round(clients["boto3"][p]["p99_ms"] / clients["obstore"][p]["p99_ms"], 3),
        }
        for p in phases
    }
    results["targets"] = {
        "cpu_per_put_ms_boto3": cpu("boto3", "put"),
        "cpu_per_put_ms_obstore": cpu("obstore", "put"),
        "obstore_cpu_per_put_lower": cpu("obstore", "put") < cpu("boto3", "put"),
    }
    print()
    print(
        f"{'phase':8s} | {'boto3 cpu ms':>12s} | {'obstore cpu ms':>14s} | {'cpu ratio':>9s} | p50 ms b/o | p99 ms b/o"
    )
    for p in phases:
        b, o, ratio = clients["boto3"][p], clients["obstore"][p], results["ratio_boto3_over_obstore"][p]
        print(
            f"{p:8s} | {cpu('boto3', p):12.3f} | {cpu('obstore', p):14.3f} | {ratio['cpu']:9.2f} | "
            f"{b['p50_ms']:.2f} / {o['p50_ms']:.2f} | {b['p99_ms']:.2f} / {o['p99_ms']:.2f}"
        )
    print()
    write_results("store_cpu", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
