"""The MCP server as an MCP client sees it: stdio and streamable HTTP, tools listed and called against a real node."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import httpx2
import pytest
from mcp import ClientSession, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from memoturn.data.memories import BUILTIN_TYPES
from support.nodes import Memoturnd, free_port

TOOLS = {
    "memory_store",
    "memory_recall",
    "memory_get",
    "memory_update",
    "memory_forget",
    "memory_list",
    "memory_export",
    "memory_forget_matching",
    "memory_stats",
    "memory_checkpoint",
    "memory_rewind",
    "memory_undo_rewind",
    "memory_fork",
    "memory_drop_branch",
    "memory_branches",
    "memory_relate",
    "memory_unrelate",
    "memory_neighbours",
    "memory_path",
    "memory_subgraph",
}
HTTP_TOKEN = "s3cret-mcp-token"


def _payload(result):
    assert not result.is_error, result.content
    if result.structured_content is not None:
        data = result.structured_content
        return data.get("result", data) if isinstance(data, dict) else data
    return json.loads(result.content[0].text)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("MEMOTURN_MCP_TOKEN", "MEMOTURN_URL", "MEMOTURN_TOKEN")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    data = tmp_path_factory.mktemp("mcp") / "data"
    n = Memoturnd(str(data), f"file://{data}/store")
    try:
        n.wait_ready()
        yield n
    finally:
        n.close()


def _stdio(*args, env=None):
    return StdioServerParameters(command=sys.executable, args=["-m", "memoturn.cli", *args], env=env or _env())


async def _over_stdio(params, fn):
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await fn(session)


async def _over_http(url, fn, token=HTTP_TOKEN):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await fn(session)


@contextlib.contextmanager
def _http_server(*args, env=None):
    """``memoturn … mcp --http 127.0.0.1:PORT``; yields (the /mcp URL, the process) once it accepts connections."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "memoturn.cli", *args, "--http", f"127.0.0.1:{port}"],
        env=env or _env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the MCP server did not listen within 30s"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_mcp_tools_store_recall_update_forget_list_export(node):
    params = _stdio("mcp", "--url", node.url, "--namespace", "agents", "--profile", "claude")

    async def go(session):
        tools = {t.name for t in (await session.list_tools()).tools}
        assert TOOLS <= tools
        stored = _payload(
            await session.call_tool(
                "memory_store",
                {"content": "The user's dog is called Rex", "type": "fact", "tags": ["pets"]},
            )
        )
        other = _payload(await session.call_tool("memory_store", {"content": "The user lives in Oslo"}))
        hits = _payload(await session.call_tool("memory_recall", {"query": "what is the dog's name?", "limit": 1}))
        assert hits[0]["content"] == "The user's dog is called Rex"
        updated = _payload(
            await session.call_tool("memory_update", {"memory_id": other["id"], "content": "The user moved to Bergen"})
        )
        assert updated["supersedes"] == other["id"]
        listed = _payload(await session.call_tool("memory_list", {}))["memories"]
        assert sorted(m["content"] for m in listed) == [
            "The user moved to Bergen",
            "The user's dog is called Rex",
        ]
        old = _payload(await session.call_tool("memory_get", {"memory_id": other["id"]}))
        assert old["current"] is False and old["superseded_by"] == updated["id"]
        await session.call_tool("memory_forget", {"memory_id": stored["id"]})
        exported = _payload(await session.call_tool("memory_export", {}))
        assert sorted(m["content"] for m in exported) == [
            "The user lives in Oslo",
            "The user moved to Bergen",
        ]
        bad = await session.call_tool("memory_forget", {"memory_id": "nope"})
        assert bad.is_error and "404" in bad.content[0].text

    asyncio.run(_over_stdio(params, go))
    r = node.client.get("/v1/namespaces/agents/profiles/claude")
    assert r.json()["current"] == 1


async def _supersession_across_updates(session, profile):
    """green tea -> (update) black coffee -> (store, same subject) only water: one current memory."""
    args = {"profile_name": profile}
    tea = _payload(
        await session.call_tool(
            "memory_store",
            {"content": "The user drinks green tea", "type": "preference", "subject": "drink", **args},
        )
    )
    coffee = _payload(
        await session.call_tool(
            "memory_update",
            {
                "memory_id": tea["id"],
                "content": "The user drinks black coffee",
                "event_time": "2024-06-10T10:00:00Z",
                **args,
            },
        )
    )
    assert coffee["supersedes"] == tea["id"]
    got = _payload(await session.call_tool("memory_get", {"memory_id": coffee["id"], **args}))
    assert (got["subject"], got["type"], got["event_time"]) == ("drink", "preference", 1718013600.0)
    water = _payload(
        await session.call_tool(
            "memory_store",
            {"content": "The user drinks only water", "type": "preference", "subject": "drink", **args},
        )
    )
    current = _payload(await session.call_tool("memory_list", args))["memories"]
    assert [m["content"] for m in current] == ["The user drinks only water"]
    coffee_now = _payload(await session.call_tool("memory_get", {"memory_id": coffee["id"], **args}))
    assert coffee_now["current"] is False and coffee_now["superseded_by"] == water["id"]
    history = {m["content"]: m for m in _payload(await session.call_tool("memory_export", args))}
    assert history["The user drinks green tea"]["superseded_by"] == coffee["id"]
    assert history["The user drinks only water"]["supersedes"] == coffee["id"]
    again = await session.call_tool("memory_update", {"memory_id": tea["id"], "content": "tea again", **args})
    assert again.is_error and "already-superseded" in again.content[0].text


def test_mcp_update_keeps_the_subject_so_a_later_memory_supersedes_it_over_stdio(node):
    params = _stdio("mcp", "--url", node.url, "--namespace", "agents")
    asyncio.run(_over_stdio(params, lambda s: _supersession_across_updates(s, "update-stdio")))


def test_mcp_update_keeps_the_subject_so_a_later_memory_supersedes_it_over_http(node):
    with _http_server("--url", node.url, "mcp", "--namespace", "agents", env=_env(MEMOTURN_MCP_TOKEN=HTTP_TOKEN)) as (
        url,
        _,
    ):
        asyncio.run(_over_http(url, lambda s: _supersession_across_updates(s, "update-http")))


def _listed_tools(node):
    """The tools as an MCP client lists them over stdio (default namespace agents, profile claude)."""
    params = _stdio("mcp", "--url", node.url, "--namespace", "agents", "--profile", "claude")

    async def go(session):
        return {t.name: t for t in (await session.list_tools()).tools}

    return asyncio.run(_over_stdio(params, go))


def test_mcp_tools_and_parameters_are_described(node):
    """Every tool (the agent tools of test_mcp_agent_tools.py too) and every parameter is described."""
    tools = _listed_tools(node)
    assert TOOLS <= set(tools)
    for name, tool in tools.items():
        assert tool.description and not tool.description.startswith(" "), name
        assert tool.title and tool.annotations is not None, name
        assert tool.annotations.open_world_hint is False, name
        for param, schema in tool.input_schema["properties"].items():
            assert schema.get("description"), f"{name}.{param} has no description"
        assert {"namespace", "profile_name"} <= set(tool.input_schema["properties"]), name
    for name in ("memory_recall", "memory_list", "memory_get", "memory_export"):
        assert tools[name].annotations.read_only_hint is True, name
    for name in ("memory_store", "memory_update", "memory_forget"):
        assert tools[name].annotations.read_only_hint is False, name
    assert tools["memory_forget"].annotations.destructive_hint is True
    assert tools["memory_forget"].annotations.idempotent_hint is True
    assert tools["memory_store"].annotations.destructive_hint is False
    assert tools["memory_store"].annotations.idempotent_hint is True
    assert tools["memory_update"].annotations.destructive_hint is False
    assert tools["memory_update"].annotations.idempotent_hint is False
    store = tools["memory_store"].input_schema["properties"]
    assert all(t in store["type"]["description"] for t in BUILTIN_TYPES)
    for name in ("memory_store", "memory_update"):
        when = tools[name].input_schema["properties"]["event_time"]["description"]
        assert "seconds since the Unix epoch" in when and "ISO 8601" in when, name
    assert "'claude'" in store["profile_name"]["description"] and "'agents'" in store["namespace"]["description"]


def test_global_url_reaches_the_mcp_subcommand(node):
    # MEMOTURN_URL points nowhere: only the global --url before `mcp` can reach the node.
    params = _stdio(
        "--url",
        node.url,
        "mcp",
        "--namespace",
        "agents",
        "--profile",
        "global-url",
        env=_env(MEMOTURN_URL="http://127.0.0.1:9"),
    )

    async def go(session):
        assert TOOLS <= {t.name for t in (await session.list_tools()).tools}
        _payload(await session.call_tool("memory_store", {"content": "reached through the global --url"}))

    asyncio.run(_over_stdio(params, go))
    assert node.client.get("/v1/namespaces/agents/profiles/global-url").json()["current"] == 1


def test_mcp_over_http_requires_the_bearer_token(node):
    with _http_server(
        "--url", node.url, "mcp", "--namespace", "agents", "--profile", "http-auth", "--http-token", HTTP_TOKEN
    ) as (url, _):
        hello = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        headers = {"Accept": "application/json, text/event-stream"}
        for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": HTTP_TOKEN}):
            r = httpx.post(url, json=hello, headers={**headers, **auth}, timeout=30)
            assert r.status_code == 401, (auth, r.status_code, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")

        async def go(session):
            assert TOOLS <= {t.name for t in (await session.list_tools()).tools}
            _payload(await session.call_tool("memory_store", {"content": "stored over authenticated HTTP"}))
            return _payload(await session.call_tool("memory_list", {}))["memories"]

        listed = asyncio.run(_over_http(url, go))
        assert [m["content"] for m in listed] == ["stored over authenticated HTTP"]

        with pytest.raises(ExceptionGroup) as refused:
            asyncio.run(_over_http(url, go, token="wrong"))
        assert refused.group_contains(MCPError, depth=None)
    assert node.client.get("/v1/namespaces/agents/profiles/http-auth").json()["current"] == 1


def test_mcp_over_http_refuses_a_non_loopback_address_without_a_token(node):
    r = subprocess.run(
        [sys.executable, "-m", "memoturn.cli", "--url", node.url, "mcp", "--http", f"0.0.0.0:{free_port()}"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert "refusing" in r.stderr and "MEMOTURN_MCP_TOKEN" in r.stderr


def test_mcp_over_http_on_loopback_without_a_token_warns(node):
    with _http_server("--url", node.url, "mcp") as (url, proc):
        # The warning is written before the server listens.
        assert "warning" in proc.stderr.readline().decode()
        r = httpx.post(url, json={}, headers={"Accept": "application/json, text/event-stream"}, timeout=30)
        assert r.status_code != 401
