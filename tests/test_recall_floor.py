"""Recall knows when nothing matches: the relevance floor (``min_score``) and the per-hit scores
(``similarity``, ``text_match``, ``text_score``) through the HTTP API, the SDK, the CLI and the MCP tool."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from memoturn.client import Memoturn
from memoturn.config import Settings
from memoturn.data.memories import DEFAULT_MIN_SCORE
from memoturn.server.api.app import create_app
from memoturn.server.node import Node
from support.nodes import Memoturnd

BASE = "/v1/namespaces/acme/profiles/alice"
RELATED = [
    "Alice adopted a golden retriever named Biscuit",
    "Alice's cat Miso sleeps on the windowsill all afternoon",
    "Alice walks Biscuit the dog every morning before work",
]
UNRELATED = "Alice's car insurance renews in March"
NOTHING_MATCHES = "What is the boiling point of mercury?"


@pytest.fixture
def client(tmp_path, file_store):
    node = Node(Settings(data_dir=str(tmp_path / "n"), node_id="floor"), store=file_store)
    with TestClient(create_app(node), raise_server_exceptions=False) as c:
        r = c.post(BASE + "/memories/batch", json={"memories": [{"content": m} for m in [*RELATED, UNRELATED]]})
        assert r.status_code == 201, r.text
        yield c


def recall(client, **body):
    r = client.post(BASE + "/recall", json=body)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def check_scores(hits):
    """Every hit carries interpretable scores, and the list is in fused-score order."""
    for h in hits:
        assert isinstance(h["score"], float) and h["score"] > 0
        assert isinstance(h["similarity"], float) and -1.0 <= h["similarity"] <= 1.0
        assert isinstance(h["text_match"], bool)
        assert (h["text_score"] is None) == (not h["text_match"])
        assert h["text_score"] is None or h["text_score"] > 0
        assert h["text_match"] == ("bm25" in h["ranks"])
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_a_related_query_returns_the_related_memories_above_the_floor(client):
    hits = recall(client, query="What pets does Alice have?")
    check_scores(hits)
    got = {h["memory"]["content"]: h for h in hits}
    assert set(RELATED) <= set(got)
    for content in RELATED:
        assert got[content]["similarity"] >= DEFAULT_MIN_SCORE
    if UNRELATED in got:  # it shares the name "Alice"; if it passes at all, it ranks below the pets
        assert got[UNRELATED]["similarity"] < min(got[c]["similarity"] for c in RELATED)
        assert hits[-1]["memory"]["content"] == UNRELATED
    top = recall(client, query="Does Alice have a dog?", limit=1)
    assert [h["memory"]["content"] for h in top] in ([RELATED[0]], [RELATED[2]])  # the dog, by meaning or word


def test_nothing_matches_gives_an_empty_list_and_min_score_0_gives_everything(client):
    assert recall(client, query=NOTHING_MATCHES) == []
    assert recall(client, query="How do I configure a Kubernetes ingress?") == []
    everything = recall(client, query=NOTHING_MATCHES, min_score=0)
    check_scores(everything)
    assert sorted(h["memory"]["content"] for h in everything) == sorted([*RELATED, UNRELATED])
    assert all(h["similarity"] < DEFAULT_MIN_SCORE and not h["text_match"] for h in everything)
    # the order is the fused (rank) order as before, and the similarities are what the vector rank follows
    by_vector = sorted(everything, key=lambda h: h["ranks"]["vector"])
    assert [h["similarity"] for h in by_vector] == sorted((h["similarity"] for h in everything), reverse=True)
    # a higher floor keeps fewer, never more
    assert len(recall(client, query="What pets does Alice have?", min_score=0.9)) == 0


def test_a_text_match_passes_the_floor_whatever_its_similarity(client):
    hits = recall(client, query="Miso", min_score=0.99)
    check_scores(hits)
    assert [h["memory"]["content"] for h in hits] == [RELATED[1]]
    assert hits[0]["text_match"] is True and hits[0]["similarity"] < 0.99


def test_min_score_is_validated_and_optional(client):
    for bad in (-0.1, 1.5, "0.3", None):
        r = client.post(BASE + "/recall", json={"query": "pets", "min_score": bad})
        assert r.status_code == 422 and r.json()["type"] == "invalid-request", (bad, r.text)
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "min_score" not in schema["RecallIn"].get("required", [])
    assert schema["RecallIn"]["properties"]["min_score"]["default"] == DEFAULT_MIN_SCORE
    assert {"similarity", "text_match", "text_score"} <= set(schema["Hit"]["properties"])
    assert not {"similarity", "text_match", "text_score"} & set(schema["Hit"].get("required", []))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    data = tmp_path_factory.mktemp("floor")
    proc = Memoturnd(str(data), f"file://{data}/store")
    proc.wait_ready()
    with Memoturn(proc.url) as mt:
        mt.profile("acme", "alice").add_many([{"content": m} for m in [*RELATED, UNRELATED]])
    yield proc
    proc.close()


def test_sdk_and_cli_expose_min_score_and_the_scores(daemon):
    with Memoturn(daemon.url) as mt:
        alice = mt.profile("acme", "alice")
        related = alice.recall("What pets does Alice have?")["results"]
        check_scores(related)
        assert set(RELATED) <= {h["memory"]["content"] for h in related}
        assert alice.recall(NOTHING_MATCHES)["results"] == []
        everything = alice.recall(NOTHING_MATCHES, min_score=0)["results"]
        assert len(everything) == 4
        check_scores(everything)
    env = {**os.environ, "MEMOTURN_URL": daemon.url}
    cli = [sys.executable, "-m", "memoturn.cli"]
    out = subprocess.run(
        [*cli, "memory", "recall", "acme", "alice", NOTHING_MATCHES], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == "no memories matched", out.stderr
    out = subprocess.run(
        [*cli, "memory", "recall", "acme", "alice", NOTHING_MATCHES, "--min-score", "0"],
        env=env,
        capture_output=True,
        text=True,
    )
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0 and len(lines) == 4, out.stderr
    assert all(line.startswith("sim ") and " text " in line and " fused " in line for line in lines)
    out = subprocess.run(
        [*cli, "--json", "memory", "recall", "acme", "alice", "Does Alice have a dog?", "--limit", "1"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["similarity"] >= DEFAULT_MIN_SCORE


def test_mcp_recall_takes_min_score_and_returns_the_scores(daemon):
    pytest.importorskip("mcp")
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {k: v for k, v in os.environ.items() if k not in ("MEMOTURN_MCP_TOKEN", "MEMOTURN_URL", "MEMOTURN_TOKEN")}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memoturn.cli", "mcp", "--url", daemon.url, "--namespace", "acme", "--profile", "alice"],
        env=env,
    )

    def payload(result):
        assert not result.is_error, result.content
        if result.structured_content is not None:
            data = result.structured_content
            return data.get("result", data) if isinstance(data, dict) else data
        return json.loads(result.content[0].text)

    async def go():
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                related = payload(await session.call_tool("memory_recall", {"query": "What pets does Alice have?"}))
                nothing = payload(await session.call_tool("memory_recall", {"query": NOTHING_MATCHES}))
                everything = payload(
                    await session.call_tool("memory_recall", {"query": NOTHING_MATCHES, "min_score": 0, "limit": 10})
                )
                return related, nothing, everything

    related, nothing, everything = asyncio.run(go())
    assert set(RELATED) <= {h["content"] for h in related}
    assert all(h["similarity"] >= DEFAULT_MIN_SCORE or h["text_match"] for h in related)
    assert nothing == []
    assert len(everything) == 4
    for h in everything:
        assert {"score", "similarity", "text_match", "text_score"} <= set(h)
