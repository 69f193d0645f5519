"""Throughput through the gateway on one node (issue targets: ≥ 1,500 KV ops/s, ≥ 300 memory
writes/s, p99 ≤ 50 ms, standard mode), and the same load sent to the node directly.

    python -m bench.throughput [--seconds 15] [--concurrency 32] [--sweep 4,8,16] [--quick]

Real etcd, MinIO, one ``memoturnd`` and one ``memoturn-gateway`` process on loopback. The load
comes from a separate process (an asyncio aiohttp client keeping ``concurrency`` requests in
flight, closed loop), so the servers' CPU is theirs (each process's CPU per request is recorded,
the object store's, etcd's and the load generator's too); on a 2-core machine the load generator
still takes a share, which the figures include. Phases, each for ``--seconds``: KV GET, KV PUT,
a 2:1 GET/PUT mix, and memory writes with client-supplied vectors (the server-side embedder
costs ~10 ms of CPU per memory on its own and is measured by ``bench.memory``), first straight
to the node, then through the gateway; then each phase again through the gateway at the
``--sweep`` concurrencies, since a closed loop's p99 grows with what it keeps in flight: the
report takes the best rate whose p99 is within 50 ms; and KV GETs one at a time, straight and through
the gateway, for what the gateway adds when nothing queues. ``MEMOTURN_BENCH_PROFILES`` (default 200)
sets how many profiles the load spreads over. JSON: bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import sqlite3
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
    """A closed loop of ``concurrency`` workers for ``seconds``. The client is the gateway's own
    (keep-alive HTTP/1.1 over httptools, ``memoturn.cluster.node_client``) with bodies encoded by
    orjson: the load process shares the 2 cores with what it measures, and aiohttp's client cost
    it 2-3x the CPU per request."""
    import orjson
    from memoturn.cluster.node_client import ConnectionLost, NodeClient, NotSent

    rng = random.Random(seed)
    vectors = [_vector(rng) for _ in range(64)]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    json_headers = [("content-type", "application/json")]

    def request() -> tuple[str, str, bytes]:
        p = rng.randrange(PROFILES)
        kind = phase
        if phase == "kv_mix":
            kind = "kv_get" if rng.random() < 2 / 3 else "kv_put"
        if kind == "kv_get":
            return "GET", f"/v1/databases/tp--p{p}/kv/k{rng.randrange(20)}", b""
        if kind == "kv_put":
            body = {"value": {"n": rng.randrange(10**6)}}
            return "PUT", f"/v1/databases/tp--p{p}/kv/k{rng.randrange(20)}", orjson.dumps(body)
        memory = {
            "content": f"p{p} mentioned item {rng.randrange(10**6)}",
            "type": "fact",
            "embedding": rng.choice(vectors),
        }
        return "POST", f"/v1/namespaces/tp/profiles/p{p}/memories", orjson.dumps(memory)

    async def worker(client: NodeClient) -> None:
        while time.monotonic() < deadline:
            method, path, body = request()
            t0 = time.perf_counter()
            try:
                r = await client.request(url, method, path, json_headers if body else [], body, 60)
                try:
                    await r.read()
                finally:
                    r.release()
            except (NotSent, ConnectionLost, TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            if not (r.status < 400 or (r.status == 404 and method == "GET")):
                errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                continue
            latencies.append(time.perf_counter() - t0)

    client = NodeClient(keepalive=3.0)
    try:
        t0 = time.monotonic()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.monotonic() - t0
    finally:
        await client.close()
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
    cpu = time.process_time()
    result = asyncio.run(_drive(url, phase, seconds, concurrency, seed=hash(phase) & 0xFFFF))
    result["load_cpu_seconds"] = round(time.process_time() - cpu, 3)
    queue.put(result)


def run_phase(url: str, phase: str, seconds: float, concurrency: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_load_process, args=(url, phase, seconds, concurrency, queue))
    proc.start()
    result = queue.get(timeout=seconds + 120)
    proc.join(timeout=30)
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settle(clusters: list[Cluster], timeout: float = 30.0) -> None:
    """Wait until the clusters' servers are idle (the last phase's shipping done), so a phase does not
    pay for the one before it, which may have been another cluster's."""
    pids = [p.proc.pid for c in clusters for p in (*c.nodes.values(), c.gateway)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(_cpu_seconds(pid) for pid in pids)
        time.sleep(0.5)
        if sum(_cpu_seconds(pid) for pid in pids) - before < 0.05:  # under 10 % of a core together
            return


def _report(target: str, phase: str, r: dict[str, Any], suffix: str = "") -> None:
    print(
        f"{target:8s} {phase:13s} {r['ops_per_s']:8.1f} ops/s  p50 {r['p50_ms']:6.2f} ms  "
        f"p99 {r['p99_ms']:7.2f} ms  errors {r.get('errors', {})}"
        + (
            "  cpu ms/op "
            + " ".join(f"{who} {r[f'{who}_cpu_ms_per_op']}" for who in ("node", "gateway", "store", "etcd", "load"))
            if "node_cpu_ms_per_op" in r
            else ""
        )
        + suffix,
        flush=True,
    )


def _start_cluster(tmp: Path, etcd: EtcdServer, minio: MinioServer, name: str, env: dict[str, str]) -> Cluster:
    """One node and a gateway, both with ``env``; the benchmark's profiles created through the gateway."""
    tmp.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(
        tmp,
        etcd,
        minio,
        nodes=1,
        ttl=15,
        env={"MEMOTURN_MAX_HOT": "1000", **env},
        gateway_env=env,
        prefix=f"/tp-{name}",
    )
    gw = cluster.gateway.client
    for p in range(PROFILES):
        gw.post("/v1/databases", json={"name": f"tp--p{p}"})
        gw.put(f"/v1/databases/tp--p{p}/kv/k0", json={"value": 0})
    return cluster


def _variants(args: argparse.Namespace) -> list[tuple[str, dict[str, str]]]:
    """``(name, env)`` of each cluster to run: ``--variant`` ones, else one per ``--http-servers`` value."""
    if args.variant:
        out = []
        for v in args.variant:
            name, _, assignments = v.partition(":")
            env = dict(a.split("=", 1) for a in assignments.split(",") if a.strip())
            out.append((name, env))
        return out
    servers = [x.strip() for x in args.http_servers.split(",") if x.strip()]
    return [(server, {"MEMOTURN_HTTP_SERVER": server}) for server in servers]


def plain_sqlite_floor(tmp: str, seconds: float = 2.0) -> dict[str, Any]:
    """Plain SQLite WAL commits with synchronous=FULL on this disk, now: the floor the write targets refer to."""
    path = os.path.join(tmp, "plain-full.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT)")
    samples: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"k{len(samples) % 20}", '{"v":1}'))
        samples.append(time.perf_counter() - t0)
    conn.close()
    return summarize(samples, time.perf_counter() - start)


def derived(results: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Figures the issue's targets are stated in, from one run's phases (None when a phase is missing)."""
    direct, gateway = results.get(f"{prefix}direct_kv_get"), results.get(f"{prefix}gateway_kv_get")
    put, floor = results.get(f"{prefix}direct_kv_put"), results.get("plain_sqlite_full")
    direct1, gateway1 = results.get(f"{prefix}direct_kv_get_1"), results.get(f"{prefix}gateway_kv_get_1")
    return {
        "gateway_overhead_kv_get_p50_ms": round(gateway["p50_ms"] - direct["p50_ms"], 3)
        if direct and gateway
        else None,
        # the same with one request in flight: the gateway's own latency, without queueing behind others
        "gateway_overhead_kv_get_p50_ms_at_1": round(gateway1["p50_ms"] - direct1["p50_ms"], 3)
        if direct1 and gateway1
        else None,
        "direct_kv_put_vs_sqlite_full": round(put["ops_per_s"] / floor["ops_per_s"], 3) if put and floor else None,
    }


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
    ap.add_argument(
        "--variant",
        action="append",
        metavar="NAME:VAR=VALUE,...",
        help="a cluster whose node and gateway get these environment variables (repeat for an A/B in one run, "
        "e.g. --variant base:MEMOTURN_HOT_ROUTES=0 --variant hot:); replaces --http-servers. Every cluster "
        "runs at once and the phases alternate between them, so each comparison is made at the same moment; "
        "the first is reported as is, the others with their name as a prefix, with ratios to the first",
    )
    ap.add_argument("--phases", default="kv_get,kv_put,kv_mix,memory_write", help="comma-separated phases to run")
    ap.add_argument("--targets", default="direct,gateway", help="comma-separated: direct (the node), gateway")
    ap.add_argument("--out", help="where the JSON goes (default bench/results/throughput.json)")
    args = ap.parse_args()
    variants = _variants(args)
    seconds = 4 if args.quick else args.seconds
    sweep = [int(x) for x in args.sweep.split(",") if x.strip()] if not args.quick else []
    phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    targets = [x.strip() for x in args.targets.split(",") if x.strip()]
    results: dict[str, Any] = {
        "seconds_per_phase": seconds,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
        "mode": "standard",
        "profiles": PROFILES,
        "command": "python -m bench.throughput " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory() as tmp, EtcdServer() as etcd, MinioServer() as minio:
        for name, value in minio.credentials.items():
            os.environ[name] = value
        results["plain_sqlite_full"] = plain_sqlite_floor(tmp)
        _report("local", "sqlite FULL", results["plain_sqlite_full"])
        if not args.variant:
            results["http_servers"] = [name for name, _ in variants]
        else:
            results["variants"] = {name: env for name, env in variants}
        prefixes = ["" if n == 0 else f"{name}_" for n, (name, _) in enumerate(variants)]
        clusters: list[Cluster] = []
        try:
            for name, env in variants:
                clusters.append(_start_cluster(Path(tmp) / name, etcd, minio, name, env))
            pairs = list(zip(prefixes, clusters, strict=True))
            for n, (target, phase) in enumerate((t, p) for t in targets for p in phases):
                for prefix, cluster in pairs if n % 2 == 0 else pairs[::-1]:  # ABBA: neither goes first always
                    _settle(clusters)
                    url = next(iter(cluster.nodes.values())).url if target == "direct" else cluster.gateway.url
                    pids = {
                        "node": next(iter(cluster.nodes.values())).proc.pid,
                        "gateway": cluster.gateway.proc.pid,
                        "store": minio.proc.pid,  # shared by the variants' clusters
                        "etcd": etcd.proc.pid,
                    }
                    before = {who: _cpu_seconds(pid) for who, pid in pids.items()}
                    r = run_phase(url, phase, seconds, args.concurrency)
                    # each process's own CPU per request (less sensitive to the machine's load than ops/s):
                    # where the 2 cores go, the object store's and the load generator's share included
                    used = {who: _cpu_seconds(pid) - before[who] for who, pid in pids.items()}
                    used["load"] = r.pop("load_cpu_seconds")
                    for who, seconds_used in used.items():
                        r[f"{who}_cpu_ms_per_op"] = round(seconds_used * 1000 / r["n"], 3) if r["n"] else None
                    results[f"{prefix}{target}_{phase}"] = r
                    _report(f"{prefix}{target}", phase, r)
            if {"direct", "gateway"} <= set(targets) and "kv_get" in phases:
                # What the gateway adds to one request when nothing queues: KV GETs one at a time.
                for prefix, cluster in pairs:
                    for target in ("direct", "gateway"):
                        _settle(clusters)
                        url = next(iter(cluster.nodes.values())).url if target == "direct" else cluster.gateway.url
                        r = run_phase(url, "kv_get", seconds, 1)
                        results[f"{prefix}{target}_kv_get_1"] = r
                        _report(f"{prefix}{target}", "kv_get", r, "  (1 in flight)")
            if "gateway" in targets:
                for phase in phases:
                    for c in sweep:
                        r = run_phase(clusters[0].gateway.url, phase, seconds, c)
                        results.setdefault("gateway_sweep", {}).setdefault(phase, []).append(
                            {
                                "concurrency": c,
                                **{k: r[k] for k in ("ops_per_s", "p50_ms", "p95_ms", "p99_ms", "errors")},
                            }
                        )
                        _report("gateway", phase, r, f"  ({c} in flight)")
        finally:
            for cluster in clusters:
                cluster.close()
    results["load_average_at_end"] = round(os.getloadavg()[0], 2)
    for prefix in prefixes:
        results[f"{prefix}derived"] = derived(results, prefix)
    for prefix in prefixes[1:]:
        results[f"{prefix}ratio"] = {
            f"{target}_{phase}": round(results[f"{prefix}{target}_{phase}"]["ops_per_s"] / base, 3)
            for target in targets
            for phase in phases
            if (base := results[f"{target}_{phase}"]["ops_per_s"])
        }
        print(f"{prefix.rstrip('_')} / {variants[0][0]}: {results[f'{prefix}ratio']}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
        print(json.dumps(results, indent=2))
        print(f"wrote {args.out}")
    else:
        write_results("throughput", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
