"""A history-checked fault test (Jepsen's approach), short enough for CI.

Four clients write durable KV puts and SQL inserts of unique keys and read their own writes
back with ``Memoturn-Min-Txid`` through the gateway of a 3-node cluster (real etcd, MinIO and
memoturnd processes), recording every operation and its outcome; meanwhile the nemesis kills
nodes with -9 (restarted on their data directory and on an empty one), freezes an owner past
its lease TTL, restarts etcd and MinIO, and fills one node's cache filesystem. After healing,
the checker (``tests/support/history.py``) must find no anomaly. ``make soak`` runs the same
for ten minutes or more (``bench/soak.py``).
"""

from __future__ import annotations

import json

import pytest
from support.history import KINDS, History, check, run_history

TTL = 3


def _op(h: History, client, kind, db, key, value=None, *, outcome="ok", txid=None, **fields):
    op = h.invoke(client, kind, db, key, value, **fields)
    op.end, op.outcome, op.txid = op.start + 0.01, outcome, txid
    return op


def test_the_checker_finds_each_kind_of_anomaly():
    """The checker on hand-made histories: a clean one passes, each planted fault is named."""
    h = History()
    _op(h, "c0", "put", "d", "k1", "v1", txid=2)
    _op(h, "c0", "get", "d", "k1", txid=2, min_txid=2, found=True, read_value="v1")
    _op(h, "c0", "sql-insert", "d", "s1", "w1", txid=3)
    _op(h, "c0", "put", "d", "k9", "v9", outcome="fail", status=503, problem="no-route")
    final = {"d": {"kv": {"k1": "v1"}, "sql": {"s1": "w1"}, "sql_duplicates": {}}}
    cuts = [
        {"db": "d", "txid": 2, "kv": {"k1": "v1"}, "sql": {}},
        {"db": "d", "txid": 3, "kv": {"k1": "v1"}, "sql": {"s1": "w1"}},
    ]
    assert check(h, {"final": final, "cuts": cuts}) == []

    _op(h, "c1", "put", "d", "lost", "x", txid=4)  # (a) acknowledged, then gone
    _op(h, "c1", "put", "d", "twin", "y", txid=3)  # (b) txid 3 is also s1's
    _op(h, "c0", "get", "d", "k1", txid=1, min_txid=3, found=True, read_value="v1")  # (c) below Min-Txid, back in time
    _op(h, "c0", "get", "d", "k1", txid=5, min_txid=3, found=False)  # (c) own acknowledged write absent
    ev = h.event("pause", node="n0", db="d", moved=True, heir="n1")
    ev["paused_at"] = ev["resumed_at"] = ev["end"] = ev["start"]
    _op(h, "probe", "probe-put", "d", "p1", "p1", txid=6, node="n0", tag=f"pause#{ev['id']}")  # (d)
    final["d"]["kv"].update({"k9": "v9", "twin": "y", "p1": "p1"})  # (e) k9 was "not applied"
    final["d"]["sql_duplicates"] = {"s1": 2}  # (e) ran twice
    found = check(h, {"final": final, "cuts": cuts})
    by = {}
    for a in found:
        by.setdefault(a["check"], []).append(a["detail"])
    assert any("lost" in d and "missing" in d for d in by["a-durability"]), by
    assert any("txid 3 acknowledged for 2" in d for d in by["b-txid-unique"]), by
    assert any("store: d at txid 3 lacks twin" in d for d in by["b-txid-unique"]), by  # the store says txid 3 is s1
    assert any("Memoturn-Min-Txid 3 answered txid 1" in d for d in by["c-monotonic"]), by
    assert any("go back" in d for d in by["c-monotonic"]), by
    assert any("as absent" in d for d in by["c-monotonic"]), by
    assert len(by["d-paused-owner"]) == 1, by
    assert any("k9" in d for d in by["e-not-applied"]) and any("2 times" in d for d in by["e-not-applied"]), by


@pytest.mark.slow
def test_history_under_faults_has_no_anomalies(tmp_path):
    results = run_history(
        tmp_path, duration=70, clients=4, nodes=3, ttl=TTL, dbs=4, rounds=1, gap=(2.0, 3.0), cuts_per_db=2
    )
    history = results.pop("history")
    path = tmp_path / "history.json"
    path.write_text(json.dumps({**results, **history.to_json()}, indent=1))
    summary = {
        k: results[k]
        for k in (
            "seed",
            "wall_seconds",
            "ops_seconds",
            "recovery_seconds",
            "observe_seconds",
            "operations",
            "acknowledged_writes",
        )
    }
    print(f"\n{json.dumps(summary)}\nhistory: {path}")
    for ev in results["events"]:
        print(f"  event {ev['kind']}: " + json.dumps({k: v for k, v in ev.items() if k not in ("kind",)}))

    anomalies = results["anomalies"]
    assert not anomalies, f"{len(anomalies)} anomalies (seed {results['seed']}, full history in {path}):\n" + "\n".join(
        json.dumps(a) for a in anomalies[:20]
    )
    # Not vacuous: every fault happened (disk-full only where a filesystem can be mounted),
    # writes were acknowledged around them, and the store was checked at points in time.
    kinds = {ev["kind"] for ev in results["events"] if not ev.get("skipped")}
    skipped = {ev["kind"]: ev["skipped"] for ev in results["events"] if ev.get("skipped")}
    assert kinds | set(skipped) == set(KINDS) and set(skipped) <= {"disk-full"}, (kinds, skipped)
    pauses = [ev for ev in results["events"] if ev["kind"] == "pause"]
    assert all(ev["moved"] for ev in pauses), "the frozen owner's database never moved: (d) checked nothing"
    ops = results["operations"]
    assert results["acknowledged_writes"] >= 150, ops
    assert ops.get("get", {}).get("ok", 0) >= 50, ops
    assert ops.get("sql-insert", {}).get("ok", 0) >= 20, ops
    assert len(results["cuts_checked"]) >= 4, results["notes"]
