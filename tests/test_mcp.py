"""The MCP server as an MCP client sees it: stdio, tools listed and called against a real node."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from support.nodes import Memoturnd


def _payload(result):
    assert not result.is_error, result.content
    if result.structured_content is not None:
        data = result.structured_content
        return data.get("result", data) if isinstance(data, dict) else data
    return json.loads(result.content[0].text)


def test_mcp_tools_store_recall_update_forget_list_export(tmp_path):
    data = tmp_path / "data"
    node = Memoturnd(str(data), f"file://{data}/store")
    try:
        node.wait_ready()
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "memoturn.cli", "mcp", "--url", node.url, "--namespace", "agents", "--profile", "claude"],
            env={**os.environ},
        )

        async def go():
            async with stdio_client(params) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    tools = {t.name for t in (await session.list_tools()).tools}
                    assert {
                        "memory_store",
                        "memory_recall",
                        "memory_update",
                        "memory_forget",
                        "memory_list",
                        "memory_export",
                    } <= tools
                    stored = _payload(
                        await session.call_tool(
                            "memory_store",
                            {"content": "The user's dog is called Rex", "type": "fact", "tags": ["pets"]},
                        )
                    )
                    other = _payload(await session.call_tool("memory_store", {"content": "The user lives in Oslo"}))
                    hits = _payload(
                        await session.call_tool("memory_recall", {"query": "what is the dog's name?", "limit": 1})
                    )
                    assert hits[0]["content"] == "The user's dog is called Rex"
                    updated = _payload(
                        await session.call_tool(
                            "memory_update", {"memory_id": other["id"], "content": "The user moved to Bergen"}
                        )
                    )
                    assert updated["supersedes"] == other["id"]
                    listed = _payload(await session.call_tool("memory_list", {}))
                    assert sorted(m["content"] for m in listed) == [
                        "The user moved to Bergen",
                        "The user's dog is called Rex",
                    ]
                    await session.call_tool("memory_forget", {"memory_id": stored["id"]})
                    exported = _payload(await session.call_tool("memory_export", {}))
                    assert sorted(m["content"] for m in exported) == [
                        "The user lives in Oslo",
                        "The user moved to Bergen",
                    ]
                    bad = await session.call_tool("memory_forget", {"memory_id": "nope"})
                    assert bad.is_error and "404" in bad.content[0].text

        asyncio.run(go())
        r = node.client.get("/v1/namespaces/agents/profiles/claude")
        assert r.json()["current"] == 1
    finally:
        node.close()
