"""Bad input gets a clear 4xx on every route, or is stored exactly: never a silent change, never a 500.

Before: a chunked body went past the size limit; ``NaN``/``Infinity`` were stored as null (once a
500); a NUL cut SQL parameters, memory content and KV keys short (``"a\\0b"`` read ``"a"``) and made
SQL text a 500; ``"10"`` and ``true`` passed for numbers; a fork at ``timestamp: NaN`` landed at txid 0.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from memoturn.config import Settings
from memoturn.server.api.app import create_app
from memoturn.server.node import Node

MEM = "/v1/namespaces/acme/profiles/alice"
DOCS = "/v1/databases/app/collections/users"
VECS = "/v1/databases/app/vectors/emb"


@pytest.fixture
def client(tmp_path, file_store):
    node = Node(Settings(data_dir=str(tmp_path / "n"), node_id="strict", max_body_bytes=100_000), store=file_store)
    with TestClient(create_app(node), raise_server_exceptions=False) as c:
        assert c.post("/v1/databases", json={"name": "app"}).status_code == 201
        assert c.put(VECS, json={"dimensions": 2}).status_code == 201
        yield c


def _problem(r, status, type_):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["type"] == type_ and body["detail"]
    return body


def _raw(client, method, url, text):
    return client.request(method, url, content=text.encode(), headers={"content-type": "application/json"})


def _head(client) -> int:
    return client.get("/v1/databases/app").json()["head_txid"]


def test_a_chunked_body_over_the_limit_is_413_and_never_reaches_the_route(client):
    """The limit counts bytes received: a body without Content-Length used to pass whole."""
    head = _head(client)

    def chunks():
        yield b'{"value": "'
        for _ in range(30):
            yield b"x" * 10_000
        yield b'"}'

    r = client.put("/v1/databases/app/kv/big", content=chunks(), headers={"content-type": "application/json"})
    body = _problem(r, 413, "payload-too-large")
    assert "100000" in body["detail"]
    assert _head(client) == head
    _problem(client.get("/v1/databases/app/kv/big"), 404, "key-not-found")
    # A chunked body under the limit still works.
    r = client.put(
        "/v1/databases/app/kv/small",
        content=iter([b'{"value": ', b'"ok"}']),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert client.get("/v1/databases/app/kv/small").json()["value"] == "ok"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
@pytest.mark.parametrize(
    "method, url, template",
    [
        ("PUT", "/v1/databases/app/kv/k", '{"value": %s}'),
        ("PUT", "/v1/databases/app/kv/k", '{"value": {"deep": [1, %s]}}'),
        ("PUT", "/v1/databases/app/kv/k", '{"value": 1, "ttl_seconds": %s}'),
        ("POST", "/v1/databases/app/sql", '{"statements": [{"sql": "SELECT ?", "params": [%s]}]}'),
        ("POST", DOCS + "/documents", '{"id": "d", "body": {"n": %s}}'),
        ("POST", VECS + "/upsert", '{"items": [{"id": "v", "vector": [%s, 1]}]}'),
        ("POST", MEM + "/memories", '{"content": "x", "event_time": %s, "embedding": [1, 0]}'),
        ("POST", "/v1/databases/app/branches", '{"name": "f", "timestamp": %s}'),
    ],
)
def test_non_finite_numbers_are_not_json(client, constant, method, url, template):
    """NaN and friends are not JSON: Python's parser took them and they were stored as null."""
    head = _head(client)
    body = _problem(_raw(client, method, url, template % constant), 400, "malformed-json")
    assert constant.lstrip("-") in body["detail"] or "range" in body["detail"]
    assert _head(client) == head
    assert [b["branch"] for b in client.get("/v1/databases/app/branches").json()["branches"]] == ["main"]


def test_a_lone_surrogate_is_not_text(client):
    """'\\ud800' decodes in Python but cannot be stored as UTF-8 (it was a 500)."""
    _problem(_raw(client, "PUT", "/v1/databases/app/kv/k", '{"value": "a\\ud800b"}'), 400, "malformed-json")
    _problem(
        _raw(client, "POST", MEM + "/memories", '{"content": "\\udfff", "embedding": [1, 0]}'), 400, "malformed-json"
    )
    # A proper pair (an emoji, escaped) is text.
    assert _raw(client, "PUT", "/v1/databases/app/kv/k", '{"value": "\\ud83d\\ude00"}').status_code == 200
    assert client.get("/v1/databases/app/kv/k").json()["value"] == "\U0001f600"


@pytest.mark.parametrize(
    "method, url, body",
    [
        ("PUT", "/v1/databases/app/kv/k", {"value": 1, "ttl_seconds": "10"}),
        ("PUT", "/v1/databases/app/kv/k", {"value": 1, "ttl_seconds": True}),
        ("POST", "/v1/databases/app/sql", {"statements": [{"sql": "SELECT 1"}], "transaction": "yes"}),
        ("POST", "/v1/databases/app/sql", {"statements": [{"sql": "SELECT 1"}], "transaction": 1}),
        ("POST", DOCS + "/query", {"limit": "5"}),
        ("PUT", "/v1/databases/app/vectors/other", {"dimensions": "3"}),
        ("PUT", "/v1/databases/app/vectors/other", {"dimensions": 3.0}),
        ("POST", VECS + "/upsert", {"items": [{"id": "v", "vector": ["1", 0]}]}),
        ("POST", VECS + "/query", {"vector": [1, 0], "k": True}),
        ("POST", MEM + "/memories", {"content": "x", "event_time": "10", "embedding": [1, 0]}),
        ("POST", MEM + "/memories", {"content": "x", "event_time": True, "embedding": [1, 0]}),
        ("POST", MEM + "/recall", {"query": "x", "limit": "3"}),
        ("POST", MEM + "/recall", {"query": "x", "include_superseded": "true"}),
        ("POST", "/v1/databases/app/branches", {"name": "f", "ttl_seconds": "10"}),
        ("POST", "/v1/databases/app/branches", {"name": "f", "txid": "0"}),
        ("POST", "/v1/databases/app/branches/main/checkpoints", {"name": "c", "txid": False}),
        ("PUT", "/v1/databases/app/branches/main/policy", {"keep_snapshots": "2"}),
        ("POST", "/v1/databases/app/gc", {"dry_run": 1}),
    ],
)
def test_numbers_and_booleans_are_strict(client, method, url, body):
    """'10' for 10 and true for 1 were accepted: a client's type bug became a stored value."""
    head = _head(client)
    _problem(client.request(method, url, json=body), 422, "invalid-request")
    assert _head(client) == head


def test_timestamps_are_numbers_or_iso_strings(client):
    r = client.post(
        MEM + "/memories", json={"content": "iso", "event_time": "2024-01-02T00:00:00Z", "embedding": [1, 0]}
    )
    assert r.status_code == 201, r.text
    assert r.json()["memory"]["event_time"] == 1704153600.0
    r = client.post(MEM + "/memories", json={"content": "unix", "event_time": 1704153600, "embedding": [0, 1]})
    assert r.status_code == 201 and r.json()["memory"]["event_time"] == 1704153600.0
    r = client.put("/v1/databases/app/kv/t", json={"value": 1, "ttl_seconds": 30})
    assert r.status_code == 200, r.text
    # A naive year-1 time is before year 1 in UTC: it was a 500 from datetime.timestamp().
    _problem(
        client.post(
            MEM + "/memories", json={"content": "y1", "event_time": "0001-01-01T00:00:00", "embedding": [1, 0]}
        ),
        422,
        "invalid-request",
    )
    _problem(client.post(MEM + "/recall", json={"query": "x", "as_of": "0001-01-01T00:00:00"}), 422, "invalid-request")


@pytest.mark.parametrize(
    "method, url, body",
    [
        ("POST", "/v1/databases/app/sql", {"statements": [{"sql": "SELECT ?", "params": ["a\0b"]}]}),
        ("POST", "/v1/databases/app/sql", {"statements": [{"sql": "SELECT :p", "params": {"p": "a\0b"}}]}),
        ("POST", "/v1/databases/app/sql", {"statements": [{"sql": "SELECT 1\0; DROP TABLE x"}]}),
        ("POST", "/v1/databases/app/sql", {"statements": [{"sql": "SELECT 'a\0b'"}]}),
        ("POST", MEM + "/memories", {"content": "a\0b", "embedding": [1, 0]}),
        ("POST", MEM + "/memories", {"content": "a", "subject": "s\0t", "embedding": [1, 0]}),
        ("POST", MEM + "/memories", {"content": "a", "tags": ["t\0"], "embedding": [1, 0]}),
        ("POST", MEM + "/recall", {"query": "a", "metadata": {"k": "v\0w"}}),
        ("POST", MEM + "/recall", {"query": "a", "tags": ["t\0"]}),
        ("POST", DOCS + "/documents", {"id": "a\0b", "body": {}}),
        ("POST", DOCS + "/query", {"filter": {"name": "a\0b"}}),
        ("POST", DOCS + "/query", {"filter": {"$or": [{"name": {"$in": ["x", "a\0b"]}}]}}),
        ("POST", VECS + "/upsert", {"items": [{"id": "v\0w", "vector": [1, 0]}]}),
        ("POST", VECS + "/query", {"vector": [1, 0], "filter": {"k": "a\0"}}),
        ("POST", "/v1/databases/app/branches/main/checkpoints", {"name": "c\0d"}),
    ],
)
def test_nul_in_strings_that_reach_sqlite_is_400(client, method, url, body):
    """SQLite cuts a bound string at NUL: 'a\\0b' was stored (or matched) as 'a'."""
    head = _head(client)
    body = _problem(client.request(method, url, json=body), 400, "invalid-string")
    assert "NUL" in body["detail"]
    assert _head(client) == head


@pytest.mark.parametrize(
    "method, url",
    [
        ("PUT", "/v1/databases/app/kv/a%00b"),
        ("GET", "/v1/databases/app/kv/a%00b"),
        ("DELETE", "/v1/databases/app/kv/a%00b"),
        ("GET", "/v1/databases/app/kv?prefix=a%00"),
        ("GET", DOCS + "/documents/a%00b"),
        ("DELETE", VECS + "/items/a%00b"),
        ("GET", MEM + "/memories/a%00b"),
        ("GET", MEM + "/memories?cursor=a%00"),
    ],
)
def test_nul_in_path_and_query_parameters_is_400(client, method, url):
    """kv/a%00b wrote and read the key 'a'."""
    client.put("/v1/databases/app/kv/a", json={"value": "not this one"})
    kwargs = {"json": {"value": 1}} if method == "PUT" else {}
    _problem(client.request(method, url, **kwargs), 400, "invalid-string")
    assert client.get("/v1/databases/app/kv/a").json()["value"] == "not this one"


def test_nul_inside_json_values_is_stored_exactly(client):
    """Values stored as JSON text keep NUL as an escape: these round-trip byte for byte."""
    value = {"s": "a\0b", "k\0": ["\0", "x\0y"]}
    assert client.put("/v1/databases/app/kv/n", json={"value": value}).status_code == 200
    assert client.get("/v1/databases/app/kv/n").json()["value"] == value
    assert client.get("/v1/databases/app/kv", params={"prefix": "n"}).json()["items"][0]["value"] == value

    r = client.post(DOCS + "/documents", json={"id": "d", "body": value})
    assert r.status_code == 201 and r.json()["body"] == value
    assert client.get(DOCS + "/documents/d").json()["body"] == value
    r = client.patch(DOCS + "/documents/d", json={"body": {"t": "c\0d"}})
    assert r.status_code == 200 and r.json()["body"] == {**value, "t": "c\0d"}
    assert client.put(DOCS + "/documents/d", json={"body": {"u": "\0"}}).json()["body"] == {"u": "\0"}

    r = client.post(VECS + "/upsert", json={"items": [{"id": "v", "vector": [1, 0], "metadata": value}]})
    assert r.status_code == 200, r.text
    assert client.post(VECS + "/query", json={"vector": [1, 0]}).json()["results"][0]["metadata"] == value

    r = client.post(MEM + "/memories", json={"content": "meta", "metadata": value, "embedding": [1, 0]})
    assert r.status_code == 201 and r.json()["memory"]["metadata"] == value
    assert client.get(MEM + "/memories/" + r.json()["memory"]["id"]).json()["metadata"] == value


def test_json_nested_deeper_than_the_limit_is_400(client):
    """A 300-deep value was stored, then every read of it was a 500 (the serializer stops at 255)."""
    deep = "[" * 150 + "]" * 150
    for method, url, text in [
        ("PUT", "/v1/databases/app/kv/deep", f'{{"value": {deep}}}'),
        ("POST", DOCS + "/documents", f'{{"id": "deep", "body": {{"a": {deep}}}}}'),
    ]:
        body = _problem(_raw(client, method, url, text), 400, "malformed-json")
        assert "nested deeper than 100" in body["detail"]
    _problem(client.get("/v1/databases/app/kv/deep"), 404, "key-not-found")
    _problem(client.get(DOCS + "/documents/deep"), 404, "document-not-found")
    fine = {"a": [[[[[[[[[[1]]]]]]]]]]}
    assert client.put("/v1/databases/app/kv/ok", json={"value": fine}).status_code == 200
    assert client.get("/v1/databases/app/kv/ok").json()["value"] == fine


def test_zero_vectors_are_refused(client):
    """A zero vector has no cosine distance (NULL): a query over it was a 500."""
    for body in ({"items": [{"id": "z", "vector": [0, 0]}]}, {"items": [{"id": "z", "vector": [1e-50, 0]}]}):
        _problem(client.post(VECS + "/upsert", json=body), 400, "invalid-vector")
    _problem(client.post(VECS + "/query", json={"vector": [0, 0]}), 400, "invalid-vector")
    assert client.post(VECS + "/upsert", json={"items": [{"id": "a", "vector": [1, 0]}]}).status_code == 200
    assert [h["id"] for h in client.post(VECS + "/query", json={"vector": [1, 1]}).json()["results"]] == ["a"]


@pytest.mark.parametrize("offset", [10**30, -1, "5", 1.5, None])
def test_a_document_cursor_out_of_range_is_400(client, offset):
    """An offset past 64 bits reached SQLite, which refused it: a 500."""
    import base64
    import json

    assert client.post(DOCS + "/documents", json={"body": {}}).status_code == 201
    cursor = base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()
    _problem(client.post(DOCS + "/query", json={"cursor": cursor}), 400, "invalid-cursor")


@pytest.mark.parametrize(
    "params, status, type_",
    [
        ([2**63], 422, "invalid-request"),
        ([-(2**63) - 1], 422, "invalid-request"),
        ({"p": 10**30}, 422, "invalid-request"),
        ([{"base64": "\u0080"}], 422, "invalid-request"),
    ],
)
def test_sql_parameters_that_sqlite_cannot_take_as_sent(client, params, status, type_):
    """2**63 came back as the float 9.223372036854776e18; a non-ASCII blob was a 500."""
    sql = "SELECT :p" if isinstance(params, dict) else "SELECT ?"
    _problem(client.post("/v1/databases/app/sql", json={"statements": [{"sql": sql, "params": params}]}), status, type_)
