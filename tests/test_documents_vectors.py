"""JSON document collections and vector collections through the HTTP API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from memoturn.config import Settings
from memoturn.server.api.app import create_app
from memoturn.server.node import Node

D = "/v1/databases/app/collections/users"
V = "/v1/databases/app/vectors/emb"


@pytest.fixture
def client(tmp_path, file_store):
    node = Node(Settings(data_dir=str(tmp_path / "n"), node_id="docs", max_value_bytes=2000), store=file_store)
    with TestClient(create_app(node), raise_server_exceptions=False) as c:
        c.post("/v1/databases", json={"name": "app"})
        yield c


PEOPLE = [
    {"id": "ana", "body": {"name": "Ana", "age": 34, "city": "Lisbon", "tags": ["admin"], "address": {"zip": "1000"}}},
    {"id": "ben", "body": {"name": "Ben", "age": 27, "city": "Porto", "active": True}},
    {"id": "cho", "body": {"name": "Cho", "age": 41, "city": "Lisbon", "active": False, "address": {"zip": "1200"}}},
    {"id": "dev", "body": {"name": "Dev", "age": 19, "city": "Faro", "active": True}},
]


def q(client, **body):
    r = client.post(D + "/query", json=body)
    assert r.status_code == 200, r.text
    return [d["id"] for d in r.json()["documents"]], r.json()


def test_document_crud_and_merge_patch(client):
    r = client.post(D + "/documents", json=PEOPLE[0])
    assert r.status_code == 201 and int(r.headers["Memoturn-Txid"]) >= 1
    assert client.post(D + "/documents", json=PEOPLE[0]).json()["type"] == "already-exists"
    assert client.get(D + "/documents/ana").json()["body"]["address"] == {"zip": "1000"}
    r = client.patch(D + "/documents/ana", json={"body": {"age": 35, "tags": None, "address": {"city": "Lisbon"}}})
    assert r.json()["body"] == {
        "name": "Ana",
        "age": 35,
        "city": "Lisbon",
        "address": {"zip": "1000", "city": "Lisbon"},
    }
    r = client.put(D + "/documents/ana", json={"body": {"name": "Ana B."}})
    assert r.json()["body"] == {"name": "Ana B."}
    assert client.delete(D + "/documents/ana").status_code == 204
    assert client.get(D + "/documents/ana").json()["type"] == "document-not-found"
    generated = client.post(D + "/documents", json={"body": {"x": 1}}).json()
    assert len(generated["id"]) == 32


def test_filters_sort_and_pagination(client):
    for p in PEOPLE:
        client.post(D + "/documents", json=p)
    assert q(client, filter={"city": "Lisbon"})[0] == ["ana", "cho"]
    assert q(client, filter={"age": {"$gt": 30}})[0] == ["ana", "cho"]
    assert q(client, filter={"age": {"$gte": 19, "$lt": 30}})[0] == ["ben", "dev"]
    assert q(client, filter={"city": {"$in": ["Porto", "Faro"]}})[0] == ["ben", "dev"]
    assert q(client, filter={"city": {"$nin": ["Porto", "Faro"]}})[0] == ["ana", "cho"]
    assert q(client, filter={"active": True})[0] == ["ben", "dev"]
    assert q(client, filter={"active": {"$exists": False}})[0] == ["ana"]
    assert q(client, filter={"address.zip": "1200"})[0] == ["cho"]
    assert q(client, filter={"tags.0": "admin"})[0] == ["ana"]
    assert q(client, filter={"$or": [{"city": "Faro"}, {"age": {"$gt": 40}}]})[0] == ["cho", "dev"]
    assert q(client, filter={"$not": {"city": "Lisbon"}, "active": True})[0] == ["ben", "dev"]
    assert q(client, filter={}, sort=[{"path": "age", "order": "desc"}])[0] == ["cho", "ana", "ben", "dev"]
    seen, cursor = [], None
    while True:
        ids, body = q(client, sort=[{"path": "age"}], limit=3, **({"cursor": cursor} if cursor else {}))
        seen += ids
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == ["dev", "ben", "ana", "cho"]
    r = client.post(D + "/indexes", json={"path": "city"})
    assert r.status_code == 201
    assert q(client, filter={"city": "Lisbon"})[0] == ["ana", "cho"]  # same answer with the index


@pytest.mark.parametrize(
    "filter_, type_",
    [
        ({"a'b": 1}, "invalid-filter"),
        ({"a": {"$regex": "x"}}, "invalid-filter"),
        ({"$where": "1"}, "invalid-filter"),
        ({"a": {"$in": []}}, "invalid-filter"),
        ({"a": {"$gt": {"x": 1}}}, "invalid-filter"),
        ({"$or": "x"}, "invalid-filter"),
        ({"a": {"$exists": "yes"}}, "invalid-filter"),
    ],
)
def test_bad_filters_are_clear_400s(client, filter_, type_):
    client.post(D + "/documents", json=PEOPLE[0])
    r = client.post(D + "/query", json={"filter": filter_})
    assert r.status_code == 400 and r.json()["type"] == type_, r.text


def test_bad_documents(client):
    assert client.post(D + "/documents", json={"body": [1, 2]}).status_code == 422
    r = client.post(D + "/documents", json={"body": {"big": "x" * 3000}})
    assert r.status_code == 413 and r.json()["type"] == "document-too-large"
    client.post(D + "/documents", json={"id": "p", "body": {"a": 1}})
    r = client.patch(D + "/documents/p", json={"body": {"big": "x" * 1990}})
    assert r.status_code == 413
    assert client.get(D + "/documents/p").json()["body"] == {"a": 1}, "a refused patch changes nothing"
    r = client.post("/v1/databases/app/collections/Bad Name/documents", json={"body": {}})
    assert r.status_code == 400 and r.json()["type"] == "invalid-name"
    r = client.post(D + "/query", json={"cursor": "garbage"})
    assert r.status_code == 400 and r.json()["type"] == "invalid-cursor"


def test_vector_collections(client):
    assert client.put(V, json={"dimensions": 3}).status_code == 201
    assert client.put(V, json={"dimensions": 3}).json()["type"] == "already-exists"
    r = client.post(
        V + "/upsert",
        json={
            "items": [
                {"id": "n", "vector": [1, 0, 0], "metadata": {"kind": "axis"}},
                {"id": "e", "vector": [0, 1, 0], "metadata": {"kind": "axis"}},
                {"id": "ne", "vector": [0.7, 0.7, 0], "metadata": {"kind": "diagonal"}},
            ]
        },
    )
    assert r.json()["upserted"] == 3
    hits = client.post(V + "/query", json={"vector": [0.9, 0.1, 0], "k": 2}).json()["results"]
    assert [h["id"] for h in hits] == ["n", "ne"] and hits[0]["score"] > hits[1]["score"]
    hits = client.post(V + "/query", json={"vector": [0.9, 0.1, 0], "k": 2, "filter": {"kind": "axis"}}).json()[
        "results"
    ]
    assert [h["id"] for h in hits] == ["n", "e"]
    client.post(V + "/upsert", json={"items": [{"id": "n", "vector": [0, 0, 1]}]})
    hits = client.post(V + "/query", json={"vector": [0, 0, 1], "k": 1}).json()["results"]
    assert hits[0]["id"] == "n"
    assert client.delete(V + "/items/n").status_code == 204
    assert client.delete(V + "/items/n").status_code == 404
    r = client.post(V + "/upsert", json={"items": [{"id": "x", "vector": [1, 2]}]})
    assert r.status_code == 400 and r.json()["type"] == "dimension-mismatch"
    r = client.post("/v1/databases/app/vectors/nope/query", json={"vector": [1]})
    assert r.status_code == 404
    # User SQL cannot reach the reserved vector tables either.
    r = client.post("/v1/databases/app/sql", json={"statements": [{"sql": "SELECT * FROM __memoturn_vec_emb"}]})
    assert r.status_code == 403
    # ...but user tables may hold vectors with DiskANN indexes through plain SQL.
    r = client.post(
        "/v1/databases/app/sql",
        json={
            "statements": [
                {"sql": "CREATE TABLE items(id INTEGER PRIMARY KEY, e F32_BLOB(2))"},
                {"sql": "CREATE INDEX items_e ON items(libsql_vector_idx(e))"},
                {"sql": "INSERT INTO items(e) VALUES (vector32('[1,0]')), (vector32('[0,1]'))"},
                {"sql": "SELECT id FROM vector_top_k('items_e', vector32('[0.1,0.9]'), 1)"},
            ]
        },
    )
    assert r.status_code == 200 and r.json()["results"][3]["rows"] == [[2]]
