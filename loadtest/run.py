"""``make loadtest``: start a local cluster, run Locust headless for a fixed time, summarise.

The cluster is real and on loopback only: etcd, MinIO, ``--nodes`` memoturnd processes and a
gateway (tests/support/cluster.py). Locust runs headless with a fixed user count and duration
and stops by itself; its CSV and HTML reports and a JSON summary (throughput, p50/p95/p99 per
operation, error rate) go to ``--out`` (default bench/results/loadtest). Exit status 1 when
``--fail-on-error`` and any request failed.

    python -m loadtest.run --users 20 --spawn-rate 10 --duration 60s [--nodes 1] [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def summarize(prefix: Path) -> dict:
    ops: dict[str, dict] = {}
    total = {}
    with open(f"{prefix}_stats.csv") as f:
        for row in csv.DictReader(f):
            entry = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": round(float(row["Requests/s"]), 2),
                "p50_ms": float(row["50%"] or 0),
                "p95_ms": float(row["95%"] or 0),
                "p99_ms": float(row["99%"] or 0),
            }
            if row["Name"] == "Aggregated":
                total = entry
            else:
                ops[row["Name"]] = entry
    requests = total.get("requests", 0)
    return {
        "throughput_rps": total.get("rps", 0.0),
        "requests": requests,
        "failures": total.get("failures", 0),
        "error_rate": round(total.get("failures", 0) / requests, 5) if requests else 0.0,
        "p50_ms": total.get("p50_ms"),
        "p95_ms": total.get("p95_ms"),
        "p99_ms": total.get("p99_ms"),
        "operations": ops,
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--spawn-rate", type=float, default=10)
    p.add_argument("--duration", default="60s")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--profiles", type=int, default=200)
    p.add_argument("--durability", default="standard", choices=["standard", "durable"])
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "loadtest"))
    p.add_argument(
        "--smoke",
        action="store_true",
        help="short CI run: fewer profiles, each user runs every operation once first, fail on any error",
    )
    p.add_argument("--fail-on-error", action="store_true")
    args = p.parse_args()
    if args.smoke:
        args.fail_on_error = True
        args.profiles = min(args.profiles, 30)
    from support.cluster import Cluster
    from support.etcd import EtcdServer
    from support.minio import MinioServer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "locust"
    tmp = Path(tempfile.mkdtemp(prefix="memoturn-loadtest-"))
    with EtcdServer() as etcd, MinioServer() as minio:
        for k, v in minio.credentials.items():
            os.environ[k] = v
        cluster = Cluster(
            tmp,
            etcd,
            minio,
            nodes=args.nodes,
            ttl=15,
            env={"MEMOTURN_DURABILITY": args.durability, "MEMOTURN_REPLICAS": "0"},
        )
        try:
            env = {
                **os.environ,
                "MEMOTURN_LOAD_PROFILES": str(args.profiles),
                "MEMOTURN_LOAD_DURABILITY": args.durability,
            }
            if args.smoke:  # a 20-second run must reach the rare operations (fork) too
                env["MEMOTURN_LOAD_EACH_FIRST"] = "1"
            cmd = [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(ROOT / "loadtest" / "locustfile.py"),
                "--headless",
                "--host",
                cluster.gateway.url,
                "-u",
                str(args.users),
                "-r",
                str(args.spawn_rate),
                "-t",
                args.duration,
                "--csv",
                str(prefix),
                "--html",
                str(prefix) + ".html",
                "--only-summary",
                "--stop-timeout",
                "10",
                "--exit-code-on-error",
                "0",
            ]
            started = time.time()
            result = subprocess.run(cmd, env=env, timeout=3600)
            if result.returncode != 0:
                print(f"loadtest: locust exited with {result.returncode}", file=sys.stderr)
                return 1
            summary = {
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "users": args.users,
                "duration": args.duration,
                "nodes": args.nodes,
                "profiles": args.profiles,
                "durability": args.durability,
                **summarize(prefix),
            }
        finally:
            cluster.close()
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary))
    if args.fail_on_error and summary["failures"]:
        print(f"loadtest: {summary['failures']} requests failed (see {prefix}_failures.csv)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
