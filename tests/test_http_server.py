"""memoturnd and the gateway behind either HTTP server (``MEMOTURN_HTTP_SERVER``): the same API, the same
problem bodies, and a graceful stop on SIGTERM (the app's shutdown runs and ships every committed txid)."""

from __future__ import annotations

import signal

import pytest
from support.cluster import Cluster
from support.nodes import Memoturnd


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_the_api_answers_the_same_behind_each_http_server(server, tmp_path):
    node = Memoturnd(str(tmp_path / "n"), f"file://{tmp_path}/store", env={"MEMOTURN_HTTP_SERVER": server})
    try:
        node.wait_ready()
        c = node.client
        assert c.post("/v1/databases", json={"name": "hs"}).status_code == 201
        put = c.put("/v1/databases/hs/kv/a/b", json={"value": {"x": 1}})
        assert put.status_code == 200 and put.json()["txid"] >= 1
        got = c.get("/v1/databases/hs/kv/a/b", headers={"Memoturn-Min-Txid": str(put.json()["txid"])})
        assert got.json()["value"] == {"x": 1} and got.headers["memoturn-txid"]
        bad = c.put("/v1/databases/hs/kv/k", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code in (400, 422) and bad.headers["content-type"] == "application/problem+json"
        missing = c.get("/v1/databases/hs/kv/nope")
        assert missing.status_code == 404 and missing.json()["type"] == "key-not-found"
        big = c.put("/v1/databases/hs/kv/big", json={"value": "x" * (64 * 1024**2)})
        assert big.status_code == 413
        node.proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown (exit status -15); the
        # node's own shutdown, which ships every committed txid, has run either way.
        assert node.proc.wait(timeout=60) in (0, -signal.SIGTERM)
        assert "stopped; every committed txid is in object storage" in open(node.log_path).read()
    finally:
        node.close()
    # Restarted on the same directory and store: the write is there.
    again = Memoturnd(str(tmp_path / "n"), f"file://{tmp_path}/store", env={"MEMOTURN_HTTP_SERVER": server})
    try:
        again.wait_ready()
        assert again.client.get("/v1/databases/hs/kv/a/b").json()["value"] == {"x": 1}
    finally:
        again.close()


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_a_gateway_routes_the_same_behind_each_http_server(server, tmp_path, etcd, minio):
    env = {"MEMOTURN_HTTP_SERVER": server}
    cluster = Cluster(tmp_path, etcd, minio, nodes=1, env=env, gateway_env=env)
    try:
        gw = cluster.gateway.client
        assert gw.post("/v1/databases", json={"name": "gs"}).status_code == 201
        put = gw.put("/v1/databases/gs/kv/k", json={"value": 7})
        assert put.status_code == 200
        got = gw.get("/v1/databases/gs/kv/k", headers={"Memoturn-Min-Txid": str(put.json()["txid"])})
        assert got.json()["value"] == 7
        missing = gw.get("/v1/databases/gs/kv/nope")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        assert 'memoturn_gateway_request_seconds_count{method="PUT",status="200"}' in gw.get("/metrics").text
    finally:
        cluster.close()
