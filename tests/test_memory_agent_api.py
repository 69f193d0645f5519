"""The memory API's agent features: time windows on recall and list, forget by filter (with a
dry run), creating a profile up front, and a profile's memories on a forked branch."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from memoturn.config import Settings
from memoturn.server.api.app import create_app
from memoturn.server.node import Node

BASE = "/v1/namespaces/acme/profiles/alice"
DB = "/v1/databases/acme--alice"
DAY = 86400.0
T0 = 1_700_000_000.0


@pytest.fixture
def client(tmp_path, file_store):
    node = Node(Settings(data_dir=str(tmp_path / "n"), node_id="mem"), store=file_store)
    with TestClient(create_app(node), raise_server_exceptions=False) as c:
        yield c


def add(client, params=None, **body):
    r = client.post(BASE + "/memories", json=body, params=params or {})
    assert r.status_code == 201, r.text
    return r.json()["memory"]


def listed(client, **params):
    r = client.get(BASE + "/memories", params=params)
    assert r.status_code == 200, r.text
    return sorted(m["content"] for m in r.json()["memories"])


def recalled(client, params=None, **body):
    r = client.post(BASE + "/recall", json=body, params=params or {})
    assert r.status_code == 200, r.text
    return sorted(h["memory"]["content"] for h in r.json()["results"])


def problem(r, status, type_):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == type_, r.text


@pytest.fixture
def week(client):
    """Three days of memories (event times T0, T0+1d, T0+2d) with tags."""
    add(client, content="Monday: the user adopted a cat", event_time=T0, tags=["pets"])
    add(client, content="Tuesday: the user bought a bike", event_time=T0 + DAY, tags=["sport"])
    add(client, content="Wednesday: the cat saw a vet", event_time=T0 + 2 * DAY, tags=["pets", "health"])


def test_list_and_recall_filter_on_a_time_window_and_tags(client, week):
    assert listed(client, since=T0 + DAY / 2) == ["Tuesday: the user bought a bike", "Wednesday: the cat saw a vet"]
    assert listed(client, since=T0, until=T0 + DAY) == [
        "Monday: the user adopted a cat",
        "Tuesday: the user bought a bike",
    ]
    # ISO 8601 in the query string, and tags (all of them must be present)
    assert listed(client, until="2023-11-14T22:13:20Z") == ["Monday: the user adopted a cat"]
    assert listed(client, tag=["pets", "health"]) == ["Wednesday: the cat saw a vet"]
    assert recalled(client, query="cat", since=T0 + DAY) == ["Wednesday: the cat saw a vet"]
    assert recalled(client, query="cat", until="2023-11-15T00:00:00Z") == ["Monday: the user adopted a cat"]


def test_list_as_of_a_past_time_and_pages_with_a_cursor(client):
    old = add(client, content="The user lives in Oslo", subject="home")
    new = add(client, content="The user lives in Bergen", subject="home")
    assert listed(client) == ["The user lives in Bergen"]
    assert listed(client, as_of=new["valid_from"] - 1e-6) == ["The user lives in Oslo"]
    assert old["valid_from"] < new["valid_from"]
    for i in range(5):
        add(client, content=f"note {i}")
    seen, cursor = [], None
    while True:
        page = client.get(BASE + "/memories", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["memories"]) <= 2
        seen += [m["content"] for m in page["memories"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(["The user lives in Bergen", *(f"note {i}" for i in range(5))])


def test_bad_time_windows_are_refused(client, week):
    problem(client.get(BASE + "/memories", params={"since": T0 + DAY, "until": T0}), 400, "invalid-window")
    problem(client.get(BASE + "/memories", params={"since": "last tuesday"}), 400, "invalid-time")
    problem(client.get(BASE + "/memories", params={"as_of": "nan"}), 400, "invalid-time")
    problem(client.post(BASE + "/recall", json={"query": "cat", "since": T0 + DAY, "until": T0}), 400, "invalid-window")
    problem(
        client.post(BASE + "/memories/forget", json={"since": T0 + DAY, "until": T0, "dry_run": True}),
        400,
        "invalid-window",
    )
    # since > until is refused even for a profile with no memories
    problem(
        client.post("/v1/namespaces/acme/profiles/nobody/recall", json={"query": "x", "since": 2, "until": 1}),
        400,
        "invalid-window",
    )


def test_forget_by_tag_and_time_range_with_a_dry_run(client, week):
    r = client.post(BASE + "/memories/forget", json={"tags": ["pets"], "dry_run": True})
    assert r.status_code == 200, r.text
    dry = r.json()
    assert dry["dry_run"] is True and dry["count"] == 2 and len(dry["ids"]) == 2
    assert len(listed(client)) == 3  # nothing deleted
    r = client.post(BASE + "/memories/forget", json={"tags": ["pets"], "since": T0 + DAY})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["dry_run"] is False and done["count"] == 1 and r.headers["Memoturn-Txid"] == str(done["txid"])
    assert listed(client) == ["Monday: the user adopted a cat", "Tuesday: the user bought a bike"]
    assert recalled(client, query="vet cat") == ["Monday: the user adopted a cat"]  # the vector cache forgot it too
    r = client.post(BASE + "/memories/forget", json={"until": T0 + DAY})
    assert r.json()["count"] == 2 and listed(client) == []


def test_forget_by_filter_takes_superseded_memories_too(client):
    add(client, content="The user drinks tea", subject="drink", tags=["drink"])
    add(client, content="The user drinks coffee", subject="drink", tags=["drink"])
    r = client.post(BASE + "/memories/forget", json={"tags": ["drink"]})
    assert r.json()["count"] == 2
    assert listed(client, include_superseded="true") == []


def test_forget_by_filter_refuses_bad_input(client, week):
    problem(client.post(BASE + "/memories/forget", json={}), 400, "empty-filter")
    problem(client.post(BASE + "/memories/forget", json={"dry_run": True, "tags": []}), 400, "empty-filter")
    problem(client.post(BASE + "/memories/forget", json={"types": ["Not A Type"]}), 400, "invalid-type")
    for body in ({"tags": "pets"}, {"since": "yesterday"}, {"tag": ["pets"]}, {"tags": ["x"], "dry_run": "yes"}):
        r = client.post(BASE + "/memories/forget", json=body)
        assert 400 <= r.status_code < 500, (body, r.text)
    assert len(listed(client)) == 3


def test_put_creates_a_profile_so_it_can_be_checkpointed_and_forked_before_its_first_memory(client):
    assert client.get(BASE).status_code == 404
    r = client.put(BASE)
    assert r.status_code == 200, r.text
    assert r.json()["database"] == "acme--alice" and r.json()["memories"] == 0
    assert client.put(BASE).status_code == 200  # idempotent
    r = client.post(DB + "/branches/main/checkpoints", json={"name": "empty"})
    assert r.status_code == 201, r.text
    add(client, content="stored after the checkpoint")
    assert client.post(DB + "/branches/main/rewind", json={"checkpoint": "empty"}).status_code == 200
    assert listed(client) == []
    assert recalled(client, query="stored after the checkpoint") == []


def test_a_profile_on_a_forked_branch(client):
    add(client, content="The user's cat is called Miso")
    r = client.post(DB + "/branches", json={"name": "scratch"})
    assert r.status_code == 201, r.text
    on = {"branch": "scratch"}
    add(client, params=on, content="A draft plan for the sub-task")
    assert listed(client) == ["The user's cat is called Miso"]
    assert listed(client, **on) == ["A draft plan for the sub-task", "The user's cat is called Miso"]
    assert "A draft plan for the sub-task" in recalled(client, params=on, query="draft plan")
    assert "A draft plan for the sub-task" not in recalled(client, query="draft plan")
    assert client.get(BASE, params=on).json()["current"] == 2
    assert client.delete(DB + "/branches/scratch").status_code == 204
    r = client.post(BASE + "/memories", json={"content": "x"}, params=on)
    assert r.status_code == 404, r.text
    assert client.get(BASE + "/memories", params={"branch": "Bad Branch!"}).status_code == 400
