"""SIGKILL a writing memoturnd at random points; a fresh node restores every acknowledged
durable write, the database is intact and the txid chain is unbroken. Twenty times."""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest
from memoturn.storage.manifest import load_manifest
from support.nodes import Memoturnd, integrity, make_node

ROUNDS = 20


def _writer(client: httpx.Client, db: str, acked: list, stop: threading.Event) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        try:
            if i % 3:
                r = client.put(f"/v1/databases/{db}/kv/k{i}", json={"value": {"i": i, "pad": "p" * (i % 700)}})
            else:
                r = client.post(
                    f"/v1/databases/{db}/sql",
                    json={
                        "statements": [
                            {"sql": "CREATE TABLE IF NOT EXISTS log(i INTEGER PRIMARY KEY, body BLOB)"},
                            {"sql": "INSERT INTO log VALUES (?, randomblob(?))", "params": [i, 3000 + i % 9000]},
                        ]
                    },
                )
        except httpx.TransportError:
            return  # the process is gone: nothing more can be acknowledged
        if r.status_code == 200:
            acked.append((i, int(r.headers["Memoturn-Txid"])))


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "rounds"), [("s3", ROUNDS), ("azure", 1)])
def test_sigkill_during_durable_writes_loses_no_acknowledged_write(tmp_path, backend, rounds, request):
    rng = random.Random(20)
    store = request.getfixturevalue(f"{backend}_store")  # the node's own client (obstore), MinIO or Azurite
    store_url = store.url
    for round_ in range(rounds):
        db = f"crash-{round_}"
        proc = Memoturnd(
            str(tmp_path / f"writer-{round_}"),
            store_url,
            env={"MEMOTURN_DURABILITY": "durable", "MEMOTURN_SNAPSHOT_EVERY_TXIDS": "40"},
        )
        try:
            proc.wait_ready()
            assert proc.client.post("/v1/databases", json={"name": db}).status_code == 201
            acked: list[tuple[int, int]] = []
            stop = threading.Event()
            t = threading.Thread(target=_writer, args=(proc.client, db, acked, stop))
            t.start()
            time.sleep(rng.uniform(0.2, 1.5))
            proc.kill(9)
            stop.set()
            t.join(timeout=30)
        finally:
            proc.close()
        assert acked, f"round {round_}: no write was acknowledged before the kill"

        manifest, _ = load_manifest(store, db, "main")
        assert manifest.head_txid >= max(txid for _, txid in acked)
        fresh = make_node(tmp_path, store, name=f"fresh-{round_}")
        try:
            handle = fresh.open(db)
            assert integrity(handle.path) == "ok"
            kv_keys = {f"k{i}" for i, _ in acked if i % 3}
            log_ids = {i for i, _ in acked if not i % 3}
            got_kv = {r[0] for r in handle.conn.execute("SELECT key FROM __memoturn_kv").fetchall()}
            assert kv_keys <= got_kv, f"round {round_}: lost {sorted(kv_keys - got_kv)[:5]}"
            if log_ids:
                got_log = {r[0] for r in handle.conn.execute("SELECT i FROM log").fetchall()}
                assert log_ids <= got_log
            # The chain in the manifest is contiguous from the base snapshot to the head.
            base = max((s.txid for s in manifest.snapshots), default=0)
            expected = base + 1 if manifest.snapshots else 1
            for seg in sorted(manifest.segments, key=lambda s: s.first_txid):
                if seg.last_txid < expected:
                    continue
                assert seg.first_txid <= expected, f"round {round_}: gap before txid {seg.first_txid}"
                expected = seg.last_txid + 1
            assert expected == manifest.head_txid + 1
        finally:
            fresh.stop()
