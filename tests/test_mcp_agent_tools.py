"""The MCP tools agents rely on, as an MCP client sees them over stdio and streamable HTTP against
a real node: time windows (in words too), paging, forget by filter with a dry run, stats,
checkpoint / rewind / undo, a scratch branch forked and dropped, and recall as of a past time."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from support.nodes import Memoturnd
from test_mcp import HTTP_TOKEN, _env, _http_server, _listed_tools, _over_http, _over_stdio, _payload, _stdio

AGENT_TOOLS = {
    "memory_forget_matching",
    "memory_stats",
    "memory_checkpoint",
    "memory_rewind",
    "memory_undo_rewind",
    "memory_fork",
    "memory_drop_branch",
    "memory_branches",
}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    data = tmp_path_factory.mktemp("mcp-agent") / "data"
    n = Memoturnd(str(data), f"file://{data}/store")
    try:
        n.wait_ready()
        yield n
    finally:
        n.close()


async def _call(session, tool, **args):
    return _payload(await session.call_tool(tool, args))


async def _error(session, tool, **args):
    result = await session.call_tool(tool, args)
    assert result.is_error, result.content
    return result.content[0].text


async def _contents(session, **args):
    """Every memory memory_list gives, following next_cursor a page of 2 at a time."""
    out, cursor = [], None
    while True:
        page = await _call(session, "memory_list", limit=2, **({"cursor": cursor} if cursor else {}), **args)
        assert len(page["memories"]) <= 2
        out += [m["content"] for m in page["memories"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return sorted(out)


async def _agent_session(session, profile):
    p = {"profile_name": profile}
    tools = {t.name for t in (await session.list_tools()).tools}
    assert AGENT_TOOLS <= tools

    # A fresh profile: the server is up, nothing stored; a checkpoint before the first memory.
    stats = await _call(session, "memory_stats", **p)
    assert stats["server"]["status"] == "ok" and stats["profile"] is None
    assert await _call(session, "memory_branches", **p) == []
    start = await _call(session, "memory_checkpoint", name="start", **p)
    assert start["checkpoint"] == "start" and start["branch"] == "main"

    # Time windows: an old event, one from yesterday, one stored now.
    yesterday = (datetime.now().astimezone() - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    await _call(
        session,
        "memory_store",
        content="The user started project X",
        event_time="2024-06-03T09:00:00Z",
        tags=["project-x"],
        **p,
    )
    await _call(session, "memory_store", content="The user walked the dog", event_time=yesterday.isoformat(), **p)
    await _call(session, "memory_store", content="The user fed the dog", **p)
    assert await _contents(session, window="yesterday", **p) == ["The user walked the dog"]
    assert await _contents(session, window="today", **p) == ["The user fed the dog"]
    assert await _contents(session, window="past 3 days", **p) == ["The user fed the dog", "The user walked the dog"]
    assert await _contents(session, since="2024-06-01T00:00:00Z", until="2024-06-30T00:00:00Z", **p) == [
        "The user started project X"
    ]
    hits = await _call(session, "memory_recall", query="dog", window="yesterday", **p)
    assert [h["content"] for h in hits] == ["The user walked the dog"]
    assert len(await _contents(session, **p)) == 3
    assert "unknown time window" in await _error(session, "memory_list", window="next tuesday", **p)
    assert "not both" in await _error(session, "memory_recall", query="dog", window="today", since=0, **p)
    assert "after until" in await _error(session, "memory_list", since=20, until=10, **p)

    # Forget by tag: a dry run by default, then for real.
    dry = await _call(session, "memory_forget_matching", tags=["project-x"], **p)
    assert dry["dry_run"] is True and dry["count"] == 1
    assert len(await _contents(session, **p)) == 3
    done = await _call(session, "memory_forget_matching", tags=["project-x"], dry_run=False, **p)
    assert done["count"] == 1 and done["ids"] == dry["ids"]
    assert await _contents(session, **p) == ["The user fed the dog", "The user walked the dog"]
    assert "empty-filter" in await _error(session, "memory_forget_matching", dry_run=False, **p)

    # Rewind to the checkpoint, and undo that.
    rewound = await _call(session, "memory_rewind", checkpoint="start", **p)
    assert rewound["head_txid"] == start["txid"]
    assert await _contents(session, **p) == []
    assert await _call(session, "memory_recall", query="dog", **p) == []
    await _call(session, "memory_undo_rewind", **p)
    assert await _contents(session, **p) == ["The user fed the dog", "The user walked the dog"]
    assert "exactly one" in await _error(session, "memory_rewind", **p)
    assert "nothing-to-undo" in await _error(session, "memory_undo_rewind", **p)

    # Recall as of a past time.
    tea = await _call(session, "memory_store", content="The user drinks green tea", subject="drink", **p)
    await _call(session, "memory_store", content="The user drinks black coffee", subject="drink", **p)
    coffee_from = (await _call(session, "memory_get", memory_id=tea["id"], **p))["valid_to"]
    then = await _call(session, "memory_recall", query="what does the user drink", as_of=coffee_from - 1e-3, **p)
    assert [h["content"] for h in then][:1] == ["The user drinks green tea"]
    now = await _call(session, "memory_recall", query="what does the user drink", **p)
    assert "The user drinks green tea" not in [h["content"] for h in now]
    past = await _call(session, "memory_list", as_of=coffee_from - 1e-3, **p)
    assert "The user drinks green tea" in [m["content"] for m in past["memories"]]

    # A scratch branch for a sub-task: its writes stay there, and it goes when dropped.
    fork = await _call(session, "memory_fork", name="subtask", **p)
    assert fork["branch"] == "subtask" and fork["parent"]["branch"] == "main"
    scratch = {"branch": "subtask", **p}
    await _call(session, "memory_store", content="Draft: try the shorter route", **scratch)
    assert "Draft: try the shorter route" in await _contents(session, **scratch)
    assert "Draft: try the shorter route" not in await _contents(session, **p)
    hits = await _call(session, "memory_recall", query="shorter route draft", **scratch)
    assert hits[0]["content"] == "Draft: try the shorter route"
    branches = {b["branch"]: b for b in await _call(session, "memory_branches", **p)}
    assert set(branches) == {"main", "subtask"} and branches["main"]["checkpoints"] == {"start": start["txid"]}
    assert (await _call(session, "memory_stats", **scratch))["profile"]["current"] == 4
    assert await _call(session, "memory_drop_branch", branch="subtask", **p) == {"dropped": "subtask"}
    assert "404" in await _error(session, "memory_list", **scratch)
    assert "404" in await _error(session, "memory_drop_branch", branch="subtask", **p)

    stats = await _call(session, "memory_stats", **p)
    assert stats["profile"]["current"] == 3 and stats["profile"]["memories"] == 4
    return stats


def test_agent_tools_over_stdio(node):
    params = _stdio("mcp", "--url", node.url, "--namespace", "agents")
    asyncio.run(_over_stdio(params, lambda s: _agent_session(s, "agent-stdio")))
    assert node.client.get("/v1/namespaces/agents/profiles/agent-stdio").json()["current"] == 3


def test_agent_tools_over_http(node):
    with _http_server("--url", node.url, "mcp", "--namespace", "agents", env=_env(MEMOTURN_MCP_TOKEN=HTTP_TOKEN)) as (
        url,
        _,
    ):
        asyncio.run(_over_http(url, lambda s: _agent_session(s, "agent-http")))


def test_agent_tools_are_listed_and_annotated(node):
    """Listed, and marked read-only or destructive as they are (descriptions: test_mcp.py checks every tool)."""
    tools = _listed_tools(node)
    assert AGENT_TOOLS <= set(tools)
    for name in ("memory_stats", "memory_branches"):
        assert tools[name].annotations.read_only_hint is True, name
    for name in ("memory_forget_matching", "memory_rewind", "memory_drop_branch"):
        assert tools[name].annotations.read_only_hint is False, name
        assert tools[name].annotations.destructive_hint is True, name
    for name in ("memory_checkpoint", "memory_fork", "memory_undo_rewind"):
        assert tools[name].annotations.destructive_hint is False, name
    forget = tools["memory_forget_matching"].input_schema["properties"]
    assert forget["dry_run"]["default"] is True
    assert "last week" in forget["window"]["description"]
    for name in ("memory_store", "memory_recall", "memory_get", "memory_update", "memory_forget", "memory_list"):
        assert "branch" in tools[name].input_schema["properties"], name
    for name in ("memory_recall", "memory_list"):
        props = tools[name].input_schema["properties"]
        assert {"window", "since", "until", "as_of"} <= set(props), name
    assert "next_cursor" in tools["memory_list"].description
