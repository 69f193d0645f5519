"""LoCoMo recall and memory store/recall latency vs a sqlite-vec memory service, same machine, same
run, same embedder object, same protocol.

    python -m bench.peers.sqlite_vec [--data PATH] [--quick]

**The peer** is a small memory service built the way typical sqlite-vec memory services are (the
sqlite-vec backends of MCP memory servers, for instance): one SQLite file per profile (here per
LoCoMo conversation), a metadata table ``memories`` and a ``vec0`` virtual table
``memory_vec(embedding float[384] distance_metric=cosine)`` sharing its rowid; *store* = embed
the text, insert the row and its vector in one transaction; *recall* = embed the query, then a
KNN query (``embedding MATCH ? AND k = ?``, which in sqlite-vec 0.1.x is an exact brute-force
scan) joined to the metadata. Pure vector search: no keyword index, no fusion. SQLite in WAL
mode, ``synchronous=NORMAL``. It runs in-process, as ``bench/recall.py`` runs Memoturn
in-process (a real node on a file store, standard writes): both sides are library calls with no
HTTP.

**The protocol** is ``../shared/bench/locomo/README.md``, through ``bench.recall``'s own
functions (``turns``, ``questions``, ``score``, ``figures``); then, in the same process,
``bench.recall.run`` runs Memoturn on the same data. Both use the one embedder object
``memoturn.embedding.get_embedder("default")`` (all-MiniLM-L6-v2 in numpy), so recall quality
differs only by retrieval. Embedding dominates every latency, so each latency is given with and
without it: *with embedding* = embed the query + search, *search only* = the store's part.

SQLite with loadable extensions: the standard library's ``sqlite3`` when its build allows
``load_extension``, else ``pysqlite3`` (the ``pysqlite3-binary`` wheel of the ``bench`` extra,
which bundles a recent SQLite). The driver and SQLite version are written in the results.
``--quick`` runs one conversation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np
from memoturn.data.embedding import Embedder, get_embedder

from bench import recall
from bench.storage import write_results

NAME = "peers-sqlite-vec"


# -- the sqlite-vec memory service -------------------------------------------------------------


def sqlite_module() -> Any:
    """A DB-API SQLite module that can load extensions: the standard one if it can, else pysqlite3."""
    import sqlite3

    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        from pysqlite3 import dbapi2
    except ImportError:
        raise SystemExit(
            "sqlite-vec: this Python's sqlite3 cannot load extensions and pysqlite3 is missing; "
            "install the bench extra: uv pip install -e '.[bench]'"
        ) from None
    return dbapi2


def connect(path: str) -> Any:
    import sqlite_vec

    conn = sqlite_module().connect(path, isolation_level=None, check_same_thread=False)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SqliteVecProfile:
    """One profile: one SQLite file with a metadata table and a vec0 table sharing rowids."""

    def __init__(self, path: str, dim: int) -> None:
        self.path = path
        self.dim = dim
        self.conn = connect(path)
        self.conn.execute("""CREATE TABLE IF NOT EXISTS memories(
            id INTEGER PRIMARY KEY, type TEXT NOT NULL, content TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}', event_time REAL, created_at REAL NOT NULL)""")
        self.conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS memory_vec USING vec0(embedding float[{dim}] distance_metric=cosine)"
        )

    def store_vectors(self, items: list[dict[str, Any]], vectors: np.ndarray) -> list[int]:
        """Insert memories with their (already computed) embeddings, in one transaction."""
        ids = []
        now = time.time()
        self.conn.execute("BEGIN")
        try:
            for item, vector in zip(items, vectors, strict=False):
                cur = self.conn.execute(
                    "INSERT INTO memories(type, content, metadata, event_time, created_at) VALUES (?, ?, ?, ?, ?)",
                    (
                        item.get("type", "fact"),
                        item["content"],
                        json.dumps(item.get("metadata") or {}),
                        item.get("event_time"),
                        now,
                    ),
                )
                self.conn.execute(
                    "INSERT INTO memory_vec(rowid, embedding) VALUES (?, ?)",
                    (cur.lastrowid, np.asarray(vector, dtype=np.float32).tobytes()),
                )
                ids.append(cur.lastrowid)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return ids

    def store(self, items: list[dict[str, Any]], embedder: Embedder) -> list[int]:
        return self.store_vectors(items, embedder.embed([m["content"] for m in items]))

    def search(self, vector: np.ndarray, k: int = 10) -> list[dict[str, Any]]:
        """The k nearest memories by cosine distance, nearest first."""
        rows = self.conn.execute(
            "SELECT m.id, m.type, m.content, m.metadata, m.event_time, v.distance FROM "
            "(SELECT rowid, distance FROM memory_vec WHERE embedding MATCH ? AND k = ?) v "
            "JOIN memories m ON m.id = v.rowid ORDER BY v.distance",
            (np.asarray(vector, dtype=np.float32).tobytes(), k),
        ).fetchall()
        return [
            {
                "id": r[0],
                "type": r[1],
                "content": r[2],
                "metadata": json.loads(r[3]),
                "event_time": r[4],
                "score": 1.0 - r[5],
            }
            for r in rows
        ]

    def recall(self, query: str, embedder: Embedder, k: int = 10) -> list[dict[str, Any]]:
        return self.search(embedder.embed([query])[0], k)

    def close(self) -> None:
        self.conn.close()


class SqliteVecMemoryService:
    """Profiles as SQLite files in one directory, opened on first use."""

    def __init__(self, directory: str, dim: int) -> None:
        self.directory = directory
        self.dim = dim
        self.profiles: dict[str, SqliteVecProfile] = {}
        os.makedirs(directory, exist_ok=True)

    def profile(self, name: str) -> SqliteVecProfile:
        if name not in self.profiles:
            self.profiles[name] = SqliteVecProfile(os.path.join(self.directory, f"{name}.db"), self.dim)
        return self.profiles[name]

    def close(self) -> None:
        for p in self.profiles.values():
            p.close()
        self.profiles.clear()


# -- the protocol on the peer ------------------------------------------------------------------


def run_sqlite_vec(
    data: list[dict[str, Any]], data_path: str, embedder: Embedder, tmp: str, detail: dict[str, list[float]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """bench.recall's protocol on the sqlite-vec service. Returns (figures, extra)."""
    for key in ("recall", "recall_embed", "recall_search", "ingest_embed", "ingest_store"):
        detail.setdefault(key, [])
    service = SqliteVecMemoryService(tmp, embedder.dim)
    per_cat: dict[int, list[dict[str, float]]] = {}
    latencies: list[float] = []
    ingest_seconds = 0.0
    n_turns = 0
    exact_same = exact_total = 0
    file_bytes = 0
    try:
        for conv_index, sample in enumerate(data):
            profile = service.profile(f"locomo--conv{conv_index}")
            items = recall.turns(sample["conversation"])
            stored: list[np.ndarray] = []
            ids: list[int] = []
            t0 = time.perf_counter()
            for chunk, vecs in recall.embedded_chunks(embedder, items, detail):
                ids += profile.store_vectors(chunk, vecs)
                stored.append(vecs)
            ingest_seconds += time.perf_counter() - t0
            n_turns += len(items)
            matrix = np.vstack(stored) if stored else np.zeros((0, embedder.dim), np.float32)
            for qa, wanted in recall.questions(sample):
                t0 = time.perf_counter()
                vector = embedder.embed([qa["question"]])[0]
                t1 = time.perf_counter()
                hits = profile.search(vector, 10)
                t2 = time.perf_counter()
                latencies.append(t2 - t0)
                detail["recall"].append(t2 - t0)
                detail["recall_embed"].append(t1 - t0)
                detail["recall_search"].append(t2 - t1)
                ranked = [h["metadata"].get("dia_id") for h in hits]
                per_cat.setdefault(qa["category"], []).append(recall.score(ranked, wanted))
                # Sanity: vec0's KNN is the exact cosine top 10 of the stored vectors.
                top = np.argsort(-(matrix @ vector), kind="stable")[:10]
                exact_same += {ids[i] for i in top} == {h["id"] for h in hits}
                exact_total += 1
            file_bytes += sum(
                os.path.getsize(profile.path + s) for s in ("", "-wal") if os.path.exists(profile.path + s)
            )
            print(f"sqlite-vec conversation {conv_index}: {len(items)} turns ingested", file=sys.stderr, flush=True)
    finally:
        service.close()
    extra = {"knn_top10_equals_numpy_exact": f"{exact_same}/{exact_total}", "file_bytes": file_bytes}
    return recall.figures(data_path, embedder.name, len(data), n_turns, ingest_seconds, per_cat, latencies), extra


# -- figures -------------------------------------------------------------------------------------


def pct(samples: list[float]) -> dict[str, Any]:
    """Percentiles in milliseconds (the index rule of bench.storage.summarize)."""
    s = sorted(samples)
    if not s:
        return {"n": 0}
    pick = lambda q: round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 3)  # noqa: E731 - a one-line helper next to its only use
    return {
        "n": len(s),
        "p50_ms": pick(0.50),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
        "mean_ms": round(statistics.fmean(s) * 1000, 3),
    }


def system_entry(figures: dict[str, Any], detail: dict[str, list[float]], **extra: Any) -> dict[str, Any]:
    n = max(1, figures["turns"])
    entry = {k: v for k, v in figures.items() if k not in ("data", "embedder", "conversations")}
    entry["ingest_ms_per_memory"] = {
        "total": round(figures["ingest_seconds"] / n * 1000, 3),
        "embedding": round(sum(detail["ingest_embed"]) / n * 1000, 3),
        "store": round(sum(detail["ingest_store"]) / n * 1000, 3),
    }
    entry["ingest_store_per_batch"] = pct(detail["ingest_store"]) | {"batch": 64}
    entry["recall_latency"] = {
        "with_embedding": pct(detail["recall"]),
        "search_only": pct(detail["recall_search"]),
        "embedding_only": pct(detail["recall_embed"]),
    }
    return entry | extra


def table(results: dict[str, Any]) -> str:
    systems = results["systems"]
    names = list(systems)
    rows: list[tuple[str, ...]] = [("", *names)]

    def add(label: str, get: Any) -> None:
        rows.append((label, *(str(get(systems[n])) for n in names)))

    for key, label in (("r_at_5", "R@5"), ("r_at_10", "R@10"), ("hit_at_5", "Hit@5"), ("mrr", "MRR")):
        add(label, lambda s, key=key: f"{s[key]:.4f}")
    for cat in sorted({c for s in systems.values() for c in s["per_category"]}):
        add(
            f"cat {cat} R@10 (n)",
            lambda s, c=cat: (
                f"{s['per_category'][c]['r10']:.4f} ({s['per_category'][c]['questions']})"
                if c in s["per_category"]
                else "-"
            ),
        )
    add("ingest ms/memory (embed + store)", lambda s: s["ingest_ms_per_memory"]["total"])
    add("  store only", lambda s: s["ingest_ms_per_memory"]["store"])
    for kind, label in (("with_embedding", "recall ms, with embedding"), ("search_only", "recall ms, search only")):
        add(
            f"{label} p50/p95/p99",
            lambda s, kind=kind: "/".join(
                f"{s['recall_latency'][kind][p]:.2f}" for p in ("p50_ms", "p95_ms", "p99_ms")
            ),
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=recall.DEFAULT_DATA)
    p.add_argument("--quick", action="store_true", help="one conversation")
    p.add_argument("--name", default=NAME, help="results file name under bench/results/ (without .json)")
    args = p.parse_args()
    try:
        data = recall.load(args.data, 1 if args.quick else None)
    except (OSError, ValueError) as exc:
        print(f"sqlite-vec: cannot read {args.data}: {exc}", file=sys.stderr)
        return 2
    import sqlite_vec

    db = sqlite_module()
    probe = connect(":memory:")
    vec_version = probe.execute("SELECT vec_version()").fetchone()[0]
    probe.close()
    embedder = get_embedder("default")
    embedder.embed(["warm up the embedder", "before either system is timed"])
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "numpy": np.__version__,
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m bench.peers.sqlite_vec" + (" --quick" if args.quick else ""),
        "data": os.path.abspath(args.data),
        "protocol": "../shared/bench/locomo/README.md (via bench.recall)",
        "embedder": embedder.name,
        "conversations": len(data),
        "order": ["sqlite-vec", "memoturn"],
        "sqlite_vec": {
            "version": vec_version,
            "package": getattr(sqlite_vec, "__version__", None),
            "driver": db.__name__,
            "sqlite": db.sqlite_version,
            "schema": "memories(id, type, content, metadata, event_time, created_at) + "
            "vec0 memory_vec(embedding float[384] distance_metric=cosine)",
            "retrieval": "pure vector: KNN (embedding MATCH ? AND k = 10), exact brute force",
            "sqlite_settings": "WAL, synchronous=NORMAL, one transaction per 64-memory batch",
        },
        "memoturn": {
            "retrieval": "hybrid: FTS5 BM25 + exact cosine, reciprocal rank fusion",
            "setup": "bench.recall.run: in-process node, file store, standard (non-durable) writes, "
            "one transaction per 64-memory batch",
        },
        "systems": {},
    }
    tmp = tempfile.mkdtemp(prefix="memoturn-sqlite-vec-")
    try:
        load = os.getloadavg()[0]
        detail: dict[str, list[float]] = {}
        figures, extra = run_sqlite_vec(data, args.data, embedder, tmp, detail)
        results["systems"]["sqlite-vec"] = system_entry(figures, detail, loadavg_1m_at_start=round(load, 2), **extra)
        load = os.getloadavg()[0]
        detail = {}
        figures = recall.run(data, args.data, detail)
        results["systems"]["memoturn"] = system_entry(figures, detail, loadavg_1m_at_start=round(load, 2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["turns"] = results["systems"]["memoturn"]["turns"]
    results["questions"] = results["systems"]["memoturn"]["questions"]
    write_results(args.name, results)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
