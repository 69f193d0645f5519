"""The Python SDK against a real memoturnd process, sync and async."""

from __future__ import annotations

import asyncio

import pytest

from memoturn.client import AsyncMemoturn, Memoturn, MemoturnError
from support.nodes import Memoturnd


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    data = tmp_path_factory.mktemp("sdk")
    proc = Memoturnd(str(data), f"file://{data}/store")
    proc.wait_ready()
    yield proc
    proc.close()


def test_sync_client_memories_kv_sql_and_errors(daemon):
    with Memoturn(daemon.url) as mt:
        alice = mt.profile("acme", "alice")
        first = alice.add("Alice prefers green tea", type="preference", subject="drink", tags=["food"])
        assert first.txid and first["memory"]["current"] is True
        second = alice.add("Alice now drinks black coffee", type="preference", subject="drink", durability="durable")
        hits = alice.recall("what does Alice drink?", min_txid=second.txid)
        assert hits.txid >= second.txid
        assert [h["memory"]["content"] for h in hits["results"]] == ["Alice now drinks black coffee"]
        history = alice.history(second["memory"]["id"]).data
        assert [m["content"] for m in history] == ["Alice prefers green tea", "Alice now drinks black coffee"]
        assert alice.stats()["current"] == 1
        alice.forget(first["memory"]["id"])
        assert len(alice.list(include_superseded=True)["memories"]) == 1

        mt.create_database("sdk-db")
        db = mt.database("sdk-db")
        put = db.kv_put("k", {"v": 1}, ttl_seconds=60)
        assert db.kv_get("k", min_txid=put.txid)["value"] == {"v": 1}
        rows = db.sql("CREATE TABLE t(x)", ("INSERT INTO t VALUES (?)", [5]), "SELECT x FROM t")
        assert rows["results"][2]["rows"] == [[5]]
        with pytest.raises(MemoturnError) as exc:
            db.kv_get("missing")
        assert exc.value.status == 404 and exc.value.type == "key-not-found"
        with pytest.raises(MemoturnError) as exc:
            db.sql("SELECT * FROM __memoturn_kv")
        assert exc.value.status == 403 and exc.value.type == "reserved-table"
    with pytest.raises(MemoturnError) as exc:
        Memoturn("http://127.0.0.1:9", retries=1).database("x").kv_get("y")
    assert exc.value.type == "unreachable"


def test_async_client(daemon):
    async def go():
        async with AsyncMemoturn(daemon.url) as mt:
            bob = mt.profile("acme", "bob")
            stored = await bob.add("Bob plays chess on Sundays", type="fact")
            hits = await bob.recall("which game does Bob play?", min_txid=stored.txid)
            assert hits["results"][0]["memory"]["content"] == "Bob plays chess on Sundays"
            await mt.create_database("async-db")
            db = mt.database("async-db")
            await db.kv_put("a", 1)
            assert (await db.kv_get("a"))["value"] == 1

    asyncio.run(go())
