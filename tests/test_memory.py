"""Typed memories through the HTTP API: supersession, duplicates, hybrid recall, filters, bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from memoturn.config import Settings
from memoturn.server.api.app import create_app
from memoturn.server.node import Node

BASE = "/v1/namespaces/acme/profiles/alice"


@pytest.fixture
def client(tmp_path, file_store):
    node = Node(Settings(data_dir=str(tmp_path / "n"), node_id="mem"), store=file_store)
    with TestClient(create_app(node), raise_server_exceptions=False) as c:
        yield c


def add(client, **body):
    r = client.post(BASE + "/memories", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def recall(client, **body):
    r = client.post(BASE + "/recall", json=body)
    assert r.status_code == 200, r.text
    return [h["memory"]["content"] for h in r.json()["results"]]


def test_profiles_are_created_on_first_use_and_listed(client):
    assert client.get("/v1/namespaces/acme/profiles").json()["profiles"] == []
    add(client, content="Alice lives in Lisbon")
    client.post("/v1/namespaces/acme/profiles/bob/memories", json={"content": "Bob likes chess"})
    client.post("/v1/namespaces/other/profiles/carol/memories", json={"content": "Carol"})
    assert client.get("/v1/namespaces/acme/profiles").json()["profiles"] == ["alice", "bob"]
    stats = client.get(BASE).json()
    assert stats["database"] == "acme--alice" and stats["current"] == 1 and stats["embedding_dim"] == 384
    assert client.delete("/v1/namespaces/acme/profiles/bob").status_code == 204
    assert client.get("/v1/namespaces/acme/profiles").json()["profiles"] == ["alice"]


def test_supersession_by_subject_history_and_as_of(client):
    first = add(client, type="preference", content="Alice prefers green tea", subject="drink")
    second = add(client, type="preference", content="Alice switched to black coffee", subject="drink")
    assert second["memory"]["supersedes"] == first["memory"]["id"]
    assert recall(client, query="what does Alice drink").count("Alice prefers green tea") == 0
    assert "Alice prefers green tea" in recall(client, query="what does Alice drink", include_superseded=True)
    old = client.get(BASE + f"/memories/{first['memory']['id']}").json()
    assert old["current"] is False and old["superseded_by"] == second["memory"]["id"]
    chain = client.get(BASE + f"/memories/{second['memory']['id']}/history").json()
    assert [m["content"] for m in chain] == ["Alice prefers green tea", "Alice switched to black coffee"]
    # as_of a time before the switch sees the old preference only.
    before = second["memory"]["valid_from"] - 1e-6
    assert recall(client, query="drink tea coffee", as_of=before) == ["Alice prefers green tea"]


def test_explicit_supersedes_and_duplicates(client):
    a = add(client, content="The office is on floor 3")
    dup = add(client, content="The office is on floor 3")
    assert dup["duplicate"] is True and dup["memory"]["id"] == a["memory"]["id"]
    b = add(client, content="The office moved to floor 5", supersedes=a["memory"]["id"])
    assert b["memory"]["supersedes"] == a["memory"]["id"]
    r = client.post(BASE + "/memories", json={"content": "again", "supersedes": a["memory"]["id"]})
    assert r.status_code == 400 and r.json()["type"] == "already-superseded"
    r = client.post(BASE + "/memories", json={"content": "x", "supersedes": "nope"})
    assert r.status_code == 404


def test_hybrid_recall_finds_by_meaning_and_by_words_with_filters(client):
    client.post(
        BASE + "/memories/batch",
        json={
            "memories": [
                {
                    "type": "fact",
                    "content": "Alice adopted a golden retriever named Biscuit",
                    "tags": ["pets"],
                    "event_time": 1_600_000_000,
                },
                {
                    "type": "event",
                    "content": "Alice ran the Lisbon half marathon",
                    "tags": ["sport"],
                    "event_time": 1_700_000_000,
                    "metadata": {"source": "chat", "session": 3},
                },
                {
                    "type": "instruction",
                    "content": "Always answer Alice in Portuguese",
                    "metadata": {"source": "settings"},
                },
                {"type": "fact", "content": "Alice's favourite colour is teal"},
            ]
        },
    )
    assert recall(client, query="Does Alice have a dog?", limit=1) == ["Alice adopted a golden retriever named Biscuit"]
    assert recall(client, query="Biscuit", limit=1) == ["Alice adopted a golden retriever named Biscuit"]
    assert recall(client, query="running race", types=["event"]) == ["Alice ran the Lisbon half marathon"]
    # a query that matches nothing passes no relevance floor: filters alone need min_score=0
    assert recall(client, query="anything", tags=["pets"]) == []
    assert recall(client, query="anything", tags=["pets"], min_score=0) == [
        "Alice adopted a golden retriever named Biscuit"
    ]
    assert recall(client, query="Alice", since=1_650_000_000, until=1_750_000_000) == [
        "Alice ran the Lisbon half marathon"
    ]
    assert recall(client, query="Alice", metadata={"source": "settings"}) == ["Always answer Alice in Portuguese"]
    assert recall(client, query="Alice", metadata={"session": 3}) == ["Alice ran the Lisbon half marathon"]
    listed = client.get(BASE + "/memories", params={"type": "fact"}).json()["memories"]
    assert sorted(m["content"] for m in listed) == [
        "Alice adopted a golden retriever named Biscuit",
        "Alice's favourite colour is teal",
    ]


def test_durable_memory_writes_are_in_the_store_when_acknowledged(client, file_store):
    from memoturn.storage.manifest import load_manifest

    r = client.post(BASE + "/memories", json={"content": "kept"}, headers={"Memoturn-Durability": "durable"})
    assert r.status_code == 201
    assert load_manifest(file_store, "acme--alice", "main")[0].head_txid >= int(r.headers["Memoturn-Txid"])
    r = client.post(BASE + "/memories", json={"content": "x"}, headers={"Memoturn-Durability": "sometimes"})
    assert r.status_code == 400 and r.json()["type"] == "invalid-header"


def test_forget_and_own_vectors(client):
    m = add(client, content="temporary note")
    assert client.delete(BASE + f"/memories/{m['memory']['id']}").status_code == 204
    assert client.get(BASE + f"/memories/{m['memory']['id']}").status_code == 404
    other = "/v1/namespaces/acme/profiles/vec"
    r = client.post(other + "/memories", json={"content": "north", "embedding": [1, 0, 0]})
    assert r.status_code == 201
    client.post(other + "/memories", json={"content": "east", "embedding": [0, 1, 0]})
    hits = client.post(other + "/recall", json={"query": "zzz", "embedding": [0.1, 0.9, 0]}).json()["results"]
    assert hits[0]["memory"]["content"] == "east"
    r = client.post(other + "/recall", json={"query": "zzz"})
    assert r.status_code == 400 and r.json()["type"] == "dimension-mismatch"


@pytest.mark.parametrize(
    "body, status, type_",
    [
        ({"content": ""}, 422, "invalid-request"),
        ({"content": "x", "type": "Not A Type"}, 400, "invalid-type"),
        ({"content": "x", "unknown": 1}, 422, "invalid-request"),
        ({"content": "x", "embedding": [1, 2, 3]}, 400, "dimension-mismatch"),
        ({"content": "x", "embedding": ["a"]}, 422, "invalid-request"),
        ({"content": "x", "tags": "not-a-list"}, 422, "invalid-request"),
        ({"content": "x" * 100_001}, 422, "invalid-request"),
    ],
)
def test_bad_memories_are_refused_and_nothing_is_stored(client, body, status, type_):
    add(client, content="anchor")
    r = client.post(BASE + "/memories", json=body)
    assert r.status_code == status and r.json()["type"] == type_, r.text
    assert client.get(BASE).json()["memories"] == 1


def test_bad_recall_and_names(client):
    add(client, content="anchor")
    for body, type_ in [
        ({"query": "x", "types": ["Bad Type"]}, "invalid-type"),
        ({"query": "x", "metadata": {"a b": 1}}, "invalid-filter"),
        ({"query": "x", "metadata": {"a": {"nested": 1}}}, "invalid-filter"),
    ]:
        r = client.post(BASE + "/recall", json=body)
        assert r.status_code == 400 and r.json()["type"] == type_
    r = client.post("/v1/namespaces/a--b/profiles/x/memories", json={"content": "x"})
    assert r.status_code == 400 and r.json()["type"] == "invalid-name"
    r = client.post(
        "/v1/namespaces/acme/profiles/alice/memories/batch", json={"memories": [{"content": "ok"}, {"content": ""}]}
    )
    assert r.status_code == 422 and client.get(BASE).json()["memories"] == 1


def test_known_profiles_are_not_created_again_and_a_deleted_one_comes_back(client, file_store, monkeypatch):
    creates: list[str] = []
    real_put = file_store.put

    def counting_put(key, data, **kw):
        if key.endswith("/main/manifest.json") and kw.get("if_none_match"):
            creates.append(key)
        return real_put(key, data, **kw)

    monkeypatch.setattr(file_store, "put", counting_put)
    for i in range(5):
        add(client, content=f"Alice fact {i}")
    assert creates == ["db/acme--alice/main/manifest.json"]  # one create, not one per write
    assert client.delete(BASE).status_code == 204
    add(client, content="Alice came back")  # the node still "knows" alice: the write recreates it, no 404
    assert len(creates) == 2
    r = client.get(BASE + "/memories").json()
    assert [m["content"] for m in r["memories"]] == ["Alice came back"]
