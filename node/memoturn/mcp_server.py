"""``memoturn mcp``: an MCP server exposing a profile's memories as tools for agents.

Runs over stdio (for desktop MCP clients) or streamable HTTP (``--http HOST:PORT``), and
talks to a Memoturn node or gateway through the SDK (``MEMOTURN_URL``, ``MEMOTURN_TOKEN``).
Every tool takes ``namespace`` and ``profile``, defaulting to ``MEMOTURN_NAMESPACE`` and
``MEMOTURN_PROFILE``. Tools: ``memory_store``, ``memory_recall``, ``memory_update``
(supersede), ``memory_forget``, ``memory_list``, ``memory_export``. Errors come back as tool
errors with the server's problem detail.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .client import Memoturn, ProblemError
from .errors import MemoturnError
from .netaddr import parse_host_port


def _message(exc: MemoturnError) -> str:
    """A tool error's text: the server's status, problem type and detail (no status if it never answered)."""
    if isinstance(exc, ProblemError):
        return f"{exc.status} {exc.type}: {exc.detail}"
    return f"{exc.type}: {exc.detail}"


def build_server(client: Memoturn, default_namespace: str, default_profile: str) -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(
        name="memoturn",
        instructions=(
            "Long-term memory for this agent. Store durable facts, preferences, events and instructions with "
            "memory_store; use memory_recall before answering questions about the user or past sessions; use "
            "memory_update when something changed (it keeps history)."
        ),
    )

    def profile(namespace: str | None, name: str | None) -> Any:
        return client.profile(namespace or default_namespace, name or default_profile)

    from mcp.server.mcpserver.exceptions import ToolError

    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MemoturnError as exc:
            raise ToolError(_message(exc)) from None

    def slim(m: dict[str, Any]) -> dict[str, Any]:
        return {k: m[k] for k in ("id", "type", "content", "tags", "subject", "metadata", "event_time", "current")}

    @server.tool()
    def memory_store(
        content: str,
        type: str = "fact",
        subject: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        event_time: float | None = None,
        namespace: str | None = None,
        profile_name: str | None = None,
    ) -> dict[str, Any]:
        """Store a memory. A memory with the same subject as a current one supersedes it."""
        r = call(
            profile(namespace, profile_name).add,
            content,
            type=type,
            subject=subject,
            tags=tags,
            metadata=metadata,
            event_time=event_time,
        )
        return {"id": r["memory"]["id"], "duplicate": r["duplicate"], "txid": r.txid}

    @server.tool()
    def memory_recall(
        query: str,
        limit: int = 5,
        types: list[str] | None = None,
        tags: list[str] | None = None,
        namespace: str | None = None,
        profile_name: str | None = None,
    ) -> list[dict[str, Any]]:
        """Find the memories most relevant to a query (keyword and meaning), newest state only."""
        r = call(profile(namespace, profile_name).recall, query, limit=limit, types=types, tags=tags)
        return [{**slim(h["memory"]), "score": round(h["score"], 5)} for h in r["results"]]

    @server.tool()
    def memory_update(
        memory_id: str, content: str, namespace: str | None = None, profile_name: str | None = None
    ) -> dict[str, Any]:
        """Replace a memory with new content; the old one stays in its history as superseded."""
        p = profile(namespace, profile_name)
        old = call(p.get, memory_id)
        r = call(
            p.add,
            content,
            type=old["type"],
            supersedes=memory_id,
            tags=old["tags"] or None,
            metadata=old["metadata"] or None,
        )
        return {"id": r["memory"]["id"], "supersedes": memory_id, "txid": r.txid}

    @server.tool()
    def memory_forget(memory_id: str, namespace: str | None = None, profile_name: str | None = None) -> dict[str, Any]:
        """Delete a memory for good."""
        call(profile(namespace, profile_name).forget, memory_id)
        return {"forgotten": memory_id}

    @server.tool()
    def memory_list(
        types: list[str] | None = None, limit: int = 50, namespace: str | None = None, profile_name: str | None = None
    ) -> list[dict[str, Any]]:
        """List current memories (optionally of some types)."""
        r = call(profile(namespace, profile_name).list, types=types, limit=limit)
        return [slim(m) for m in r["memories"]]

    @server.tool()
    def memory_export(namespace: str | None = None, profile_name: str | None = None) -> list[dict[str, Any]]:
        """Every memory of the profile, superseded ones included, for backup or review."""
        p = profile(namespace, profile_name)
        out, cursor = [], None
        while True:
            page = call(p.list, include_superseded=True, limit=1000, cursor=cursor)
            out += page["memories"]
            cursor = page["next_cursor"]
            if not cursor:
                return out

    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="memoturn mcp",
        description="MCP server exposing a Memoturn profile's memories as tools for agents.",
    )
    p.add_argument(
        "--url",
        default=os.environ.get("MEMOTURN_URL", "http://127.0.0.1:7411"),
        help="node or gateway URL (env MEMOTURN_URL; default %(default)s)",
    )
    p.add_argument("--token", default=os.environ.get("MEMOTURN_TOKEN"), help="bearer token (env MEMOTURN_TOKEN)")
    p.add_argument(
        "--namespace",
        default=os.environ.get("MEMOTURN_NAMESPACE", "default"),
        help="namespace when a tool call names none (env MEMOTURN_NAMESPACE; default %(default)s)",
    )
    p.add_argument(
        "--profile",
        default=os.environ.get("MEMOTURN_PROFILE", "default"),
        help="profile when a tool call names none (env MEMOTURN_PROFILE; default %(default)s)",
    )
    p.add_argument("--http", metavar="HOST:PORT", help="serve streamable HTTP on this address instead of stdio")
    args = p.parse_args(argv)
    listen = None
    if args.http:
        try:
            listen = parse_host_port(args.http, what="--http")
        except ValueError as exc:
            p.error(str(exc))
    client = Memoturn(args.url, token=args.token)
    server = build_server(client, args.namespace, args.profile)
    if listen is not None:
        host, port = listen
        server.run("streamable-http", host=host, port=port)
    else:
        server.run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
