"""Throughput through the gateway on one node (issue targets: ≥ 1,500 KV ops/s, ≥ 300 memory
writes/s, p99 ≤ 50 ms, standard mode), and the same load sent to the node directly.

    python -m bench.throughput [--seconds 15] [--concurrency 32] [--sweep 4,8,16] [--quick]

Real etcd, MinIO, one ``memoturnd`` and one ``memoturn-gateway`` process on loopback. The load
comes from a separate process (an asyncio aiohttp client keeping ``concurrency`` requests in
flight, closed loop), so the servers' CPU is theirs; on a 2-core machine the load generator
still takes a share, which the figures include. Phases, each for ``--seconds``: KV GET, KV PUT,
a 2:1 GET/PUT mix, and memory writes with client-supplied vectors (the server-side embedder
costs ~10 ms of CPU per memory on its own and is measured by ``bench.memory``), first straight
to the node, then through the gateway; then each phase again through the gateway at the
``--sweep`` concurrencies, since a closed loop's p99 grows with what it keeps in flight: the
report takes the best rate whose p99 is within 50 ms. ``MEMOTURN_BENCH_PROFILES`` (default 200)
sets how many profiles the load spreads over. JSON: bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from support.cluster import Cluster
from support.etcd import EtcdServer
from support.minio import MinioServer

from bench.storage import summarize, write_results

PROFILES = int(os.environ.get("MEMOTURN_BENCH_PROFILES", "200"))  # the env reaches the spawned load process


def _vector(rng: random.Random) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(384)]
    n = sum(x * x for x in v) ** 0.5
    return [x / n for x in v]


async def _drive(url: str, phase: str, seconds: float, concurrency: int, seed: int) -> dict[str, Any]:
    import aiohttp

    rng = random.Random(seed)
    vectors = [_vector(rng) for _ in range(64)]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    def request() -> tuple[str, str, Any]:
        p = rng.randrange(PROFILES)
        kind = phase
        if phase == "kv_mix":
            kind = "kv_get" if rng.random() < 2 / 3 else "kv_put"
        if kind == "kv_get":
            return "GET", f"/v1/databases/tp--p{p}/kv/k{rng.randrange(20)}", None
        if kind == "kv_put":
            return "PUT", f"/v1/databases/tp--p{p}/kv/k{rng.randrange(20)}", {"value": {"n": rng.randrange(10**6)}}
        return (
            "POST",
            f"/v1/namespaces/tp/profiles/p{p}/memories",
            {
                "content": f"p{p} mentioned item {rng.randrange(10**6)}",
                "type": "fact",
                "embedding": rng.choice(vectors),
            },
        )

    async def worker(session: Any) -> None:
        while time.monotonic() < deadline:
            method, path, body = request()
            t0 = time.perf_counter()
            try:
                async with session.request(method, url + path, json=body) as r:
                    await r.read()
                    ok = r.status < 400 or (r.status == 404 and method == "GET")
                    if not ok:
                        errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                        continue
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.monotonic() - t0
    p95 = sorted(latencies)[int(0.95 * len(latencies))] * 1000 if latencies else None
    return summarize(
        latencies,
        elapsed,
        p95_ms=round(p95, 3) if p95 else None,
        errors=errors,
        seconds=round(elapsed, 2),
        concurrency=concurrency,
    )


def _load_process(url: str, phase: str, seconds: float, concurrency: int, queue: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    queue.put(asyncio.run(_drive(url, phase, seconds, concurrency, seed=hash(phase) & 0xFFFF)))


def run_phase(url: str, phase: str, seconds: float, concurrency: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_load_process, args=(url, phase, seconds, concurrency, queue))
    proc.start()
    result = queue.get(timeout=seconds + 120)
    proc.join(timeout=30)
    return result


def _report(target: str, phase: str, r: dict[str, Any], suffix: str = "") -> None:
    print(
        f"{target:8s} {phase:13s} {r['ops_per_s']:8.1f} ops/s  p50 {r['p50_ms']:6.2f} ms  "
        f"p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}{suffix}",
        flush=True,
    )


def _run_cluster(
    tmp: Path,
    etcd: EtcdServer,
    minio: MinioServer,
    server: str,
    prefix: str,
    phases: list[str],
    seconds: float,
    concurrency: int,
    sweep: list[int],
    results: dict[str, Any],
) -> None:
    """One node and a gateway (both behind ``server``); every phase direct and through the gateway."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {"MEMOTURN_MAX_HOT": "1000", "MEMOTURN_HTTP_SERVER": server}
    cluster = Cluster(
        tmp, etcd, minio, nodes=1, ttl=15, env=env, gateway_env={"MEMOTURN_HTTP_SERVER": server}, prefix=f"/tp-{server}"
    )
    try:
        node_url = next(iter(cluster.nodes.values())).url
        gw = cluster.gateway.client
        for p in range(PROFILES):
            gw.post("/v1/databases", json={"name": f"tp--p{p}"})
            gw.put(f"/v1/databases/tp--p{p}/kv/k0", json={"value": 0})
        for target, url in (("direct", node_url), ("gateway", cluster.gateway.url)):
            for phase in phases:
                r = run_phase(url, phase, seconds, concurrency)
                results[f"{prefix}{target}_{phase}"] = r
                _report(f"{prefix}{target}", phase, r)
        for phase in phases:
            for c in sweep:
                r = run_phase(cluster.gateway.url, phase, seconds, c)
                results.setdefault("gateway_sweep", {}).setdefault(phase, []).append(
                    {"concurrency": c, **{k: r[k] for k in ("ops_per_s", "p50_ms", "p95_ms", "p99_ms", "errors")}}
                )
                _report("gateway", phase, r, f"  ({c} in flight)")
    finally:
        cluster.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument(
        "--sweep",
        default="4,8,16",
        help="lower concurrencies to run through the gateway as well ('' for none): the "
        "report takes the best rate whose p99 is within 50 ms",
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--http-servers",
        default="uvicorn",
        help="comma-separated MEMOTURN_HTTP_SERVER values for the node and the gateway, each on a fresh cluster in "
        "this run (e.g. 'uvicorn,granian'); the first is reported as is, the others with their "
        "name as a prefix (granian_direct_kv_get, ...), without the sweep",
    )
    args = ap.parse_args()
    servers = [x.strip() for x in args.http_servers.split(",") if x.strip()]
    seconds = 4 if args.quick else args.seconds
    sweep = [int(x) for x in args.sweep.split(",") if x.strip()] if not args.quick else []
    phases = ["kv_get", "kv_put", "kv_mix", "memory_write"]
    results: dict[str, Any] = {
        "seconds_per_phase": seconds,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
        "mode": "standard",
        "profiles": PROFILES,
        "command": "python -m bench.throughput " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with tempfile.TemporaryDirectory() as tmp, EtcdServer() as etcd, MinioServer() as minio:
        for name, value in minio.credentials.items():
            os.environ[name] = value
        results["http_servers"] = servers
        for n, server in enumerate(servers):
            prefix = "" if n == 0 else f"{server}_"
            _run_cluster(
                Path(tmp) / server,
                etcd,
                minio,
                server,
                prefix,
                phases,
                seconds,
                args.concurrency,
                sweep if n == 0 else [],
                results,
            )
    write_results("throughput", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
