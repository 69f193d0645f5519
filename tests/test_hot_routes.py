"""The hot routes (:mod:`memoturn.server.api.hot`: KV GET/PUT, adding a memory) answer exactly as the FastAPI routes
they stand in front of.

Two real ``memoturnd`` processes get the same requests, one with the hot routes (the default) and
one with ``MEMOTURN_HOT_ROUTES=0``: every answer must have the same status, the same body (the
write timestamps aside) and the same ``Memoturn-*`` and content-type headers. The requests
cover what the hot routes serve themselves and every shape they hand to FastAPI (malformed and
unexpected bodies, headers to refuse or given twice, other query parameters, NUL), with
authentication on, so refusals by token are compared too.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from memoturn.config import Settings
from memoturn.server.api.app import create_app
from memoturn.server.api.hot_kv import HotKVRoute
from memoturn.server.api.hot_memory import HotMemoryRoute
from memoturn.server.node import Node
from support.nodes import Memoturnd

ADMIN = {"Authorization": "Bearer admin-secret"}
JSON = {"content-type": "application/json"}
K = "/v1/databases/hot/kv"
M = "/v1/namespaces/hotns/profiles/p1/memories"
VEC = [0.6, 0.8, 0.0]


def _requests() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx keyword arguments): served by the hot routes or handed to FastAPI."""
    big = "x" * (1024**2 + 10)
    return [
        ("PUT", f"{K}/a", {"json": {"value": {"x": [1, 2.5, "é", None, True]}}}),
        ("PUT", f"{K}/dir/sub/ü key", {"json": {"value": "nested path"}}),
        ("PUT", f"{K}/t", {"json": {"value": 1, "ttl_seconds": 3600.5}}),
        ("PUT", f"{K}/t-int", {"json": {"value": 1, "ttl_seconds": 3600}}),
        ("PUT", f"{K}/t0", {"json": {"value": 1, "ttl_seconds": 0.0}}),
        ("PUT", f"{K}/tneg", {"json": {"value": 1, "ttl_seconds": -1.5}}),
        ("PUT", f"{K}/tstr", {"json": {"value": 1, "ttl_seconds": "10"}}),
        ("PUT", f"{K}/tnull", {"json": {"value": 1, "ttl_seconds": None}}),
        ("PUT", f"{K}/extra", {"json": {"value": 1, "other": 2}}),
        ("PUT", f"{K}/novalue", {"json": {"ttl_seconds": 1.5}}),
        ("PUT", f"{K}/array", {"json": [1, 2]}),
        ("PUT", f"{K}/null-value", {"json": {"value": None}}),
        ("PUT", f"{K}/nul-in-value", {"json": {"value": "a\x00b"}}),
        ("PUT", f"{K}/big", {"json": {"value": big}}),
        ("PUT", f"{K}/malformed", {"content": b"{not json", "headers": JSON}),
        ("PUT", f"{K}/nan", {"content": b'{"value": NaN}', "headers": JSON}),
        ("PUT", f"{K}/huge-number", {"content": b'{"value": 1e999}', "headers": JSON}),
        ("PUT", f"{K}/empty", {"content": b"", "headers": JSON}),
        ("PUT", f"{K}/text", {"content": b'{"value": 1}', "headers": {"content-type": "text/plain"}}),
        ("PUT", f"{K}/no-type", {"content": b'{"value": 1}'}),
        (
            "PUT",
            f"{K}/charset",
            {"content": b'{"value": 1}', "headers": {"content-type": "application/json; charset=utf-8"}},
        ),
        ("PUT", f"{K}/durable", {"json": {"value": 1}, "headers": {"Memoturn-Durability": "durable"}}),
        ("PUT", f"{K}/standard", {"json": {"value": 1}, "headers": {"Memoturn-Durability": "standard"}}),
        ("PUT", f"{K}/bad-durability", {"json": {"value": 1}, "headers": {"Memoturn-Durability": "maybe"}}),
        (
            "PUT",
            f"{K}/twice",
            {"json": {"value": 1}, "headers": [("Memoturn-Durability", "x"), ("Memoturn-Durability", "y")]},
        ),
        ("PUT", f"{K}/q?branch=main", {"json": {"value": "on main"}}),
        ("PUT", f"{K}/q?branch=nope", {"json": {"value": 1}}),
        ("PUT", f"{K}/q?other=1", {"json": {"value": "unknown query"}}),
        ("PUT", f"{K}/q?branch=main&branch=x", {"json": {"value": 1}}),
        ("PUT", f"{K}/nul%00key", {"json": {"value": 1}}),
        ("PUT", f"{K}/q?branch=a%00b", {"json": {"value": 1}}),
        ("PUT", "/v1/databases/missing/kv/a", {"json": {"value": 1}}),
        ("PUT", "/v1/databases/Bad Name!/kv/a", {"json": {"value": 1}}),
        ("PUT", f"{K}/{'k' * 2000}", {"json": {"value": 1}}),
        ("GET", f"{K}/a", {}),
        ("GET", f"{K}/dir/sub/ü key", {}),
        ("GET", f"{K}/t", {}),
        ("GET", f"{K}/absent", {}),
        ("GET", f"{K}/a?branch=main", {}),
        ("GET", f"{K}/a?branch=nope", {}),
        ("GET", f"{K}/a?x=1", {}),
        ("GET", f"{K}/a", {"headers": {"Memoturn-Min-Txid": "1"}}),
        ("GET", f"{K}/a", {"headers": {"Memoturn-Min-Txid": "0"}}),
        ("GET", f"{K}/a", {"headers": {"Memoturn-Min-Txid": "007"}}),
        ("GET", f"{K}/a", {"headers": {"Memoturn-Min-Txid": "999999"}}),
        ("GET", f"{K}/a", {"headers": {"Memoturn-Min-Txid": "-1"}}),
        ("GET", f"{K}/a", {"headers": {"Memoturn-Min-Txid": "1_0"}}),
        ("GET", f"{K}/a", {"headers": {"Memoturn-Min-Txid": "+2"}}),
        ("GET", f"{K}/a", {"headers": {"Memoturn-Min-Txid": "abc"}}),
        ("GET", f"{K}/a", {"headers": {"Memoturn-Min-Txid": "9" * 30}}),
        ("GET", f"{K}/a", {"headers": [("Memoturn-Min-Txid", "1"), ("Memoturn-Min-Txid", "2")]}),
        ("GET", f"{K}/a", {"headers": {"Memoturn-Read": "primary"}}),
        ("GET", f"{K}/a", {"headers": {"Memoturn-Read": "replica"}}),
        ("GET", f"{K}/a", {"headers": {"Memoturn-Read": "sometimes"}}),
        ("GET", f"{K}/nul%00key", {}),
        ("GET", "/v1/databases/missing/kv/a", {}),
        ("GET", f"{K}/{'k' * 2000}", {}),
        ("HEAD", f"{K}/a", {}),
        ("DELETE", f"{K}/standard", {}),
        ("GET", f"{K}/standard", {}),
        ("POST", f"{K}/a", {"json": {"value": 1}}),
        ("POST", M, {"json": {"content": "likes tea", "embedding": VEC}}),
        ("POST", M, {"json": {"content": "likes tea", "embedding": VEC}}),  # the duplicate
        (
            "POST",
            M,
            {
                "json": {
                    "content": "moved to Oslo",
                    "type": "event",
                    "subject": "home",
                    "tags": ["move", "é"],
                    "metadata": {"k": [1, None, "v"]},
                    "event_time": "2026-01-02T03:04:05Z",
                    "embedding": [0.0, 1.0, 0.0],
                }
            },
        ),
        ("POST", M, {"json": {"content": "moved to Bergen", "subject": "home", "embedding": VEC}}),  # supersedes
        ("POST", M, {"json": {"content": "x", "supersedes": "no-such-id", "embedding": VEC}}),
        ("POST", M, {"json": {"content": "x", "type": "Bad Type", "embedding": VEC}}),
        ("POST", M, {"json": {"content": "", "embedding": VEC}}),
        ("POST", M, {"json": {"content": "x", "embedding": [1.0, 0.0]}}),  # another dimension
        ("POST", M, {"json": {"content": "x", "embedding": [0.0, 0.0, 0.0]}}),
        ("POST", M, {"json": {"content": "x", "embedding": VEC, "unknown": 1}}),
        ("POST", M, {"json": {"content": "x", "embedding": VEC, "event_time": "yesterday"}}),
        ("POST", M, {"json": {"content": "x\u0000y", "embedding": VEC}}),
        ("POST", M, {"json": {"content": "durable", "embedding": VEC}, "headers": {"Memoturn-Durability": "durable"}}),
        ("POST", M, {"json": {"content": "maybe", "embedding": VEC}, "headers": {"Memoturn-Durability": "maybe"}}),
        ("POST", M, {"content": b'{"content": "x", "embedding": [NaN, 1, 0]}', "headers": JSON}),
        ("POST", M, {"content": b"[1]", "headers": JSON}),
        ("POST", M, {"content": b"", "headers": JSON}),
        (
            "POST",
            M,
            {"content": b'{"content": "text", "embedding": [1, 0, 0]}', "headers": {"content-type": "text/plain"}},
        ),
        ("POST", M + "?branch=main", {"json": {"content": "on main", "embedding": VEC}}),
        ("POST", M + "?branch=nope", {"json": {"content": "on nope", "embedding": VEC}}),
        ("POST", M + "?x=1", {"json": {"content": "query", "embedding": VEC}}),
        ("POST", "/v1/namespaces/Bad NS/profiles/p1/memories", {"json": {"content": "x", "embedding": VEC}}),
        ("POST", "/v1/namespaces/hotns/profiles/p%00x/memories", {"json": {"content": "x", "embedding": VEC}}),
        (
            "POST",
            "/v1/namespaces/hotns/profiles/" + "p" * 300 + "/memories",
            {"json": {"content": "x", "embedding": VEC}},
        ),
        ("POST", M, {"json": {"content": "someone else's", "embedding": VEC}, "auth": "Bearer token-a"}),
        ("GET", f"{K}/a", {"auth": None}),
        ("PUT", f"{K}/a", {"json": {"value": 2}, "auth": "Bearer token-a"}),
        ("GET", f"{K}/a", {"auth": "Bearer wrong"}),
    ]


def _answer(client: httpx.Client, method: str, path: str, kw: dict[str, Any]) -> tuple[Any, ...]:
    kw = dict(kw)
    headers: Any = kw.pop("headers", {})
    headers = list(headers.items()) if isinstance(headers, dict) else list(headers)
    auth = kw.pop("auth", "Bearer admin-secret")
    if auth is not None:
        headers.append(("Authorization", auth))
    r = client.request(method, path, headers=headers, **kw)
    try:
        body: Any = r.json()
    except json.JSONDecodeError:
        body = r.text
    if isinstance(body, dict):  # when a write happened, and a new memory's id, differ between the two processes
        body = _same_apart_from_time_and_ids(body)
    seen = {
        k: v for k, v in r.headers.items() if k.startswith("memoturn-") or k in ("content-type", "www-authenticate")
    }
    return r.status_code, body, sorted(seen.items())


_VARYING = ("updated_at", "expires_at", "recorded_at", "valid_from", "valid_to", "id", "supersedes", "superseded_by")


def _same_apart_from_time_and_ids(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in body.items():
        if isinstance(v, dict):
            out[k] = _same_apart_from_time_and_ids(v)
        else:
            out[k] = (v is not None) if k in _VARYING else v
    return out


@pytest.fixture
def nodes(tmp_path):
    env = {"MEMOTURN_ADMIN_TOKEN": "admin-secret", "MEMOTURN_TOKENS": "nsa:token-a"}
    hot = Memoturnd(str(tmp_path / "hot"), f"file://{tmp_path}/store-hot", env=env)
    base = Memoturnd(str(tmp_path / "base"), f"file://{tmp_path}/store-base", env={**env, "MEMOTURN_HOT_ROUTES": "0"})
    try:
        hot.wait_ready()
        base.wait_ready()
        yield hot, base
    finally:
        hot.close()
        base.close()


def test_hot_routes_answer_as_fastapi_does(nodes):
    hot, base = nodes
    for node in nodes:
        assert node.client.post("/v1/databases", json={"name": "hot"}, headers=ADMIN).status_code == 201
    for method, path, kw in _requests():
        a, b = _answer(hot.client, method, path, kw), _answer(base.client, method, path, kw)
        assert a == b, f"{method} {path} {kw.get('headers') or ''}: hot {a!r} != FastAPI {b!r}"
    # What was written through either path reads back the same, at the same txid.
    for node in nodes:
        got = node.client.get(f"{K}/a", headers=ADMIN)
        assert got.json()["value"] == {"x": [1, 2.5, "é", None, True]}
        assert got.headers["memoturn-txid"] == hot.client.get(f"{K}/a", headers=ADMIN).headers["memoturn-txid"]
    # The same memories (ordered by their random ids: sorted here), current or superseded alike.
    listed = [
        sorted(
            (m["content"], m["current"])
            for m in node.client.get(M + "?include_superseded=true", headers=ADMIN).json()["memories"]
        )
        for node in nodes
    ]
    assert listed[0] == listed[1] and ("moved to Bergen", True) in listed[0] and ("moved to Oslo", False) in listed[0]
    # Requests through either path are measured under the route's template.
    for node in nodes:
        metrics = node.client.get("/metrics", headers=ADMIN).text
        assert 'method="PUT",route="/v1/databases/{db}/kv/{key:path}",status="200"' in metrics
        assert 'method="POST",route="/v1/namespaces/{namespace}/profiles/{profile}/memories",status="201"' in metrics


def test_the_hot_route_comes_first_and_takes_only_what_it_serves(tmp_path):
    node = Node(Settings(data_dir=str(tmp_path / "n"), node_id="n"))
    app = create_app(node, manage_lifecycle=False)
    memory, first = app.router.routes[:2]
    assert isinstance(first, HotKVRoute) and isinstance(memory, HotMemoryRoute)
    post = {"type": "http", "method": "POST", "root_path": "", "query_string": b"", "headers": []}
    assert memory.matches({**post, "path": "/v1/namespaces/n/profiles/p/memories"})[0].name == "FULL"
    assert memory.matches({**post, "path": "/v1/namespaces/n/profiles/p/memories/batch"})[0].name == "NONE"
    assert memory.matches({**post, "method": "GET", "path": "/v1/namespaces/n/profiles/p/memories"})[0].name == "NONE"

    def scope(method: str, path: str) -> dict[str, Any]:
        return {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b"", "headers": []}

    assert first.matches(scope("GET", "/v1/databases/d/kv/a/b"))[1]["path_params"] == {"db": "d", "key": "a/b"}
    assert first.matches(scope("PUT", "/v1/databases/d/kv/a"))[0].name == "FULL"
    for method, path in (
        ("DELETE", "/v1/databases/d/kv/a"),
        ("HEAD", "/v1/databases/d/kv/a"),
        ("GET", "/v1/databases/d/kv"),
    ):
        assert first.matches(scope(method, path))[0].name == "NONE"
    off = Node(Settings(data_dir=str(tmp_path / "off"), node_id="off", hot_routes=False))
    routes = create_app(off, manage_lifecycle=False).router.routes
    assert not any(isinstance(r, (HotKVRoute, HotMemoryRoute)) for r in routes)
