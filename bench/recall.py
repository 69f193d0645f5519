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
import statistics
import sys
import tempfile
import time
from datetime import datetime
from typing import Any

from memoturn import memories
from memoturn.config import Settings
from memoturn.embedding import get_embedder
from memoturn.node import Node

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "bench",
                            "locomo", "locomo-dev.json")


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
            out.append({"type": "episode", "content": content, "event_time": parse_when(when),
                        "metadata": {"dia_id": turn["dia_id"], "session": number, "date_time": when}})
    return out


def evidence_ids(qa: dict[str, Any]) -> set[str]:
    ids: set[str] = set()
    for e in qa.get("evidence", []):
        ids.update(x for x in re.split(r"[;,\s]+", str(e)) if x)
    return ids


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--limit-conversations", type=int, default=None)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "recall.json"))
    args = p.parse_args()
    try:
        with open(args.data) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        print(f"bench-recall: cannot read {args.data}: {exc}", file=sys.stderr)
        return 2
    if args.limit_conversations:
        data = data[: args.limit_conversations]
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
            for start in range(0, len(items), 64):
                chunk = items[start : start + 64]
                vecs = embedder.embed([m["content"] for m in chunk])

                def tx(conn: Any, chunk=chunk, vecs=vecs) -> None:
                    memories.ensure_schema(conn, embedder.dim, embedder.name)
                    for m, v in zip(chunk, vecs):
                        memories.add(conn, m, v)

                node.write(db, tx, durable=False)
            ingest_seconds += time.perf_counter() - t0
            n_turns += len(items)
            for qa in sample["qa"]:
                if qa.get("category") not in (1, 2, 3, 4):
                    continue
                wanted = evidence_ids(qa)
                if not wanted:
                    continue
                t0 = time.perf_counter()
                vector = embedder.embed([qa["question"]])[0]
                hits, _ = node.read(db, lambda c: memories.recall(c, query=qa["question"], vector=vector, limit=10))
                latencies.append(time.perf_counter() - t0)
                ranked = [h["memory"]["metadata"].get("dia_id") for h in hits]
                found5 = wanted & set(ranked[:5])
                found10 = wanted & set(ranked[:10])
                first = next((i for i, d in enumerate(ranked[:10]) if d in wanted), None)
                per_cat.setdefault(qa["category"], []).append({
                    "r5": len(found5) / len(wanted), "r10": len(found10) / len(wanted),
                    "hit5": 1.0 if found5 else 0.0, "mrr": 1.0 / (first + 1) if first is not None else 0.0})
            print(f"conversation {conv_index}: {len(items)} turns ingested", file=sys.stderr, flush=True)
    finally:
        node.stop()

    def agg(rows: list[dict[str, float]]) -> dict[str, float]:
        return {k: round(statistics.fmean(r[k] for r in rows), 4) for k in ("r5", "r10", "hit5", "mrr")} | {"questions": len(rows)}

    everything = [r for rows in per_cat.values() for r in rows]
    overall = agg(everything)
    lat = sorted(latencies)
    result = {
        "data": os.path.abspath(args.data),
        "embedder": embedder.name,
        "conversations": len(data),
        "turns": n_turns,
        "ingest_seconds": round(ingest_seconds, 2),
        "ingest_ms_per_turn": round(ingest_seconds / max(1, n_turns) * 1000, 2),
        "per_category": {str(c): agg(rows) for c, rows in sorted(per_cat.items())},
        "r_at_5": overall["r5"], "r_at_10": overall["r10"], "hit_at_5": overall["hit5"], "mrr": overall["mrr"],
        "questions": overall["questions"],
        "recall_p50_ms": round(lat[len(lat) // 2] * 1000, 2),
        "recall_p95_ms": round(lat[int(len(lat) * 0.95)] * 1000, 2),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
