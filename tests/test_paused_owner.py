"""A paused owner never acknowledges a write it committed under an ownership that moved on.

The owner is frozen (SIGSTOP) while a SQL batch runs; its lease expires, another node takes
the branch over and writes the same txids; then the owner resumes and its batch commits
locally. Acknowledging it would name, with one txid, a commit that is not the one in the
store (DESIGN 13). Real memoturnd processes, real etcd and MinIO.
"""

from __future__ import annotations

import signal
import threading
import time

import httpx
from memoturn.storage.manifest import load_manifest
from memoturn.storage.store import open_store
from support.cluster import Cluster, until_status

TTL = 3
SLOW = (
    "INSERT INTO t SELECT count(*) FROM (WITH RECURSIVE c(x) AS "
    "(SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 4000000) SELECT x FROM c)"
)


def test_a_paused_owner_does_not_acknowledge_after_its_ownership_moved(tmp_path, etcd, minio):
    c = Cluster(tmp_path, etcd, minio, nodes=2, ttl=TTL, env={"MEMOTURN_STATEMENT_TIMEOUT_SECONDS": "60"})
    try:
        gw = c.gateway.client
        gw.post("/v1/databases", json={"name": "p"})
        assert gw.post("/v1/databases/p/sql", json={"statements": [{"sql": "CREATE TABLE t(n)"}]}).status_code == 200
        owner_id = c.gateway.wait_owner("p")
        owner = c.nodes[owner_id]
        heir = next(n for i, n in c.nodes.items() if i != owner_id)
        answer: list = []
        t = threading.Thread(
            target=lambda: answer.append(
                httpx.post(f"{owner.url}/v1/databases/p/sql", json={"statements": [{"sql": SLOW}]}, timeout=120)
            )
        )
        t.start()
        time.sleep(0.3)  # the batch is running in the owner's SQL worker
        owner.proc.send_signal(signal.SIGSTOP)
        try:
            r = until_status(lambda: heir.client.put("/v1/databases/p/kv/heir", json={"value": 1}), 200, TTL + 20)
            assert r.status_code == 200, r.text
            for i in range(3):
                assert heir.client.put(f"/v1/databases/p/kv/heir{i}", json={"value": i}).status_code == 200
        finally:
            owner.proc.send_signal(signal.SIGCONT)
        t.join(timeout=120)
        r = answer[0]
        assert r.status_code in (409, 503), f"the paused owner acknowledged: {r.status_code} {r.text}"
        assert r.json()["type"] in ("lease-lost", "not-owner", "fenced")
        time.sleep(1.0)
        manifest, _ = load_manifest(open_store(c.store_url), "p", "main")
        assert manifest.owner != owner_id
        rows = heir.client.post("/v1/databases/p/sql", json={"statements": [{"sql": "SELECT count(*) FROM t"}]})
        assert rows.json()["results"][0]["rows"] == [[0]]  # the unacknowledged batch never landed
    finally:
        c.close()
