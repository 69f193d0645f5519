"""The HTTP API: typed responses, Memoturn-Txid on every database response, problem bodies."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from memoturn.config import Settings
from memoturn.metrics import sample
from memoturn.server.api.app import create_app
from memoturn.server.node import Node


@pytest.fixture
def client(tmp_path, file_store):
    node = Node(
        Settings(data_dir=str(tmp_path / "n"), node_id="api", max_value_bytes=1000, max_body_bytes=100_000),
        store=file_store,
    )
    with TestClient(create_app(node), raise_server_exceptions=False) as c:
        c.node = node
        yield c


def _problem(r, status, type_):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["type"] == type_ and body["detail"]
    return body


def test_database_lifecycle(client):
    r = client.post("/v1/databases", json={"name": "acme--alice"})
    assert r.status_code == 201 and r.json()["head_txid"] == 0
    _problem(client.post("/v1/databases", json={"name": "acme--alice"}), 409, "already-exists")
    client.post("/v1/databases", json={"name": "acme--bob"})
    assert client.get("/v1/databases").json()["databases"] == ["acme--alice", "acme--bob"]
    page = client.get("/v1/databases", params={"limit": 1}).json()
    assert page == {"databases": ["acme--alice"], "next_cursor": "acme--alice"}
    assert client.get("/v1/databases", params={"cursor": "acme--alice"}).json()["databases"] == ["acme--bob"]
    assert client.delete("/v1/databases/acme--alice").status_code == 204
    _problem(client.get("/v1/databases/acme--alice"), 404, "not-found")
    assert client.get("/v1/databases").json()["databases"] == ["acme--bob"]


def test_kv_carries_txids_and_honours_ttl_and_min_txid(client, manual_clock):
    client.post("/v1/databases", json={"name": "kv"})
    r1 = client.put("/v1/databases/kv/kv/a/b", json={"value": {"n": 1}})
    t1 = int(r1.headers["Memoturn-Txid"])
    r2 = client.put("/v1/databases/kv/kv/a/c", json={"value": [1, 2], "ttl_seconds": 30})
    t2 = int(r2.headers["Memoturn-Txid"])
    assert t2 == t1 + 1 == r2.json()["txid"]
    g = client.get("/v1/databases/kv/kv/a/b", headers={"Memoturn-Min-Txid": str(t2)})
    assert g.status_code == 200 and g.json()["value"] == {"n": 1} and int(g.headers["Memoturn-Txid"]) == t2
    assert [i["key"] for i in client.get("/v1/databases/kv/kv", params={"prefix": "a/"}).json()["items"]] == [
        "a/b",
        "a/c",
    ]
    manual_clock.advance(29.9)
    assert client.get("/v1/databases/kv/kv/a/c").status_code == 200
    manual_clock.advance(0.2)
    _problem(client.get("/v1/databases/kv/kv/a/c"), 404, "key-not-found")
    assert [i["key"] for i in client.get("/v1/databases/kv/kv", params={"prefix": "a/"}).json()["items"]] == ["a/b"]
    body = _problem(
        client.get("/v1/databases/kv/kv/a/b", headers={"Memoturn-Min-Txid": "999"}), 412, "min-txid-not-reached"
    )
    assert body["txid"] == t2
    d = client.delete("/v1/databases/kv/kv/a/b")
    assert d.json()["deleted"] is True and int(d.headers["Memoturn-Txid"]) == t2 + 1
    assert client.delete("/v1/databases/kv/kv/a/b").json()["deleted"] is False


def test_kv_pagination(client):
    client.post("/v1/databases", json={"name": "pages"})
    for i in range(7):
        client.put(f"/v1/databases/pages/kv/k{i}", json={"value": i})
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/databases/pages/kv", params=params).json()
        seen += [i["key"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"k{i}" for i in range(7)]


def test_durable_header_waits_for_the_manifest(client):
    client.post("/v1/databases", json={"name": "dur"})
    r = client.put("/v1/databases/dur/kv/x", json={"value": 1}, headers={"Memoturn-Durability": "durable"})
    txid = int(r.headers["Memoturn-Txid"])
    from memoturn.storage.manifest import load_manifest

    manifest, _ = load_manifest(client.node.store, "dur", "main")
    assert manifest.head_txid >= txid
    _problem(
        client.put("/v1/databases/dur/kv/x", json={"value": 1}, headers={"Memoturn-Durability": "always"}),
        400,
        "invalid-header",
    )


def test_sql_batches_are_atomic_and_blobs_roundtrip(client):
    client.post("/v1/databases", json={"name": "sql"})
    client.post(
        "/v1/databases/sql/sql",
        json={
            "statements": [
                {"sql": "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, b BLOB, s TEXT)"},
                {"sql": "INSERT INTO t(b, s) VALUES (?, ?)", "params": [{"base64": "AAEC"}, "x"]},
            ]
        },
    )
    before = client.post("/v1/databases/sql/sql", json={"statements": [{"sql": "SELECT count(*) FROM t"}]}).json()
    bad = client.post(
        "/v1/databases/sql/sql",
        json={
            "statements": [
                {"sql": "INSERT INTO t(s) VALUES ('y')"},
                {"sql": "INSERT INTO nope VALUES (1)"},
            ]
        },
    )
    body = _problem(bad, 400, "sql-error")
    assert "statement 1" in body["detail"] and "no such table" in body["detail"]
    after = client.post("/v1/databases/sql/sql", json={"statements": [{"sql": "SELECT count(*) FROM t"}]}).json()
    assert after["results"][0]["rows"] == before["results"][0]["rows"], "a failed batch must leave nothing behind"
    rows = client.post(
        "/v1/databases/sql/sql", json={"statements": [{"sql": "SELECT b FROM t WHERE b IS NOT NULL LIMIT 1"}]}
    ).json()
    assert rows["results"][0]["rows"] == [[{"base64": "AAEC"}]]


@pytest.mark.parametrize(
    "sql, status, type_",
    [
        ("SELECT * FROM __memoturn_kv", 403, "reserved-table"),
        ('SELECT * FROM "__MEMOTURN_KV"', 403, "reserved-table"),
        ("CREATE VIEW v AS SELECT * FROM [__memoturn_kv]", 403, "reserved-table"),
        ("CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM __memoturn_kv; END", 403, "reserved-table"),
        ("WITH x AS (SELECT * FROM __memoturn_meta) SELECT * FROM x", 403, "reserved-table"),
        ("SELECT sql FROM sqlite_master", 403, "reserved-table"),
        ("UPDATE sqlite_schema SET sql = ''", 403, "reserved-table"),
        ("PRAGMA writable_schema = ON", 403, "forbidden-statement"),
        ("ATTACH DATABASE '/tmp/x.db' AS x", 403, "forbidden-statement"),
        ("VACUUM INTO '/tmp/copy.db'", 403, "forbidden-statement"),
        ("SELECT load_extension('x')", 403, "forbidden-statement"),
        ("BEGIN", 403, "forbidden-statement"),
        ("SELECT 1; DROP TABLE t", 400, "multiple-statements"),
        ("SELECT 1 /* ; */ -- ;\n", 200, None),
        ("SELEC 1", 400, "sql-error"),
        ("", 400, "invalid-sql"),
    ],
)
def test_sql_guard(client, sql, status, type_):
    client.post("/v1/databases", json={"name": "guard"})
    client.post("/v1/databases/guard/sql", json={"statements": [{"sql": "CREATE TABLE IF NOT EXISTS t(a)"}]})
    r = client.post("/v1/databases/guard/sql", json={"statements": [{"sql": sql}]})
    if type_ is None:
        assert r.status_code == status, r.text
    else:
        _problem(r, status, type_)


def test_bad_input_gets_problem_bodies(client):
    client.post("/v1/databases", json={"name": "bad"})
    _problem(
        client.post("/v1/databases", content=b"{nope", headers={"content-type": "application/json"}),
        400,
        "malformed-json",
    )
    _problem(client.post("/v1/databases", json={"name": "Bad Name!"}), 400, "invalid-name")
    _problem(client.post("/v1/databases", json={"nam": "x"}), 422, "invalid-request")
    _problem(client.get("/v1/databases/unknown/kv/x"), 404, "not-found")
    _problem(client.put("/v1/databases/unknown/kv/x", json={"value": 1}), 404, "not-found")
    _problem(client.put("/v1/databases/bad/kv/x", json={"value": "v" * 2000}), 413, "value-too-large")
    _problem(
        client.put("/v1/databases/bad/kv/x", content=b"x" * 200_000, headers={"content-type": "application/json"}),
        413,
        "payload-too-large",
    )
    _problem(client.put("/v1/databases/bad/kv/x", json={"value": 1, "ttl_seconds": -1}), 422, "invalid-request")
    _problem(client.get("/v1/databases/bad/kv/x", headers={"Memoturn-Min-Txid": "abc"}), 422, "invalid-request")
    _problem(client.get("/v1/nothing"), 404, "not-found")
    # None of that touched the database.
    assert client.get("/v1/databases/bad").json()["head_txid"] <= 1


def test_openapi_and_ops_endpoints(client):
    spec = client.get("/openapi.json").json()
    assert "/v1/databases/{db}/kv/{key}" in spec["paths"] and "/v1/databases/{db}/sql" in spec["paths"]
    assert "/v1/namespaces/{namespace}/profiles/{profile}/recall" in spec["paths"]
    params = spec["paths"]["/v1/namespaces/{namespace}/profiles/{profile}/memories"]["post"]["parameters"]
    assert {"name": "Memoturn-Durability", "in": "header"}.items() <= next(
        p for p in params if p["name"] == "Memoturn-Durability"
    ).items()
    assert "Problem" in spec["components"]["schemas"]
    assert client.get("/v1/health").json()["status"] == "ok"
    assert client.get("/v1/ready").status_code == 200
    client.post("/v1/databases", json={"name": "m"})
    client.put("/v1/databases/m/kv/a", json={"value": 1})
    text = client.get("/metrics").text
    assert "memoturn_unshipped_txids" in text and "memoturn_request_seconds_bucket" in text


def test_kv_read_cache_never_serves_an_older_state(client, manual_clock):
    client.post("/v1/databases", json={"name": "cache"})
    client.put("/v1/databases/cache/kv/k", json={"value": 1})
    hits = client.node.metrics.kv_cache_hits
    first = client.get("/v1/databases/cache/kv/k")
    again = client.get("/v1/databases/cache/kv/k")
    assert again.json()["value"] == 1 and again.headers["Memoturn-Txid"] == first.headers["Memoturn-Txid"]
    assert sample(hits) == 1
    w = client.put("/v1/databases/cache/kv/k", json={"value": 2})
    r = client.get("/v1/databases/cache/kv/k")
    assert r.json()["value"] == 2 and r.headers["Memoturn-Txid"] == w.headers["Memoturn-Txid"]
    # Any commit (here through SQL) moves the head, so cached entries stop being served.
    client.post("/v1/databases/cache/sql", json={"statements": [{"sql": "CREATE TABLE t(x)"}]})
    before = sample(hits)
    r = client.get("/v1/databases/cache/kv/k")
    assert sample(hits) == before and r.json()["value"] == 2
    client.put("/v1/databases/cache/kv/ttl", json={"value": "x", "ttl_seconds": 30})
    assert client.get("/v1/databases/cache/kv/ttl").status_code == 200
    assert client.get("/v1/databases/cache/kv/ttl").status_code == 200  # now served from the cache
    manual_clock.advance(31)
    assert client.get("/v1/databases/cache/kv/ttl").status_code == 404  # an expired cached item is not served
