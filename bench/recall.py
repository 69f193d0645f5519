"""LoCoMo recall benchmark (``make bench-recall DATA=PATH``), exactly the protocol of
``../shared/bench/locomo/README.md``:

* one profile per conversation; every dialog turn is one memory with content
  ``"{speaker}: {text}"`` (plus ``" [shares a photo: {caption}]"``), metadata ``dia_id``,
  ``session`` and ``date_time``, event time = the session's date-time;
* every question of category 1-4, the question text alone as the query;
* R@5, R@10, Hit@5, MRR (first evidence turn within the top 10), overall and per category,
  ingest time and recall latency.

It runs a real node in-process (file store in a temporary directory) and calls the same
functions as the HTTP routes (embedding outside the lock, then hybrid recall in the
database); latencies therefore exclude HTTP. The last line of standard output is one JSON
object with the headline figures. The data file is read where it is, never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
from memoturn.config import Settings
from memoturn.data import memories
from memoturn.data.embedding import get_embedder
from memoturn.server.node import Node

DEFAULT_DATA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "bench", "locomo", "locomo-dev.json"
)


def parse_when(text: str) -> float | None:
    try:
        return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").timestamp()
    except ValueError:
        return None


def turns(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    sessions = sorted((int(m.group(1)), k) for k in conversation if (m := re.fullmatch(r"session_(\d+)", k)))
    for number, key in sessions:
        when = conversation.get(f"{key}_date_time", "")
        for turn in conversation[key]:
            content = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                content += f" [shares a photo: {turn['blip_caption']}]"
            out.append(
                {
                    "type": "episode",
                    "content": content,
                    "event_time": parse_when(when),
                    "metadata": {"dia_id": turn["dia_id"], "session": number, "date_time": when},
                }
            )
    return out


def evidence_ids(qa: dict[str, Any]) -> set[str]:
    ids: set[str] = set()
    for e in qa.get("evidence", []):
        ids.update(x for x in re.split(r"[;,\s]+", str(e)) if x)
    return ids


def score(ranked: list[Any], wanted: set[str]) -> dict[str, float]:
    """The protocol's figures for one question: ``ranked`` = dia_ids of the top memories, best first."""
    found5 = wanted & set(ranked[:5])
    found10 = wanted & set(ranked[:10])
    first = next((i for i, d in enumerate(ranked[:10]) if d in wanted), None)
    return {
        "r5": len(found5) / len(wanted),
        "r10": len(found10) / len(wanted),
        "hit5": 1.0 if found5 else 0.0,
        "mrr": 1.0 / (first + 1) if first is not None else 0.0,
    }


def questions(sample: dict[str, Any]) -> list[tuple[dict[str, Any], set[str]]]:
    """The protocol's questions of one conversation (categories 1-4, with evidence) and their evidence."""
    out = []
    for qa in sample["qa"]:
        if qa.get("category") not in (1, 2, 3, 4):
            continue
        wanted = evidence_ids(qa)
        if wanted:
            out.append((qa, wanted))
    return out


def agg(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.fmean(r[k] for r in rows), 4) for k in ("r5", "r10", "hit5", "mrr")} | {
        "questions": len(rows)
    }


def figures(
    data_path: str,
    embedder_name: str,
    conversations: int,
    n_turns: int,
    ingest_seconds: float,
    per_cat: dict[int, list[dict[str, float]]],
    latencies: list[float],
) -> dict[str, Any]:
    """The headline result (what ``recall.json`` holds) from per-question scores and latencies."""
    everything = [r for rows in per_cat.values() for r in rows]
    overall = agg(everything)
    lat = sorted(latencies)
    return {
        "data": os.path.abspath(data_path),
        "embedder": embedder_name,
        "conversations": conversations,
        "turns": n_turns,
        "ingest_seconds": round(ingest_seconds, 2),
        "ingest_ms_per_turn": round(ingest_seconds / max(1, n_turns) * 1000, 2),
        "per_category": {str(c): agg(rows) for c, rows in sorted(per_cat.items())},
        "r_at_5": overall["r5"],
        "r_at_10": overall["r10"],
        "hit_at_5": overall["hit5"],
        "mrr": overall["mrr"],
        "questions": overall["questions"],
        "recall_p50_ms": round(lat[len(lat) // 2] * 1000, 2),
        "recall_p95_ms": round(lat[int(len(lat) * 0.95)] * 1000, 2),
    }


def embedded_chunks(
    embedder: Any, items: list[dict[str, Any]], detail: dict[str, list[float]], size: int = 64
) -> Iterator[tuple[list[dict[str, Any]], np.ndarray]]:
    """``items`` ``size`` at a time with their vectors; the time to embed each chunk goes to
    ``detail["ingest_embed"]``, the time the caller takes to store it to ``detail["ingest_store"]``."""
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        e0 = time.perf_counter()
        vecs = embedder.embed([m["content"] for m in chunk])
        e1 = time.perf_counter()
        yield chunk, vecs
        detail["ingest_embed"].append(e1 - e0)
        detail["ingest_store"].append(time.perf_counter() - e1)


def run(data: list[dict[str, Any]], data_path: str, detail: dict[str, list[float]] | None = None) -> dict[str, Any]:
    """Run the protocol on Memoturn (a real node in-process) and return the headline result.

    If ``detail`` is given it receives the raw timings, in seconds: ``recall`` (embed + search,
    what the result's percentiles are of), ``recall_embed`` and ``recall_search`` per question,
    and ``ingest_embed`` and ``ingest_store`` per 64-turn batch.
    """
    detail = detail if detail is not None else {}
    for key in ("recall", "recall_embed", "recall_search", "ingest_embed", "ingest_store"):
        detail.setdefault(key, [])
    embedder = get_embedder("default")
    tmp = tempfile.mkdtemp(prefix="memoturn-recall-")
    node = Node(Settings(data_dir=tmp, node_id="recall", tier_interval_seconds=3600)).start()
    per_cat: dict[int, list[dict[str, float]]] = {}
    latencies: list[float] = []
    ingest_seconds = 0.0
    n_turns = 0
    try:
        for conv_index, sample in enumerate(data):
            db = f"locomo--conv{conv_index}"
            node.create_database(db)
            items = turns(sample["conversation"])
            t0 = time.perf_counter()
            for chunk, vecs in embedded_chunks(embedder, items, detail):

                def tx(conn: Any, chunk=chunk, vecs=vecs) -> None:
                    memories.ensure_schema(conn, embedder.dim, embedder.name)
                    for m, v in zip(chunk, vecs, strict=False):
                        memories.add(conn, m, v)

                node.write(db, tx, durable=False)
            ingest_seconds += time.perf_counter() - t0
            n_turns += len(items)
            for qa, wanted in questions(sample):
                t0 = time.perf_counter()
                vector = embedder.embed([qa["question"]])[0]
                t1 = time.perf_counter()
                hits, _ = node.read(db, lambda c: memories.recall(c, query=qa["question"], vector=vector, limit=10))
                t2 = time.perf_counter()
                latencies.append(t2 - t0)
                detail["recall"].append(t2 - t0)
                detail["recall_embed"].append(t1 - t0)
                detail["recall_search"].append(t2 - t1)
                ranked = [h["memory"]["metadata"].get("dia_id") for h in hits]
                per_cat.setdefault(qa["category"], []).append(score(ranked, wanted))
            print(f"conversation {conv_index}: {len(items)} turns ingested", file=sys.stderr, flush=True)
    finally:
        node.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return figures(data_path, embedder.name, len(data), n_turns, ingest_seconds, per_cat, latencies)


def load(path: str, limit_conversations: int | None = None) -> list[dict[str, Any]]:
    """The LoCoMo file, read where it is (OSError / ValueError when it cannot be)."""
    with open(path) as f:
        data = json.load(f)
    return data[:limit_conversations] if limit_conversations else data


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--limit-conversations", type=int, default=None)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "recall.json"))
    args = p.parse_args()
    try:
        data = load(args.data, args.limit_conversations)
    except (OSError, ValueError) as exc:
        print(f"bench-recall: cannot read {args.data}: {exc}", file=sys.stderr)
        return 2
    result = run(data, args.data)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
