"""Server-side embedding throughput: texts embedded per second by the default model, per runtime.

    python -m bench.embedding [--data PATH] [--rounds 3] [--texts 256] [--runtimes onnx,numpy,numpy-before]

The texts are LoCoMo dialog turns as the recall benchmark stores them (``"{speaker}: {text}"``,
read from ``../shared/bench/locomo/locomo-dev.json`` at run time, never copied), a fixed random
sample. For each batch size (1, 16, 64 texts per ``embed`` call, what one API request carries)
the runtimes take turns, round after round, over the same texts, so a neighbour's load falls
on each alike; each figure is over every round. ``onnx`` and ``numpy`` are the two runtimes of
the embedder; ``numpy-before`` is numpy chunking the way it did before length bucketing (fixed
chunks of 32). Per batch: p50 and p99 of one ``embed`` call; texts/s = texts embedded / seconds
spent embedding them. It also records the padding share (``MiniLMEmbedder.chunks``, and what
fixed chunks of 32 padded), the BLAS threads numpy uses, the load average before and after,
and how close the runtimes' vectors are (lowest cosine over the sample). JSON in
``bench/results/embedding.json``.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import random
import sys
import time
from typing import Any

import numpy as np
from memoturn.data.embedding import MiniLMEmbedder

from bench.recall import DEFAULT_DATA, turns
from bench.storage import write_results

BATCHES = (1, 16, 64)


class FixedChunks(MiniLMEmbedder):
    """The numpy embedder as it was before length bucketing: chunks of 32 whatever the padding."""

    def chunks(self, lengths: list[int]) -> list[tuple[int, int]]:
        return [(i, min(i + self.batch, len(lengths))) for i in range(0, len(lengths), self.batch)]


def make(runtime: str) -> MiniLMEmbedder:
    """``onnx``, ``numpy`` or ``numpy-before`` (numpy with fixed chunks of 32)."""
    if runtime == "numpy-before":
        return FixedChunks(runtime="numpy")
    return MiniLMEmbedder(runtime=runtime)


def blas_threads() -> int | None:
    """The thread count of the OpenBLAS numpy ships with (None if it is another BLAS)."""
    for lib in glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*")):
        so = ctypes.CDLL(lib)
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            if hasattr(so, name):
                return int(getattr(so, name)())
    return None


def sample_texts(path: str, n: int, seed: int = 7) -> list[str]:
    with open(path) as f:
        data = json.load(f)
    texts = [t["content"] for sample in data for t in turns(sample["conversation"])]
    return random.Random(seed).sample(texts, min(n, len(texts)))


def padding(model: MiniLMEmbedder, texts: list[str], batch: int) -> dict[str, float]:
    """Word pieces computed per real one when ``texts`` go through ``embed`` ``batch`` at a time:
    as ``embed`` chunks them, and as fixed chunks of 32 in character-length order would (before)."""
    real = chunked = fixed = 0
    for start in range(0, len(texts), batch):
        call = texts[start : start + batch]
        lengths = sorted(len(e.ids) for e in model.tokenizer.encode_batch(call))
        real += sum(lengths)
        chunked += sum(max(lengths[a:b]) * (b - a) for a, b in model.chunks(lengths))
        by_chars = [len(e.ids) for e in model.tokenizer.encode_batch(sorted(call, key=len))]
        fixed += sum(max(by_chars[i : i + 32]) * len(by_chars[i : i + 32]) for i in range(0, len(call), 32))
    return {
        "tokens_per_text": round(real / len(texts), 1),
        "padding_share": round(1 - real / chunked, 3),
        "padding_share_fixed_chunks_of_32": round(1 - real / fixed, 3),
    }


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def run(data_path: str, rounds: int, n_texts: int, runtimes: list[str]) -> dict[str, Any]:
    texts = sample_texts(data_path, n_texts)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    models = {r: make(r) for r in runtimes}
    startup = time.perf_counter() - t0
    for model in models.values():  # warm up: first calls allocate
        model.embed(texts[:64])
    timings: dict[str, dict[int, list[float]]] = {r: {b: [] for b in BATCHES} for r in runtimes}
    for _ in range(rounds):
        for b in BATCHES:
            for r, model in models.items():
                for start in range(0, len(texts), b):
                    t = time.perf_counter()
                    model.embed(texts[start : start + b])
                    timings[r][b].append(time.perf_counter() - t)
    results: dict[str, Any] = {}
    for r in runtimes:
        results[r] = {
            str(b): {
                "batches": len(ts),
                "p50_ms": round(pct(ts, 50) * 1000, 2),
                "p99_ms": round(pct(ts, 99) * 1000, 2),
                "texts_per_s": round(b * len(ts) / sum(ts), 1),
            }
            for b, ts in timings[r].items()
        }
    vectors = {r: m.embed(texts) for r, m in models.items()}
    agreement = None
    if {"onnx", "numpy"} <= set(vectors):
        agreement = float((vectors["onnx"] * vectors["numpy"]).sum(1).min())
    any_model = next(iter(models.values()))
    return {
        "started": started,
        "command": f"python -m bench.embedding --rounds {rounds} --texts {n_texts} --runtimes {','.join(runtimes)}",
        "texts": len(texts),
        "rounds": rounds,
        "data": os.path.basename(data_path),
        "cpus": os.cpu_count(),
        "numpy_blas_threads": blas_threads(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "startup_seconds": round(startup, 2),
        "padding": {str(b): padding(any_model, texts, b) for b in BATCHES},
        "runtimes": results,
        "speedup_over_numpy_before": {
            r: {
                str(b): round(results[r][str(b)]["texts_per_s"] / results["numpy-before"][str(b)]["texts_per_s"], 2)
                for b in BATCHES
            }
            for r in runtimes
        }
        if "numpy-before" in results
        else None,
        "min_cosine_between_runtimes": agreement,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--texts", type=int, default=256, help="texts per batch size and round")
    p.add_argument("--runtimes", default="onnx,numpy,numpy-before")
    p.add_argument("--out", default="embedding", help="results name: bench/results/NAME.json")
    args = p.parse_args()
    result = run(args.data, args.rounds, args.texts, args.runtimes.split(","))
    for r, per_batch in result["runtimes"].items():
        for b, f in per_batch.items():
            print(
                f"{r:6} batch {b:>3}: {f['texts_per_s']:7.1f} texts/s  p50 {f['p50_ms']:8.2f} ms  p99 {f['p99_ms']:8.2f} ms"
            )
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
