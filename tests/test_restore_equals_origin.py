"""A randomized workload, restored on a fresh node at many txids, equals the origin."""

from __future__ import annotations

import os
import random

import pytest
from memoturn.storage.manifest import load_manifest
from memoturn.storage.restore import resolve_txid_at, restore
from memoturn.storage.snapshotting import maybe_snapshot
from support.nodes import dump, integrity, make_node


def _workload(rng: random.Random, n_ops: int):
    """Yield (description, fn, autocommit) write operations over a few user tables."""
    tables: dict[str, list[str]] = {}
    counter = 0
    for _ in range(n_ops):
        counter += 1
        choice = rng.random()
        if not tables or choice < 0.08:
            name = f"t{counter}"
            tables[name] = ["a", "b"]
            yield (
                f"create {name}",
                (lambda n=name: lambda c: c.execute(f"CREATE TABLE {n}(id INTEGER PRIMARY KEY, a TEXT, b BLOB)"))(),
                False,
            )
            continue
        name = rng.choice(sorted(tables))
        if choice < 0.50:
            rows = [
                (rng.choice(["x", "y", None, "z" * rng.randint(1, 300)]), os.urandom(rng.choice([0, 10, 5000, 70000])))
                for _ in range(rng.randint(1, 8))
            ]
            yield (
                f"insert {name}",
                (lambda n=name, r=rows: lambda c: [c.execute(f"INSERT INTO {n}(a, b) VALUES (?, ?)", x) for x in r])(),
                False,
            )
        elif choice < 0.65:
            v = rng.choice(["u", "v" * 2000])
            yield (
                f"update {name}",
                (lambda n=name, v=v: lambda c: c.execute(f"UPDATE {n} SET a = ? WHERE id % 3 = 0", (v,)))(),
                False,
            )
        elif choice < 0.78:
            yield f"delete {name}", (lambda n=name: lambda c: c.execute(f"DELETE FROM {n} WHERE id % 2 = 1"))(), False
        elif choice < 0.85:
            col = f"c{counter}"
            tables[name].append(col)
            yield (
                f"alter {name}",
                (lambda n=name, col=col: lambda c: c.execute(f"ALTER TABLE {n} ADD COLUMN {col} INTEGER DEFAULT 7"))(),
                False,
            )
        elif choice < 0.90:
            yield (
                f"index {name}",
                (lambda n=name, i=counter: lambda c: c.execute(f"CREATE INDEX IF NOT EXISTS i{i} ON {n}(a)"))(),
                False,
            )
        elif choice < 0.94 and len(tables) > 1:
            del tables[name]
            yield f"drop {name}", (lambda n=name: lambda c: c.execute(f"DROP TABLE {n}"))(), False
        else:
            yield "vacuum", (lambda c: c.execute("VACUUM")), True


@pytest.mark.parametrize("backend", ["file", "s3", "azure"])
@pytest.mark.parametrize("seed", [1, 2])
def test_restore_equals_origin_at_every_checked_txid(tmp_path, backend, seed, request):
    store = request.getfixturevalue(f"{backend}_store")
    rng = random.Random(seed)
    node = make_node(tmp_path, store, snapshot_every_txids=25, keep_snapshots=1000, wal_checkpoint_bytes=256 * 1024)
    try:
        node.create_database("prop")
        expected: dict[int, list] = {}
        times: dict[int, float] = {}
        db = node.open("prop")
        expected[db.head_txid] = dump(db.path)
        for _desc, fn, autocommit in _workload(rng, 120):
            _, txid = node.write("prop", fn, durable=False, transaction=not autocommit)
            with db.lock:
                expected[txid] = dump(db.path)
                times[txid] = db.head_ts
        head = db.head_txid
        assert node.shipper.ship_all(timeout=60)
        manifest, _ = load_manifest(store, "prop", "main")
        assert manifest.head_txid == head
        assert manifest.snapshots, "compaction should have written snapshots"
    finally:
        node.stop()

    checked = sorted(set(rng.sample(sorted(expected), min(15, len(expected)))) | {head, min(expected)})
    fresh = str(tmp_path / "fresh")
    os.makedirs(fresh)
    for txid in checked:
        path = os.path.join(fresh, f"at-{txid}.db")
        result = restore(store, manifest, path, txid=txid)
        assert result.txid == txid
        assert integrity(path) == "ok"
        assert dump(path) == expected[txid], f"restore at txid {txid} differs from the origin"
    # Point in time: the timestamp of a txid resolves to that txid.
    for txid in checked:
        if txid in times:
            assert resolve_txid_at(store, manifest, times[txid]) == txid


def test_a_snapshot_landing_with_a_segment_never_drops_that_segment(tmp_path, file_store):
    """Regression (found by the GC property test): a pending snapshot that lands in the same
    manifest CAS as a segment, and prunes older segments, must keep the segment it lands with."""
    from memoturn.data import kv

    node = make_node(tmp_path, file_store, ship_workers=0, keep_snapshots=1, snapshot_every_txids=10**6)
    try:
        node.create_database("snap")

        def put(k: str) -> None:
            node.write("snap", lambda c: kv.put(c, k, '"v"', None))

        db = node.open("snap")
        put("a")
        node.shipper.ship(db.log)
        assert maybe_snapshot(
            db.log, db.take_snapshot, node.settings, node.metrics, force=True
        )  # lands at once (head shipped)
        put("b")
        assert maybe_snapshot(
            db.log, db.take_snapshot, node.settings, node.metrics, force=True
        )  # ahead of the manifest: pending
        assert db.log.pending_snapshot is not None
        put("c")
        node.shipper.ship(db.log)  # the segment and the pending snapshot land together
        manifest, _ = load_manifest(file_store, "snap", "main")
        assert manifest.head_txid == db.head_txid
        assert any(s.last_txid == manifest.head_txid for s in manifest.segments)
    finally:
        node.stop()
    fresh = make_node(tmp_path, file_store, name="fresh")
    try:
        keys, _ = fresh.read(
            "snap", lambda c: [r[0] for r in c.execute("SELECT key FROM __memoturn_kv ORDER BY key").fetchall()]
        )
        assert keys == ["a", "b", "c"]
    finally:
        fresh.stop()
