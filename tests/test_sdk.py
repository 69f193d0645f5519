"""The Python SDK against a real memoturnd process, sync and async."""

from __future__ import annotations

import asyncio

import pytest
from memoturn.client import AsyncMemoturn, Memoturn, ProblemError
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
        with pytest.raises(ProblemError) as exc:
            db.kv_get("missing")
        assert exc.value.status == 404 and exc.value.type == "key-not-found"
        with pytest.raises(ProblemError) as exc:
            db.sql("SELECT * FROM __memoturn_kv")
        assert exc.value.status == 403 and exc.value.type == "reserved-table"
    with pytest.raises(ProblemError) as exc:
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


def test_branches_from_the_sdk_and_the_cli(daemon):
    import json
    import subprocess
    import sys

    with Memoturn(daemon.url) as mt:
        mt.create_database("br")
        main = mt.database("br")
        main.kv_put("a", 1)
        assert main.checkpoint("one")["txid"] >= 1
        main.kv_put("a", 2)
        fork = main.fork("exp", checkpoint="one")
        assert fork["parent"]["branch"] == "main"
        exp = mt.database("br", "exp")
        assert exp.kv_get("a")["value"] == 1
        exp.kv_put("b", 3)
        assert main.kv_get("a")["value"] == 2
        main.rewind(checkpoint="one")
        assert main.kv_get("a")["value"] == 1
        main.undo_rewind()
        assert main.kv_get("a")["value"] == 2
        assert {b["branch"] for b in main.branches()["branches"]} == {"main", "exp"}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "memoturn.cli", "--url", daemon.url, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = cli("branch", "fork", "br", "scratch", "--ttl", "600")
    assert r.returncode == 0 and "forked br/scratch from main@" in r.stdout, r.stderr
    r = cli("branch", "list", "br")
    assert "scratch" in r.stdout and "(burner)" in r.stdout
    assert cli("checkpoint", "create", "br", "main", "two").returncode == 0
    assert "two" in json.loads(cli("--json", "checkpoint", "list", "br", "main").stdout)
    r = cli("branch", "rewind", "br", "main", "--checkpoint", "nope")
    assert r.returncode == 1 and "no checkpoint" in r.stderr
    assert json.loads(cli("--json", "gc", "br", "--dry-run").stdout)["dry_run"] is True
    r = cli("branch", "policy", "br", "main", "--keep-snapshots", "4", "--retention-seconds", "86400")
    assert r.returncode == 0 and json.loads(r.stdout)["keep_snapshots"] == 4, r.stderr
    r = cli("branch", "policy", "br", "main", "--keep-snapshots", "0")
    assert r.returncode == 1 and "422" in r.stderr
    assert cli("branch", "delete", "br", "scratch").returncode == 0


def test_the_sdk_never_retries_a_write_whose_outcome_is_unknown():
    """A refusal that names a txid was committed: the SDK raises it instead of sending it again."""
    import http.server
    import json as _json
    import threading

    from memoturn.client import Memoturn, ProblemError

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802 - the http.server naming
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append(self.path.split("?")[0])
            with_txid = "unknown" in self.path
            if with_txid or len(seen) == 1:
                body = {"type": "lease-lost", "title": "x", "status": 503, "detail": "lapsed"}
                if with_txid:
                    body["txid"] = 7
                status = 503
            else:
                body, status = {"key": "k", "txid": 8}, 200
            data = _json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/problem+json" if status == 503 else "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("memoturn-txid", str(body["txid"]) if "txid" in body else "0")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        db = Memoturn(f"http://127.0.0.1:{server.server_address[1]}", retries=3, backoff=0.01).database("x")
        with pytest.raises(ProblemError) as exc:
            db.kv_put("unknown", 1)
        assert exc.value.type == "lease-lost" and exc.value.txid == 7
        assert seen == ["/v1/databases/x/kv/unknown"]  # sent once
        seen.clear()
        db.kv_put("retried", 1)  # no txid: nothing was applied, so the SDK retries
        assert seen == ["/v1/databases/x/kv/retried"] * 2
    finally:
        server.shutdown()
