"""Soak (``make soak``): the history-checked fault test of ``tests/test_history.py``, long.

Clients write durable KV puts and SQL inserts of unique keys and read their own writes back
with ``Memoturn-Min-Txid`` through the gateway of a local cluster (real etcd, MinIO and
memoturnd processes) while the nemesis kills nodes (-9, same or empty data directory),
freezes an owner past its lease TTL, restarts etcd and MinIO and fills a node's cache
filesystem, round after round; then the checker (``tests/support/history.py``) looks for
anomalies. Results: bench/results/soak.json (operations by kind and outcome, the nemesis
events, the anomalies with their history excerpts); exit status 1 if there is any anomaly.

    python -m bench.soak [--duration 600] [--ttl 3] [--clients 4] [--seed N] [--history PATH] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from support.history import run_history

from bench.storage import write_results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak")
    p.add_argument("--duration", type=float, default=600, help="seconds of operations under faults (default 600)")
    p.add_argument("--ttl", type=int, default=3, help="lease TTL of the nodes (default 3 s)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--databases", type=int, default=4)
    p.add_argument(
        "--cuts-per-db",
        type=int,
        default=4,
        help="acknowledged writes per database whose txid is pinned in the store by forks at txid-1 and txid",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--history", default=None, help="also write every operation and event here (JSON)")
    p.add_argument("--name", default="soak", help="results file: bench/results/NAME.json")
    p.add_argument("--keep", action="store_true", help="keep the data directories and logs (kept anyway on anomalies)")
    args = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="memoturn-soak-")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    keep = args.keep
    try:
        results: dict[str, Any] = run_history(
            tmp,
            duration=args.duration,
            clients=args.clients,
            nodes=args.nodes,
            ttl=args.ttl,
            dbs=args.databases,
            seed=args.seed,
            gap=(3.0, 10.0),
            rounds=None,
            cuts_per_db=args.cuts_per_db,
            tail=5.0,
            log=lambda line: print(line, flush=True),
        )
        keep = keep or bool(results["anomalies"])
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            print(f"node data directories and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    history = results.pop("history")
    if args.history:
        with open(args.history, "w") as f:
            json.dump({**{k: v for k, v in results.items() if k != "anomalies"}, **history.to_json()}, f)
        print(f"history: {args.history}")
    kinds: dict[str, int] = {}
    for ev in results["events"]:
        if not ev.get("skipped"):
            kinds[ev["kind"]] = kinds.get(ev["kind"], 0) + 1
    out = {
        "started": started,
        "command": "make soak",
        "duration_seconds": args.duration,
        **results,
        "events_by_kind": kinds,
        "anomaly_count": len(results["anomalies"]),
    }
    write_results(args.name, out)
    if results["anomalies"]:
        print(f"{len(results['anomalies'])} ANOMALIES (seed {results['seed']})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
