"""Relationships between memories: the API, both SDKs, the CLI and MCP against a real memoturnd;
fork, rewind, replication (a fresh node restoring from the store) and ``as_of`` on a real node."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from memoturn.client import AsyncMemoturn, Memoturn, ProblemError
from memoturn.data import memories, relationships
from memoturn.server import branches
from support.nodes import Memoturnd, make_node


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    data = tmp_path_factory.mktemp("relationships")
    proc = Memoturnd(str(data), f"file://{data}/store")
    proc.wait_ready(timeout=300)  # a loaded CI machine may take long to import the server
    yield proc
    proc.close()


def _ids(profile, *contents):
    return [profile.add(c)["memory"]["id"] for c in contents]


def _problem(fn, *args, **kwargs):
    with pytest.raises(ProblemError) as exc:
        fn(*args, **kwargs)
    return exc.value


def test_relate_neighbours_path_subgraph(daemon):
    with Memoturn(daemon.url) as mt:
        p = mt.profile("rel", "graph")
        a, b, c, d, e = _ids(
            p,
            "The kitchen flooded on Monday",
            "A pipe under the sink burst",
            "The plumbing is forty years old",
            "The landlord promised new pipes",
            "The neighbours' dog barks at night",
        )
        ab = p.relate(a, b, "caused_by", weight=0.9, properties={"confidence": "high"})
        assert ab.txid and ab["duplicate"] is False
        rel = ab["relationship"]
        assert (rel["source"], rel["target"], rel["type"], rel["weight"]) == (a, b, "caused_by", 0.9)
        assert rel["properties"] == {"confidence": "high"} and rel["removed_at"] is None
        again = p.relate(a, b, "caused_by")
        assert again["duplicate"] is True and again["relationship"]["id"] == rel["id"]
        p.relate(b, c, "caused_by")
        p.relate(d, c, "relates_to")
        p.relate(e, a, "happened_during")  # a type of the caller's own
        assert p.relationship(rel["id"])["type"] == "caused_by"

        around_b = p.neighbours(b)["results"]
        assert {(n["direction"], n["memory"]["id"]) for n in around_b} == {("in", a), ("out", c)}
        assert [n["memory"]["id"] for n in p.neighbours(b, direction="out")["results"]] == [c]
        assert [n["memory"]["id"] for n in p.neighbours(a, types=["happened_during"])["results"]] == [e]
        assert p.neighbours(a, types=["part_of"])["results"] == []

        path = p.path(a, c)
        assert path["found"] and path["depth"] == 2
        assert [m["id"] for m in path["memories"]] == [a, b, c]
        assert [r["type"] for r in path["relationships"]] == ["caused_by", "caused_by"]
        assert not p.path(a, c, max_depth=1)["found"]
        assert not p.path(c, a)["found"]  # against the arrows: only with direction in or both
        assert [m["id"] for m in p.path(c, a, direction="in")["memories"]] == [c, b, a]
        assert [m["id"] for m in p.path(a, d, direction="both")["memories"]] == [a, b, c, d]
        assert not p.path(a, d, direction="both", types=["caused_by"])["found"]
        assert p.path(a, a)["depth"] == 0

        sub = p.subgraph(b, depth=1)
        assert {(n["memory"]["id"], n["depth"]) for n in sub["memories"]} == {(b, 0), (a, 1), (c, 1)}
        assert sub["memories"][0]["memory"]["id"] == b and not sub["truncated"]
        assert {(r["source"], r["target"]) for r in sub["relationships"]} == {(a, b), (b, c)}
        whole = p.subgraph(b, depth=3)
        assert {n["memory"]["id"] for n in whole["memories"]} == {a, b, c, d, e}
        assert {n["depth"] for n in whole["memories"] if n["memory"]["id"] in (d, e)} == {2}
        assert len(whole["relationships"]) == 4
        small = p.subgraph(b, depth=3, limit=2)
        assert small["truncated"] and len(small["memories"]) == 2

        # removed: gone now, there as_of before
        p.relate(c, e, "relates_to")
        before = time.time()
        time.sleep(0.05)
        removed = p.neighbours(c, types=["relates_to"], direction="out")["results"][0]["relationship"]
        assert p.unrelate(removed["id"]).txid
        assert p.neighbours(c, types=["relates_to"], direction="out")["results"] == []
        was = p.neighbours(c, types=["relates_to"], direction="out", as_of=before)["results"]
        assert [n["memory"]["id"] for n in was] == [e]
        assert p.relationship(removed["id"])["removed_at"] > before
        assert _problem(p.unrelate, removed["id"]).type == "relationship-not-found"
        assert p.relate(c, e, "relates_to")["duplicate"] is False  # a new one after removal


def test_bad_relationships_are_clear_4xx(daemon):
    with Memoturn(daemon.url) as mt:
        p = mt.profile("rel", "errors")
        a, b = _ids(p, "Bob likes chess", "Bob plays on Sundays")
        other = mt.profile("rel", "someone-else").add("Carol likes tennis")["memory"]["id"]
        assert _problem(p.relate, a, a, "relates_to").type == "self-relationship"
        missing = _problem(p.relate, a, "no-such-memory", "relates_to")
        assert missing.status == 404 and missing.type == "memory-not-found" and "target" in missing.detail
        assert _problem(p.relate, "nope", b, "relates_to").status == 404
        assert _problem(p.relate, a, other, "relates_to").status == 404  # another profile's memory
        for bad in ("Caused_By", "caused-by", "1st", "", "x" * 65, "a b"):
            assert _problem(p.relate, a, b, bad).status in (400, 422), bad
        assert _problem(p.relate, a, b, "relates_to", weight=1.5).status in (400, 422)
        assert _problem(p.relationship, "nope").type == "relationship-not-found"
        assert _problem(p.unrelate, "nope").status == 404
        assert _problem(p.neighbours, "nope").status == 404
        assert _problem(p.neighbours, a, types=["Bad"]).status in (400, 422)
        assert _problem(p.neighbours, a, direction="sideways").status in (400, 422)
        assert _problem(p.neighbours, a, as_of="yesterday-ish").type == "invalid-time"
        assert _problem(p.path, a, "nope").status == 404
        assert _problem(p.path, a, b, max_depth=7).status in (400, 422)
        assert _problem(p.path, a, b, max_depth=0).status in (400, 422)
        assert _problem(p.subgraph, a, depth=5).status in (400, 422)
        assert _problem(p.subgraph, a, limit=501).status in (400, 422)
        assert _problem(p.recall, "chess", expand=["Not A Type"]).status in (400, 422)
        base = f"{daemon.url}/v1/namespaces/rel/profiles/errors"
        for body in (
            {"target": b, "type": "relates_to", "extra": 1},  # unknown field
            {"target": b, "type": "relates_to", "weight": "0.5"},  # a string for a number
            {"target": b, "type": "relates_to", "weight": True},
            {"target": b, "type": 7},
            {"type": "relates_to"},
            {"target": b, "type": "relates_to", "properties": [1]},
        ):
            r = httpx.post(f"{base}/memories/{a}/relationships", json=body)
            assert r.status_code in (400, 422) and r.headers["content-type"].startswith("application/problem+json"), (
                body,
                r.text,
            )
        for body in (
            {"from": a, "to": b, "max_depth": "2"},
            {"from": a, "to": b, "direction": "up"},
            {"from": a, "to": b, "types": "caused_by"},
            {"from_": a, "to": b},
            {"from": a, "to": b, "as_of": "soon"},
        ):
            assert httpx.post(f"{base}/relationships/path", json=body).status_code in (400, 422), body
        for body in ({"memory_id": a, "depth": 1.5}, {"memory_id": a, "limit": 0}, {"memory_id": a, "other": 1}):
            assert httpx.post(f"{base}/relationships/subgraph", json=body).status_code in (400, 422), body
        for body in ({"query": "chess", "expand": "follows"}, {"query": "chess", "expand_direction": "up"}):
            assert httpx.post(f"{base}/recall", json=body).status_code in (400, 422), body


def test_forgetting_a_memory_removes_its_relationships(daemon):
    with Memoturn(daemon.url) as mt:
        p = mt.profile("rel", "forget")
        a, b, c = _ids(p, "Dana moved to Lisbon", "Dana got a job at a bank", "Dana learns Portuguese")
        ab = p.relate(a, b, "caused_by")["relationship"]["id"]
        cb = p.relate(c, a, "caused_by")["relationship"]["id"]
        p.forget(a)
        assert p.neighbours(b)["results"] == [] and p.neighbours(c)["results"] == []
        for rel in (ab, cb):
            assert _problem(p.relationship, rel).status == 404
        assert not p.path(c, b, direction="both")["found"]


def test_superseded_memories_and_as_of(daemon):
    with Memoturn(daemon.url) as mt:
        p = mt.profile("rel", "time")
        trip = p.add("Eve is planning a trip")["memory"]["id"]
        old = p.add("Eve's trip goes to Rome", subject="destination")["memory"]["id"]
        p.relate(trip, old, "part_of")
        before = time.time()
        time.sleep(0.05)
        new = p.add("Eve's trip goes to Oslo", subject="destination")["memory"]["id"]
        p.relate(trip, new, "part_of")
        now = [n["memory"]["id"] for n in p.neighbours(trip)["results"]]
        assert now == [new]  # the superseded memory's link is hidden
        assert {n["memory"]["id"] for n in p.neighbours(trip, include_superseded=True)["results"]} == {old, new}
        then = [n["memory"]["id"] for n in p.neighbours(trip, as_of=before)["results"]]
        assert then == [old]
        assert [m["id"] for m in p.path(trip, old, as_of=before)["memories"]] == [trip, old]
        assert not p.path(trip, old)["found"]
        assert {n["memory"]["id"] for n in p.subgraph(trip, as_of=before)["memories"]} == {trip, old}


def test_recall_expands_along_relationships_and_says_via(daemon):
    # own vectors, so what the floor keeps does not depend on the embedder: the answer is
    # orthogonal to the query and shares no word with it
    key, door, other = [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]
    with Memoturn(daemon.url) as mt:
        p = mt.profile("rel", "recall")
        q = p.add("Frank asked where the spare key is", embedding=key)["memory"]["id"]
        answer = p.add("Under the blue flowerpot by the door", embedding=door)["memory"]["id"]
        p.add("Frank's sister lives in Madrid", embedding=other)
        p.relate(answer, q, "follows", weight=0.5)

        def recall(**kw):
            return p.recall("where is the spare key?", embedding=key, **kw)["results"]

        plain = recall(limit=5)
        assert [h["memory"]["id"] for h in plain] == [q] and plain[0].get("via") is None
        grown = recall(limit=5, expand=["follows"])
        assert [h["memory"]["id"] for h in grown] == [q, answer]
        assert grown[0].get("via") is None
        assert grown[1]["via"] == {
            "relationship": grown[1]["via"]["relationship"],
            "type": "follows",
            "from": q,
            "direction": "in",
        }
        assert grown[1]["score"] == pytest.approx(grown[0]["score"] * relationships.DEFAULT_EXPAND_DECAY * 0.5)
        assert grown[1]["similarity"] == 0.0 and grown[1]["text_match"] is False
        assert [h["memory"]["id"] for h in recall(expand=["follows"], expand_direction="out")] == [q]
        assert [h["memory"]["id"] for h in recall(limit=1, expand=["follows"])] == [q]
        assert [h["memory"]["id"] for h in recall(expand=["caused_by"])] == [q]
        assert [h["memory"]["id"] for h in recall(expand=["follows"], types=["event"])] == []  # filters apply


def test_async_sdk(daemon):
    async def go():
        async with AsyncMemoturn(daemon.url) as mt:
            p = mt.profile("rel", "async")
            a = (await p.add("Gina runs a bakery"))["memory"]["id"]
            b = (await p.add("Gina's bakery sells sourdough"))["memory"]["id"]
            r = await p.relate(b, a, "part_of", weight=0.5)
            assert r["relationship"]["weight"] == 0.5
            hood = await p.neighbours(a, min_txid=r.txid)
            assert [n["memory"]["id"] for n in hood["results"]] == [b]
            assert (await p.path(b, a))["depth"] == 1
            assert len((await p.subgraph(a))["memories"]) == 2
            await p.unrelate(r["relationship"]["id"])
            assert (await p.neighbours(a))["results"] == []

    asyncio.run(go())


def test_relationships_follow_fork_and_rewind_of_the_profile(daemon):
    with Memoturn(daemon.url) as mt:
        p = mt.profile("rel", "branches")
        a, b, c = _ids(p, "Hugo started a garden", "Hugo planted tomatoes", "Hugo's tomatoes got blight")
        first = p.relate(b, a, "part_of")
        p.relate(c, b, "caused_by")
        db = p.database()
        db.fork("before-blight", txid=first.txid)
        db.fork("now")
        early, now = p.on_branch("before-blight"), p.on_branch("now")
        assert [n["memory"]["id"] for n in early.neighbours(b)["results"]] == [a]
        assert {n["memory"]["id"] for n in now.neighbours(b)["results"]} == {a, c}
        # writes on a branch stay there
        now.relate(c, a, "relates_to")
        assert p.neighbours(c, types=["relates_to"])["results"] == []
        assert [n["memory"]["id"] for n in now.neighbours(c, types=["relates_to"])["results"]] == [a]
        # rewinding main takes the later relationship away, undo brings it back
        db.rewind(txid=first.txid)
        assert [n["memory"]["id"] for n in p.neighbours(b)["results"]] == [a]
        db.undo_rewind()
        assert {n["memory"]["id"] for n in p.neighbours(b)["results"]} == {a, c}


def test_relationships_replicate_with_the_file(tmp_path, file_store):
    """A fresh node, restoring the profile's database from the store alone, walks the same graph."""
    rng = np.random.default_rng(7)
    db = "rel--replicated"
    node = make_node(tmp_path, file_store)
    try:
        node.create_database(db)

        def add(conn):
            memories.ensure_schema(conn, 8, "test")
            ids = [memories.add(conn, {"content": f"memory {i}"}, rng.standard_normal(8))[0]["id"] for i in range(4)]
            for src, dst in zip(ids, ids[1:], strict=False):
                relationships.relate(conn, dst, src, "follows")
            return ids

        ids, _ = node.write(db, add)
        branches.fork(node, db, "side")
        node.write(db, lambda c: relationships.relate(c, ids[0], ids[3], "relates_to"), branch="side")
        node.shipper.ship_all(30)
        expected = {
            branch: node.read(db, lambda c: relationships.subgraph(c, ids[0], depth=4), branch=branch)[0]
            for branch in ("main", "side")
        }
    finally:
        node.stop()
    assert len(expected["main"]["relationships"]) == 3 and len(expected["side"]["relationships"]) == 4
    fresh = make_node(tmp_path, file_store, name="fresh")
    try:
        for branch, graph in expected.items():
            got, _ = fresh.read(db, lambda c: relationships.subgraph(c, ids[0], depth=4), branch=branch)
            assert got == graph
        found, _ = fresh.read(db, lambda c: relationships.path(c, ids[3], ids[0], max_depth=3))
        assert [m["id"] for m in found["memories"]] == ids[::-1]
    finally:
        fresh.stop()


def _cli(daemon, *args):
    r = subprocess.run(
        [sys.executable, "-m", "memoturn.cli", "--url", daemon.url, *args], capture_output=True, text=True, timeout=120
    )
    return r


def test_cli(daemon):
    with Memoturn(daemon.url) as mt:
        p = mt.profile("rel", "cli")
        a, b = _ids(p, "Ivan fixed the bike", "The bike had a flat tyre")
    r = _cli(daemon, "--json", "memory", "relate", "rel", "cli", a, b, "--type", "caused_by", "--weight", "0.7")
    assert r.returncode == 0, r.stderr
    rel = json.loads(r.stdout)["relationship"]
    assert rel["type"] == "caused_by" and rel["weight"] == 0.7
    r = _cli(daemon, "memory", "neighbours", "rel", "cli", a)
    assert r.returncode == 0 and "[caused_by]" in r.stdout and "flat tyre" in r.stdout
    r = _cli(daemon, "memory", "path", "rel", "cli", a, b)
    assert r.returncode == 0 and "-[caused_by]->" in r.stdout
    r = _cli(daemon, "--json", "memory", "subgraph", "rel", "cli", b)
    assert r.returncode == 0 and len(json.loads(r.stdout)["memories"]) == 2
    r = _cli(daemon, "memory", "recall", "rel", "cli", "who fixed the bike", "--expand", "caused_by")
    assert r.returncode == 0 and "Ivan fixed the bike" in r.stdout
    r = _cli(daemon, "memory", "unrelate", "rel", "cli", rel["id"])
    assert r.returncode == 0 and rel["id"] in r.stdout
    for args in (
        ("memory", "relate", "rel", "cli", a, a),
        ("memory", "relate", "rel", "cli", a, b, "--type", "Bad Type"),
        ("memory", "unrelate", "rel", "cli", rel["id"]),
        ("memory", "relate", "rel", "cli", a, b, "--properties", "[1]"),
        ("memory", "path", "rel", "cli", a, b, "--max-depth", "9"),
    ):
        r = _cli(daemon, *args)
        assert r.returncode in (1, 2) and r.stderr.startswith("memoturn:") and "Traceback" not in r.stderr, args


def test_mcp_tools(daemon):
    with Memoturn(daemon.url) as mt:
        p = mt.profile("rel", "mcp")
        a, b, c = _ids(p, "Jon's flight was cancelled", "A storm hit Chicago", "Jon stayed at a hotel")

    def payload(result):
        assert not result.is_error, result.content
        data = result.structured_content
        if data is not None:
            return data.get("result", data) if isinstance(data, dict) else data
        return json.loads(result.content[0].text)

    async def go():
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "memoturn.cli", "--url", daemon.url, "mcp", "--namespace", "rel", "--profile", "mcp"],
        )
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = {t.name: t for t in (await session.list_tools()).tools}
                for name in ("memory_relate", "memory_unrelate", "memory_neighbours", "memory_path", "memory_subgraph"):
                    schema = tools[name].input_schema
                    assert tools[name].description
                    assert all(prop.get("description") for prop in schema["properties"].values()), name
                assert "expand" in tools["memory_recall"].input_schema["properties"]
                r = payload(
                    await session.call_tool("memory_relate", {"source_id": a, "target_id": b, "type": "caused_by"})
                )
                assert r["duplicate"] is False
                payload(await session.call_tool("memory_relate", {"source_id": c, "target_id": a, "type": "caused_by"}))
                hood = payload(await session.call_tool("memory_neighbours", {"memory_id": a}))
                assert {(n["direction"], n["memory"]["id"]) for n in hood} == {("out", b), ("in", c)}
                path = payload(await session.call_tool("memory_path", {"from_id": c, "to_id": b, "direction": "out"}))
                assert path["found"] and [m["id"] for m in path["memories"]] == [c, a, b]
                sub = payload(await session.call_tool("memory_subgraph", {"memory_id": b, "depth": 2}))
                assert {m["id"] for m in sub["memories"]} == {a, b, c}
                hits = payload(
                    await session.call_tool(
                        "memory_recall", {"query": "why was the flight cancelled", "expand": ["caused_by"]}
                    )
                )
                assert hits and all(h["via"]["from"] in (a, b, c) for h in hits if "via" in h)
                bad = await session.call_tool("memory_relate", {"source_id": a, "target_id": a})
                assert bad.is_error and "self-relationship" in bad.content[0].text
                bad = await session.call_tool("memory_neighbours", {"memory_id": a, "direction": "sideways"})
                assert bad.is_error
                gone = payload(await session.call_tool("memory_unrelate", {"relationship_id": r["id"]}))
                assert gone["removed"] == r["id"]
                assert {
                    n["memory"]["id"] for n in payload(await session.call_tool("memory_neighbours", {"memory_id": a}))
                } == {c}

    asyncio.run(go())


def test_recall_bench_measures_expansion(tmp_path):
    """``bench.recall --expand`` links each turn to the previous one of its session and reports
    every expansion variant next to the unexpanded figures."""
    turns = [("Ana", "I adopted a kitten called Pepper yesterday!"), ("Ben", "Congrats! What colour is she?")]
    conversation = {
        "speaker_a": "Ana",
        "speaker_b": "Ben",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [{"speaker": s, "dia_id": f"D1:{i + 1}", "text": t} for i, (s, t) in enumerate(turns)]
        + [{"speaker": "Ana", "dia_id": "D1:3", "text": "Black with white paws."}],
        "session_2_date_time": "10:00 am on 20 May, 2023",
        "session_2": [
            {"speaker": "Ben", "dia_id": "D2:1", "text": "I finished the Berlin marathon."},
            {"speaker": "Ana", "dia_id": "D2:2", "text": "Well done!"},
        ],
    }
    qa = [{"question": "What colour is Ana's kitten?", "answer": "black", "evidence": ["D1:3"], "category": 1}]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps([{"sample_id": "tiny", "conversation": conversation, "qa": qa}]))
    out = tmp_path / "expand.json"
    r = subprocess.run(
        [sys.executable, "-m", "bench.recall", "--data", str(path), "--expand", "--no-sweep", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(__import__("pathlib").Path(__file__).parents[1]),
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    expansion = result["expansion"]
    assert expansion["relationships"] == 3  # D1:2->D1:1, D1:3->D1:2, D2:2->D2:1; none across sessions
    assert expansion["off"]["r_at_5"] == result["r_at_5"]
    assert len(expansion["variants"]) == 15
    for row in expansion["variants"]:
        assert row["direction"] in ("out", "in", "both") and 0 < row["decay"] <= 1
        assert set(row["per_category"]) == {"1"} and 0 <= row["r_at_5"] <= 1
