"""Memory benchmarks: recall latency at 1k / 10k / 100k memories per profile, and ingest
throughput with server-side embedding. JSON in bench/results/memory.json.

    python -m bench.memory [--quick]

Bulk memories carry their own random unit vectors (embedding 100k texts would measure the
embedder, not recall); queries take the real path: embed the question, then hybrid recall.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from typing import Any

import numpy as np
from memoturn.config import Settings
from memoturn.data import memories
from memoturn.data.embedding import get_embedder
from memoturn.server.node import Node

from bench.storage import summarize, write_results
from bench.words import WORDS


def fill(node: Node, db: str, n: int, dim: int, rng: random.Random) -> float:
    t0 = time.perf_counter()
    nprng = np.random.default_rng(rng.randrange(2**32))
    for start in range(0, n, 500):
        count = min(500, n - start)
        vecs = nprng.standard_normal((count, dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        items = [
            {
                "type": rng.choice(memories.BUILTIN_TYPES),
                "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))),
                "tags": [rng.choice(WORDS)],
            }
            for _ in range(count)
        ]

        def tx(conn: Any, items=items, vecs=vecs) -> None:
            memories.ensure_schema(conn, dim, "bench")
            for item, v in zip(items, vecs, strict=False):
                memories.add(conn, item, v)

        node.write(db, tx, durable=False)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    queries = 50 if args.quick else 200
    rng = random.Random(7)
    embedder = get_embedder("default")
    node = Node(
        Settings(data_dir=tempfile.mkdtemp(prefix="memoturn-bench-mem-"), node_id="bench", tier_interval_seconds=3600)
    ).start()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m bench.memory" + (" --quick" if args.quick else ""),
        "embedder": embedder.name,
    }
    try:
        for n in sizes:
            db = f"bench--m{n}"
            node.create_database(db)
            load = fill(node, db, n, embedder.dim, rng)
            total, search = [], []
            for _ in range(queries):
                q = " ".join(rng.choice(WORDS) for _ in range(6))
                t0 = time.perf_counter()
                v = embedder.embed([q])[0]
                t1 = time.perf_counter()
                node.read(db, lambda c: memories.recall(c, query=q, vector=v, limit=10))
                t2 = time.perf_counter()
                total.append(t2 - t0)
                search.append(t2 - t1)
            results[f"recall_{n}"] = {
                "with_embedding": summarize(total),
                "search_only": summarize(search),
                "load_seconds": round(load, 2),
                "load_memories_per_s": round(n / load, 1),
            }
            print(
                f"{n}: recall p50 {results[f'recall_{n}']['with_embedding']['p50_ms']} ms", file=sys.stderr, flush=True
            )
        texts = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) for _ in range(256 if args.quick else 1024)
        ]
        db = "bench--ingest"
        node.create_database(db)
        t0 = time.perf_counter()
        for start in range(0, len(texts), 64):
            chunk = texts[start : start + 64]
            vecs = embedder.embed(chunk)

            def tx(conn: Any, chunk=chunk, vecs=vecs) -> None:
                memories.ensure_schema(conn, embedder.dim, embedder.name)
                for t, v in zip(chunk, vecs, strict=False):
                    memories.add(conn, {"content": t}, v)

            node.write(db, tx, durable=False)
        elapsed = time.perf_counter() - t0
        results["ingest_with_embedding"] = {
            "memories": len(texts),
            "seconds": round(elapsed, 2),
            "memories_per_s": round(len(texts) / elapsed, 1),
            "batch": 64,
        }
    finally:
        node.stop()
    write_results("memory", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
