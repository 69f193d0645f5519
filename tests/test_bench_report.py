"""bench.report on small synthetic results in a temp dir: plots and tables come from the JSON, a
missing result file is said so (not a crash), an unreadable one is an error that spares the rest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib  # noqa: F401  (the bench extra, installed by make: missing fails the import, never skips)

from bench import report

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def lat(p50: float, n: int = 10) -> dict:
    return {"n": n, "p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p50 * 3, "mean_ms": p50 * 1.2, "ops_per_s": 1000 / p50}


def storage() -> dict:
    return {
        "machine": {"cpus": 2, "python": "3.11.7", "platform": "test"},
        "started": "2026-01-01T00:00:00Z",
        "command": "make bench",
        "plain_sqlite_commit": {"wal_full": lat(0.3), "wal_normal": lat(0.01)},
        "kv_put": {
            "standard_file": lat(0.25),
            "standard_s3": lat(0.4),
            "durable_file": lat(2.5),
            "durable_s3": lat(11.0),
        },
        "create_database_file": lat(0.9),
        "cold_wake_1mb_file": lat(5.5) | {"megabytes": 1},
        "targets": {
            "standard_put_p50_over_sqlite_full_p50": 0.833,
            "standard_put_target_ratio": 2.0,
            "durable_put_s3_p50_ms": 11.0,
            "durable_put_target_ms": 15.0,
            "cold_wake_1mb_file_p50_ms": 5.5,
            "cold_wake_target_ms": 10.0,
            "create_database_file_p50_ms": 1.7,
            "create_target_ms": 1.0,
        },
    }


def system(r5: float, search_p50: float) -> dict:
    cat = {"r5": r5, "r10": r5 + 0.1, "hit5": r5 + 0.05, "mrr": r5 - 0.1, "questions": 2}
    return {
        "turns": 5,
        "ingest_seconds": 0.5,
        "ingest_ms_per_turn": 100.0,
        "per_category": {"1": cat, "4": cat},
        "r_at_5": r5,
        "r_at_10": r5 + 0.1,
        "hit_at_5": r5 + 0.05,
        "mrr": r5 - 0.1,
        "questions": 4,
        "recall_p50_ms": 20.0,
        "recall_p95_ms": 30.0,
        "ingest_ms_per_memory": {"total": 100.0, "embedding": 99.0, "store": 1.0},
        "ingest_store_per_batch": lat(5.0) | {"batch": 64},
        "recall_latency": {"with_embedding": lat(20.0), "search_only": lat(search_p50), "embedding_only": lat(18.0)},
        "loadavg_1m_at_start": 1.5,
    }


def sqlite_vec() -> dict:
    return {
        "machine": {"cpus": 2, "python": "3.11.7"},
        "started": "2026-01-01T00:00:00Z",
        "command": "python -m bench.peers.sqlite_vec",
        "embedder": "all-MiniLM-L6-v2",
        "conversations": 1,
        "turns": 5,
        "questions": 4,
        "order": ["sqlite-vec", "memoturn"],
        "sqlite_vec": {"version": "v0.1.9", "sqlite": "3.51.1", "driver": "pysqlite3.dbapi2"},
        "systems": {
            "sqlite-vec": system(0.4, 0.7) | {"knn_top10_equals_numpy_exact": "4/4"},
            "memoturn": system(0.61, 3.3),
        },
    }


def scale() -> dict:
    def stage(n: int, rss_mib: int) -> dict:
        res = {
            "rss_bytes": rss_mib * 2**20,
            "rss_peak_bytes": (rss_mib + 5) * 2**20,
            "open_fds": 600,
            "cache_dir": {"bytes": 2**24},
            "store_dir": {"bytes": n * 2**14},
        }
        return {
            "population": n,
            "label": f"{n // 1000}k",
            "create": lat(4.0) | {"bulk_rate_per_s": 500.0},
            "touch": lat(100.0),
            "hot_read": lat(0.8),
            "cold_wake": lat(8.0),
            "resources": res,
        }

    return {
        "started": "2026-01-01T00:00:00Z",
        "command": "python -m bench.scale --sizes 2000,4000",
        "setup": {
            "store": "file",
            "file_store_fsync": True,
            "max_hot": 200,
            "max_disk_bytes": 2**21,
            "client_threads": 8,
        },
        "baseline": {"rss_bytes": 80 * 2**20, "open_fds": 15},
        "stages": [stage(2000, 150), stage(4000, 207)],
        "growth": {"4k/2k": {"rss_mib": 1.38, "create_p50_ms": 1.0}},
        "target": {
            "rss_bytes": 207 * 2**20,
            "rss_peak_bytes": 212 * 2**20,
            "target_rss_bytes": 2**30,
            "population": 4000,
            "met": True,
        },
    }


def loadtest() -> dict:
    op = {"requests": 100, "failures": 0, "rps": 5.0, "p50_ms": 12.0, "p95_ms": 40.0, "p99_ms": 90.0}
    return {
        "started": "2026-01-01T00:00:00Z",
        "users": 4,
        "duration": "20s",
        "nodes": 1,
        "profiles": 30,
        "durability": "standard",
        "throughput_rps": 10.0,
        "requests": 200,
        "failures": 0,
        "error_rate": 0.0,
        "p50_ms": 12.0,
        "p95_ms": 40.0,
        "p99_ms": 90.0,
        "operations": {"kv_get": op, "recall": op},
    }


def write(results: Path, rel: str, data: object) -> None:
    path = results / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def block(doc: str, name: str) -> str:
    m = re.search(rf"<!-- figures:{name} -->\n(.*?)<!-- /figures:{name} -->", doc, re.S)
    assert m, f"no block {name}"
    return m.group(1)


def test_report_draws_plots_and_tables_from_the_json_and_says_what_is_missing(tmp_path, capsys):
    results, img, doc = tmp_path / "results", tmp_path / "img", tmp_path / "benchmarks.md"
    write(results, "storage.json", storage())
    write(results, "peers-sqlite-vec.json", sqlite_vec())
    write(results, "scale.json", scale())
    write(results, "loadtest/summary.json", loadtest())
    write(results, "something-else.json", {"x": 1})
    doc.write_text(
        "# Benchmarks\n\nHand-written prose stays.\n\n<!-- figures:sqlite-vec -->\nstale\n"
        "<!-- /figures:sqlite-vec -->\n\nMore prose.\n\n<!-- figures:cluster -->\n<!-- /figures:cluster -->\n"
        "<!-- figures:storage -->\n<!-- /figures:storage -->\n<!-- figures:targets -->\n"
        "<!-- /figures:targets -->\n<!-- figures:index -->\n<!-- /figures:index -->\n"
    )
    args = ["--results", str(results), "--out", str(img), "--doc", str(doc)]
    assert report.main(args) == 0
    out = capsys.readouterr().out

    for name in (
        "storage-write-path",
        "storage-wake-create",
        "recall-vs-sqlite-vec",
        "recall-latency-vs-sqlite-vec",
        "scale-growth",
        "loadtest",
    ):
        png = img / f"{name}.png"
        assert png.read_bytes()[:8] == PNG, name
    assert not (img / "cluster-failover.png").exists()

    text = doc.read_text()
    assert "Hand-written prose stays." in text and "More prose." in text and "stale" not in text
    sv = block(text, "sqlite-vec")
    assert "| R@5 | 0.6100 | 0.4000 |" in sv  # memoturn first, then the peer, as the JSON says
    assert "| recall, search only, p50 ms | 3.30 | 0.70 |" in sv
    assert "4/4" in sv and "![LoCoMo recall, Memoturn vs sqlite-vec](img/recall-vs-sqlite-vec.png)" in sv
    st = block(text, "storage")
    assert "| Memoturn KV put, durable, S3 (MinIO) | 10 | 11 | 33 |" in st
    # Targets: met and missed straight from the JSON (create 1.7 ms > 1 ms).
    tg = block(text, "targets")
    assert re.search(r"create database p50, file store, ms \| 1.70 \| ≤ 1.0 \| \*\*missed\*\*", tg)
    assert re.search(r"durable put p50, S3 \(MinIO\), ms \| 11 \| ≤ 15.0 \| \*\*met\*\*", tg)
    assert re.search(r"peak RSS with 4,000 databases, MiB \| 212 \| ≤ 1,024 \| \*\*met\*\*", tg)
    # A missing file: said on stdout and in its block, not a crash.
    assert "missing:" in out and "cluster.json" in out
    assert "_Missing:" in block(text, "cluster") and "python -m bench.cluster" in block(text, "cluster")
    idx = block(text, "index")
    assert re.search(r"cluster\.json` \| \*\*missing\*\*", idx) and "Not charted: `something-else.json`" in idx
    # Blocks the doc lacks are reported, not added.
    assert "has no block <!-- figures:memory -->" in out

    # Idempotent, and --check notices a result that changed.
    assert report.main(args) == 0 and doc.read_text() == text
    assert report.main(args + ["--check"]) == 0
    changed = sqlite_vec()
    changed["systems"]["memoturn"]["r_at_5"] = 0.62
    write(results, "peers-sqlite-vec.json", changed)
    assert report.main(args + ["--check"]) == 1
    assert doc.read_text() == text


def test_an_unreadable_result_is_an_error_that_spares_the_other_blocks(tmp_path, capsys):
    results, img, doc = tmp_path / "results", tmp_path / "img", tmp_path / "new" / "benchmarks.md"
    write(results, "storage.json", storage())
    write(results, "memory.json", "{not json")
    write(results, "cluster.json", {"gateway_overhead_kv_get": {"direct": {}}})  # unexpected shape
    assert report.main(["--results", str(results), "--out", str(img), "--doc", str(doc)]) == 1
    err = capsys.readouterr().err
    assert "memory.json: cannot read" in err and "cluster:" in err
    text = doc.read_text()  # created with every block
    for name in report.SECTIONS:
        assert f"<!-- figures:{name} -->" in text
    assert "**unreadable**" in block(text, "index")
    assert "Could not render" in block(text, "cluster")
    assert "| plain SQLite commit, WAL, synchronous=FULL |" in block(text, "storage")
    assert (img / "storage-write-path.png").read_bytes()[:8] == PNG


def test_the_benchmarks_doc_has_every_block_the_report_writes():
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    for name in report.SECTIONS:
        assert text.count(f"<!-- figures:{name} -->") == 1 and text.count(f"<!-- /figures:{name} -->") == 1, name
