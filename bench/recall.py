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

The headline figures are recall as the API answers by default, i.e. with the relevance floor
``memories.DEFAULT_MIN_SCORE``. ``run(..., sweep=True)`` (what ``main`` does) adds
``floor_sweep``: each question is also recalled with the floor off (``min_score=0``, the
same 50 candidates per list as ``limit=10``, all of them kept), and every floor of
:data:`FLOORS` is applied afterwards under two rules, ``similarity_or_text`` (what
``memories.recall`` does: a hit is kept if its cosine similarity reaches the floor or its
text matched) and ``similarity_only``; the result is the same as recalling with that floor
(``floor_sweep.check`` compares the default floor both ways). For each: R@5, R@10, Hit@5, MRR
on categories 1-4, and how often nothing passes the floor for the adversarial (category 5)
questions, for the answerable ones (categories 1-4), and for "foreign" questions (the
categories 1-4 questions of the next conversation, asked of this one's profile).

``--expand`` (``run(..., expand=True)``) measures recall expanded along relationships: at
ingest every turn is linked to the turn before it in its session (``turn -[follows]-> the turn
it answers or continues``; session order, no LLM), and each question's hits (the headline
recall, unchanged) are also expanded one hop along ``follows`` by
:func:`memoturn.data.relationships.expand`, as the API's ``expand`` does, for every direction
and decay of :data:`EXPAND_VARIANTS`. ``expansion`` in the result holds the figures of each,
per category, next to the unexpanded ones (``bench/results/recall-expand.json``).
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
from memoturn.data import memories, relationships
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


#: Relevance floors (cosine similarity) the sweep applies; 0 = no floor.
FLOORS = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
RULES = ("similarity_or_text", "similarity_only")


def adversarial(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation's category-5 (adversarial) questions: the floor should leave them empty."""
    return [qa for qa in sample["qa"] if qa.get("category") == 5]


def passes(hit: dict[str, Any], floor: float, rule: str) -> bool:
    """Whether a hit (``similarity``, ``text_match``) passes ``floor`` under ``rule``."""
    if floor <= 0:
        return True
    sim = hit.get("similarity")
    return (sim is not None and sim >= floor) or (rule == "similarity_or_text" and bool(hit.get("text_match")))


def floored(hits: list[dict[str, Any]], floor: float, rule: str, limit: int = 10) -> list[Any]:
    """dia_ids of the ``limit`` best hits (fused order) that pass the floor."""
    return [h["dia_id"] for h in hits if passes(h, floor, rule)][:limit]


def sweep(
    answerable: list[tuple[int, set[str], list[dict[str, Any]]]],
    adversarial_hits: list[list[dict[str, Any]]],
    foreign_hits: list[list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Figures for every rule and floor from unfloored hit lists (each hit: ``dia_id``,
    ``similarity``, ``text_match``, in fused order)."""

    def empty(lists: list[list[dict[str, Any]]], floor: float, rule: str) -> float:
        return round(sum(1 for hits in lists if not floored(hits, floor, rule)) / max(1, len(lists)), 4)

    out = []
    for rule in RULES:
        for floor in FLOORS:
            per_cat: dict[int, list[dict[str, float]]] = {}
            for category, wanted, hits in answerable:
                per_cat.setdefault(category, []).append(score(floored(hits, floor, rule), wanted))
            everything = agg([r for rows in per_cat.values() for r in rows])
            out.append(
                {
                    "rule": rule,
                    "min_score": floor,
                    "r_at_5": everything["r5"],
                    "r_at_10": everything["r10"],
                    "hit_at_5": everything["hit5"],
                    "mrr": everything["mrr"],
                    "r_at_5_per_category": {str(c): agg(rows)["r5"] for c, rows in sorted(per_cat.items())},
                    "adversarial_empty": empty(adversarial_hits, floor, rule),
                    "answerable_empty": empty([h for _, _, h in answerable], floor, rule),
                    "foreign_empty": empty(foreign_hits, floor, rule),
                    "adversarial_mean_results": round(
                        statistics.fmean(len(floored(h, floor, rule)) for h in adversarial_hits), 2
                    )
                    if adversarial_hits
                    else 0.0,
                }
            )
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


def _unfloored(node: Node, db: str, query: str, vector: np.ndarray) -> list[dict[str, Any]]:
    """Every candidate of ``limit=10`` recall with the floor off, fused order, with its scores."""
    hits, _ = node.read(
        db, lambda c: memories.recall(c, query=query, vector=vector, limit=1000, candidates=50, min_score=0.0)
    )
    return [
        {"dia_id": h["memory"]["metadata"].get("dia_id"), "similarity": h["similarity"], "text_match": h["text_match"]}
        for h in hits
    ]


#: (direction, decay) of the expansions ``--expand`` measures: "out" reaches the turn a hit
#: answers or continues, "in" the turn that answers it, "both" either.
EXPAND_VARIANTS = tuple((d, k) for d in ("both", "out", "in") for k in (0.25, 0.5, 0.75, 0.9, 1.0))
LINK_TYPE = "follows"


def link_turns(conn: Any, ids: list[tuple[str, Any]]) -> int:
    """``turn -[follows]-> previous turn`` for consecutive turns of one session (``ids``: memory
    id and session, in conversation order); return how many were linked."""
    linked = 0
    for (prev, prev_session), (cur, session) in zip(ids, ids[1:], strict=False):
        if session == prev_session and cur != prev:
            relationships.relate(conn, cur, prev, LINK_TYPE)
            linked += 1
    return linked


def expansion_figures(
    base: dict[int, list[dict[str, float]]], variants: dict[tuple[str, float], dict[int, list[dict[str, float]]]]
) -> dict[str, Any]:
    """Per-category figures without and with each expansion, and the deltas on category 1."""

    def summary(per_cat: dict[int, list[dict[str, float]]]) -> dict[str, Any]:
        overall = agg([r for rows in per_cat.values() for r in rows])
        return {
            "r_at_5": overall["r5"],
            "r_at_10": overall["r10"],
            "hit_at_5": overall["hit5"],
            "mrr": overall["mrr"],
            "per_category": {str(c): agg(rows) for c, rows in sorted(per_cat.items())},
        }

    off = summary(base)
    rows = []
    for (direction, decay), per_cat in variants.items():
        s = summary(per_cat)
        deltas = {c: round(s["per_category"][c]["r5"] - off["per_category"][c]["r5"], 4) for c in off["per_category"]}
        rows.append({"direction": direction, "decay": decay, **s, "r_at_5_delta_per_category": deltas})
    return {
        "link": f"turn -[{LINK_TYPE}]-> previous turn of its session",
        "expand": [LINK_TYPE],
        "off": off,
        "variants": rows,
    }


def run(
    data: list[dict[str, Any]],
    data_path: str,
    detail: dict[str, list[float]] | None = None,
    *,
    sweep_floor: bool = False,
    expand: bool = False,
) -> dict[str, Any]:
    """Run the protocol on Memoturn (a real node in-process) and return the headline result.

    If ``detail`` is given it receives the raw timings, in seconds: ``recall`` (embed + search,
    what the result's percentiles are of), ``recall_embed`` and ``recall_search`` per question,
    and ``ingest_embed`` and ``ingest_store`` per 64-turn batch. ``sweep_floor`` adds
    ``floor_sweep`` (module docstring).
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
    answerable: list[tuple[int, set[str], list[dict[str, Any]]]] = []
    adversarial_hits: list[list[dict[str, Any]]] = []
    foreign_hits: list[list[dict[str, Any]]] = []
    mismatches = 0
    expanded: dict[tuple[str, float], dict[int, list[dict[str, float]]]] = {v: {} for v in EXPAND_VARIANTS}
    expand_seconds: list[float] = []
    links = 0
    try:
        for conv_index, sample in enumerate(data):
            db = f"locomo--conv{conv_index}"
            node.create_database(db)
            items = turns(sample["conversation"])
            t0 = time.perf_counter()
            stored: list[tuple[str, Any]] = []
            for chunk, vecs in embedded_chunks(embedder, items, detail):

                def tx(conn: Any, chunk=chunk, vecs=vecs) -> None:
                    memories.ensure_schema(conn, embedder.dim, embedder.name)
                    for m, v in zip(chunk, vecs, strict=False):
                        stored.append((memories.add(conn, m, v)[0]["id"], m["metadata"]["session"]))

                node.write(db, tx, durable=False)
            ingest_seconds += time.perf_counter() - t0
            if expand:
                links += node.write(db, lambda c: link_turns(c, stored), durable=False)[0]
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
                for direction, decay in EXPAND_VARIANTS if expand else ():
                    t3 = time.perf_counter()
                    grown, _ = node.read(
                        db,
                        lambda c, hits=hits, direction=direction, decay=decay: relationships.expand(
                            c, list(hits), along=[LINK_TYPE], limit=10, direction=direction, decay=decay, vector=vector
                        ),
                    )
                    expand_seconds.append(time.perf_counter() - t3)
                    got = [h["memory"]["metadata"].get("dia_id") for h in grown]
                    expanded[(direction, decay)].setdefault(qa["category"], []).append(score(got, wanted))
                if sweep_floor:
                    every = _unfloored(node, db, qa["question"], vector)
                    answerable.append((qa["category"], wanted, every))
                    mismatches += ranked != floored(every, memories.DEFAULT_MIN_SCORE, "similarity_or_text")
            if sweep_floor:
                for qa in adversarial(sample):
                    vector = embedder.embed([qa["question"]])[0]
                    adversarial_hits.append(_unfloored(node, db, qa["question"], vector))
                for qa, _ in questions(data[(conv_index + 1) % len(data)]) if len(data) > 1 else []:
                    vector = embedder.embed([qa["question"]])[0]
                    foreign_hits.append(_unfloored(node, db, qa["question"], vector))
            print(f"conversation {conv_index}: {len(items)} turns ingested", file=sys.stderr, flush=True)
    finally:
        node.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result = figures(data_path, embedder.name, len(data), n_turns, ingest_seconds, per_cat, latencies)
    result["min_score"] = memories.DEFAULT_MIN_SCORE
    if expand:
        result["expansion"] = expansion_figures(per_cat, expanded) | {
            "relationships": links,
            "expand_p50_ms": round(sorted(expand_seconds)[len(expand_seconds) // 2] * 1000, 2) if expand_seconds else 0,
        }
    if sweep_floor:
        rows = sweep(answerable, adversarial_hits, foreign_hits)
        base = next(r for r in rows if r["rule"] == "similarity_or_text" and r["min_score"] == 0)
        result["floor_sweep"] = {
            "note": "headline figures above: default floor (min_score) on; sweep: bench/recall.py docstring",
            "default_min_score": memories.DEFAULT_MIN_SCORE,
            "default_rule": "similarity_or_text",
            "no_floor": {k: base[k] for k in ("r_at_5", "r_at_10", "hit_at_5", "mrr")},
            "adversarial_questions": len(adversarial_hits),
            "answerable_questions": len(answerable),
            "foreign_questions": len(foreign_hits),
            "largest_floor_within_0_01_r_at_5": {
                rule: max(
                    (r["min_score"] for r in rows if r["rule"] == rule and r["r_at_5"] >= base["r_at_5"] - 0.01),
                    default=0.0,
                )
                for rule in RULES
            },
            "check": {
                "questions_whose_default_recall_differs_from_the_sweep": mismatches,
            },
            "rows": rows,
        }
    return result


def load(path: str, limit_conversations: int | None = None) -> list[dict[str, Any]]:
    """The LoCoMo file, read where it is (OSError / ValueError when it cannot be)."""
    with open(path) as f:
        data = json.load(f)
    return data[:limit_conversations] if limit_conversations else data


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--limit-conversations", type=int, default=None)
    p.add_argument("--no-sweep", action="store_true", help="only the headline figures, no relevance-floor sweep")
    p.add_argument(
        "--expand",
        action="store_true",
        help="link each turn to the previous one of its session and measure recall expanded along the links",
    )
    p.add_argument("--out", default=None, help="default: bench/results/recall.json (recall-expand.json with --expand)")
    args = p.parse_args()
    results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    args.out = args.out or os.path.join(results, "recall-expand.json" if args.expand else "recall.json")
    try:
        data = load(args.data, args.limit_conversations)
    except (OSError, ValueError) as exc:
        print(f"bench-recall: cannot read {args.data}: {exc}", file=sys.stderr)
        return 2
    result = run(data, args.data, sweep_floor=not args.no_sweep, expand=args.expand)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
