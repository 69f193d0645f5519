"""``memoturn mcp``: an MCP server exposing a profile's memories as tools for agents.

Runs over stdio (for desktop MCP clients) or streamable HTTP (``--http HOST:PORT``, endpoint
``/mcp``), and talks to a Memoturn node or gateway through the SDK (``--url``/``MEMOTURN_URL``,
``--token``/``MEMOTURN_TOKEN``; ``memoturn --url URL mcp`` and ``memoturn mcp --url URL`` both
work). Every tool takes ``namespace`` and ``profile_name``, defaulting to ``--namespace`` and
``--profile`` (``MEMOTURN_NAMESPACE``, ``MEMOTURN_PROFILE``). Tools: ``memory_store``,
``memory_recall``, ``memory_get``, ``memory_update`` (supersede), ``memory_forget``,
``memory_list``, ``memory_export``. Errors come back as tool errors with the server's problem
detail.

The HTTP transport acts with the Memoturn token on behalf of whoever reaches its port, so it
requires a bearer token of its own (``--http-token``/``MEMOTURN_MCP_TOKEN``): without one it
refuses to listen on anything but a loopback address, and warns on loopback.

No ``from __future__ import annotations`` here: the tools' parameter descriptions are
``Annotated[..., Field(...)]`` built from names imported inside :func:`build_server` (``mcp`` and
pydantic are the ``mcp`` extra, not imported by the CLI until it serves), and the SDK reads the
annotations as evaluated objects.
"""

import argparse
import hmac
import inspect
import ipaddress
import os
import sys
from collections.abc import Callable
from typing import Any

from .client import Memoturn, ProblemError
from .errors import MemoturnError
from .netaddr import parse_host_port

# The built-in memory types (data/memories.py BUILTIN_TYPES, which the SDK side does not import),
# as an agent should read them.
TYPES_HELP = (
    "fact (something true about the user or the world), preference (a like, dislike or choice), "
    "event (something that happened; give event_time), instruction (how the agent should behave), "
    "episode (a summary of a session or task); or a type of your own: lowercase a-z, 0-9, '_' or '-', "
    "starting with a letter, at most 64 characters"
)
EVENT_TIME_HELP = (
    "seconds since the Unix epoch as a number (e.g. 1718013600), or an ISO 8601 date-time string "
    "with its UTC offset (e.g. '2024-06-10T10:00:00Z'; without an offset it is read in the server's time zone)"
)
MCP_TOKEN_ENV = "MEMOTURN_MCP_TOKEN"


def _message(exc: MemoturnError) -> str:
    """A tool error's text: the server's status, problem type and detail (no status if it never answered)."""
    if isinstance(exc, ProblemError):
        return f"{exc.status} {exc.type}: {exc.detail}"
    return f"{exc.type}: {exc.detail}"


def build_server(
    client: Memoturn,
    default_namespace: str,
    default_profile: str,
    *,
    http_token: str | None = None,
    http_url: str = "http://127.0.0.1",
) -> Any:
    """The MCP server over ``client``; with ``http_token``, its HTTP transport requires ``Bearer <http_token>``.

    ``http_url`` is where the HTTP transport listens, named as the issuer of that token (the SDK's
    auth settings require one; no OAuth metadata is published).
    """
    from typing import Annotated

    from mcp.server.auth.provider import AccessToken
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations
    from pydantic import Field

    class StaticToken:
        """A TokenVerifier accepting the one configured token (compared in constant time)."""

        def __init__(self, token: str) -> None:
            self.token = token.encode()

        async def verify_token(self, token: str) -> AccessToken | None:
            if hmac.compare_digest(token.encode(), self.token):
                return AccessToken(token=token, client_id="memoturn-mcp", scopes=[])
            return None

    server = MCPServer(
        name="memoturn",
        instructions=(
            "Long-term memory for this agent. Store durable facts, preferences, events and instructions with "
            "memory_store (give a subject such as 'drink' or 'home_city' to anything that can change later); "
            "use memory_recall before answering questions about the user or past sessions; use memory_update "
            "when something changed (the old memory is kept in history as superseded)."
        ),
        token_verifier=StaticToken(http_token) if http_token else None,
        auth=AuthSettings(issuer_url=http_url, resource_server_url=None) if http_token else None,
    )

    Namespace = Annotated[
        str | None,
        Field(description=f"Namespace (tenant) of the profile; omit for this server's default, {default_namespace!r}"),
    ]
    ProfileName = Annotated[
        str | None,
        Field(
            description="Profile (an agent or a user) whose memories to use, created on first use; "
            f"omit for this server's default, {default_profile!r}"
        ),
    ]
    MemoryId = Annotated[
        str, Field(description="The memory's id, as returned by memory_store, memory_recall or memory_list")
    ]
    EventTime = Annotated[float | str | None, Field(description=f"When it happened or became true: {EVENT_TIME_HELP}")]
    Types = Annotated[
        list[str] | None,
        Field(description=f"Only memories of these types; omit for all. Built-in types: {TYPES_HELP}"),
    ]

    def profile(namespace: str | None, name: str | None) -> Any:
        return client.profile(namespace or default_namespace, name or default_profile)

    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MemoturnError as exc:
            raise ToolError(_message(exc)) from None

    def tool(title: str, annotations: ToolAnnotations) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        # The docstring, dedented, is what the agent reads (the SDK would send it as written).
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            server.add_tool(fn, title=title, description=inspect.cleandoc(fn.__doc__ or ""), annotations=annotations)
            return fn

        return register

    def slim(m: dict[str, Any]) -> dict[str, Any]:
        return {k: m[k] for k in ("id", "type", "content", "tags", "subject", "metadata", "event_time", "current")}

    @tool(
        title="Store a memory",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    def memory_store(
        content: Annotated[
            str,
            Field(
                description="The memory's text: one self-contained statement, e.g. 'The user's dog is called Rex' "
                "(1 to 100,000 characters)"
            ),
        ],
        type: Annotated[str, Field(description=f"The kind of memory (default fact). Built-in types: {TYPES_HELP}")] = (
            "fact"
        ),
        subject: Annotated[
            str | None,
            Field(
                description="A stable key for what the memory is about, e.g. 'drink' or 'home_city' (at most 512 "
                "characters). Storing a memory with the subject of a current memory supersedes that one (it is kept "
                "in history, no longer current). Omit for a memory that replaces nothing"
            ),
        ] = None,
        tags: Annotated[
            list[str] | None,
            Field(description="Labels that memory_recall can require, e.g. ['pets'] (at most 64, 1-128 characters)"),
        ] = None,
        metadata: Annotated[
            dict[str, Any] | None,
            Field(description="A JSON object of extra fields kept with the memory and returned with it"),
        ] = None,
        event_time: EventTime = None,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
    ) -> dict[str, Any]:
        """Store a memory in the profile's long-term memory.

        A memory with the same subject as a current one supersedes it (the old one is kept in
        history). An exact duplicate (same type, subject and content) of a current memory is not
        stored twice: its id comes back with duplicate true. Returns the memory's id, duplicate
        and the txid of the write.
        """
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

    @tool(
        title="Recall memories",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def memory_recall(
        query: Annotated[
            str,
            Field(description="What to look for, in words: a question or keywords (matched by keyword and meaning)"),
        ],
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many memories (1-100)")] = 5,
        types: Types = None,
        tags: Annotated[list[str] | None, Field(description="Only memories with all of these tags")] = None,
        min_score: Annotated[
            float | None,
            Field(
                ge=0,
                le=1,
                description="Relevance floor (0-1): a memory whose words did not match the query is returned only "
                "if its similarity in meaning reaches this; 0 returns the best matches however weak; omit for "
                "the server's default",
            ),
        ] = None,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
    ) -> list[dict[str, Any]]:
        """Find the current memories most relevant to a query, best first; an empty list means nothing relevant.

        Ranks by keyword (BM25) and meaning (embeddings) together; superseded memories are left out,
        and so are memories below the relevance floor (min_score). Each result is a memory (id, type,
        content, tags, subject, metadata, event_time in seconds since the Unix epoch, current) with
        score (the fused rank score, for ordering only), similarity (cosine similarity in meaning,
        -1 to 1), text_match (whether its words matched the query) and text_score (BM25, higher is better).
        """
        r = call(
            profile(namespace, profile_name).recall, query, limit=limit, types=types, tags=tags, min_score=min_score
        )
        return [
            {
                **slim(h["memory"]),
                "score": round(h["score"], 5),
                "similarity": None if h.get("similarity") is None else round(h["similarity"], 4),
                "text_match": bool(h.get("text_match")),
                "text_score": None if h.get("text_score") is None else round(h["text_score"], 4),
            }
            for h in r["results"]
        ]

    @tool(
        title="Get a memory",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def memory_get(
        memory_id: MemoryId, namespace: Namespace = None, profile_name: ProfileName = None
    ) -> dict[str, Any]:
        """Get one memory by id, superseded or not.

        Returns all its fields: times (event_time, valid_from, valid_to, recorded_at) are seconds
        since the Unix epoch; supersedes and superseded_by are the ids of the memories it replaced
        and that replaced it; current is false once it was superseded.
        """
        return dict(call(profile(namespace, profile_name).get, memory_id).data)

    @tool(
        title="Update a memory",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    def memory_update(
        memory_id: Annotated[str, Field(description="Id of the current memory to replace")],
        content: Annotated[
            str, Field(description="The new text, replacing the old memory's (1 to 100,000 characters)")
        ],
        subject: Annotated[
            str | None,
            Field(description="The new memory's subject; omit to keep the old memory's subject (the usual case)"),
        ] = None,
        event_time: Annotated[
            float | str | None,
            Field(description=f"When the change happened or became true: {EVENT_TIME_HELP}. Omit for now"),
        ] = None,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
    ) -> dict[str, Any]:
        """Replace a memory with new content because something changed.

        The new memory keeps the old one's type, subject, tags and metadata (so a later memory
        with that subject supersedes it in turn); the old one stays in history as superseded.
        Fails if the old memory was already superseded. Returns the new memory's id, the id it
        supersedes and the txid of the write.
        """
        p = profile(namespace, profile_name)
        old = call(p.get, memory_id)
        r = call(
            p.add,
            content,
            type=old["type"],
            subject=subject if subject is not None else old["subject"],
            event_time=event_time,
            supersedes=memory_id,
            tags=old["tags"] or None,
            metadata=old["metadata"] or None,
        )
        duplicate = r["duplicate"]
        return {
            "id": r["memory"]["id"],
            "supersedes": None if duplicate else memory_id,
            "duplicate": duplicate,
            "txid": r.txid,
        }

    @tool(
        title="Forget a memory",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    def memory_forget(
        memory_id: MemoryId, namespace: Namespace = None, profile_name: ProfileName = None
    ) -> dict[str, Any]:
        """Delete a memory for good (it leaves no history; to record a change, use memory_update instead)."""
        call(profile(namespace, profile_name).forget, memory_id)
        return {"forgotten": memory_id}

    @tool(
        title="List memories",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def memory_list(
        types: Types = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="At most this many memories (1-1000)")] = 50,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
    ) -> list[dict[str, Any]]:
        """List the profile's current memories (superseded ones left out), optionally only some types.

        Each is a memory (id, type, content, tags, subject, metadata, event_time in seconds since
        the Unix epoch, current).
        """
        r = call(profile(namespace, profile_name).list, types=types, limit=limit)
        return [slim(m) for m in r["memories"]]

    @tool(
        title="Export all memories",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def memory_export(namespace: Namespace = None, profile_name: ProfileName = None) -> list[dict[str, Any]]:
        """Every memory of the profile, superseded ones included, with all fields, for backup or review.

        Times are seconds since the Unix epoch; current is false for superseded memories.
        """
        p = profile(namespace, profile_name)
        out, cursor = [], None
        while True:
            page = call(p.list, include_superseded=True, limit=1000, cursor=cursor)
            out += page["memories"]
            cursor = page["next_cursor"]
            if not cursor:
                return out

    return server


def add_arguments(p: argparse.ArgumentParser, *, connection_defaults: bool = True) -> None:
    """The server's options. ``connection_defaults=False`` (the ``memoturn mcp`` subcommand):
    ``--url`` and ``--token`` set nothing unless given, so ``memoturn --url URL mcp`` keeps the
    global ones."""
    url_default: Any = os.environ.get("MEMOTURN_URL", "http://127.0.0.1:7411")
    token_default: Any = os.environ.get("MEMOTURN_TOKEN")
    if not connection_defaults:
        url_default = token_default = argparse.SUPPRESS
    p.add_argument(
        "--url",
        default=url_default,
        help="node or gateway URL (env MEMOTURN_URL; default http://127.0.0.1:7411)",
    )
    p.add_argument("--token", default=token_default, help="bearer token for the node (env MEMOTURN_TOKEN)")
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
    p.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve streamable HTTP on this address (endpoint /mcp) instead of stdio",
    )
    p.add_argument(
        "--http-token",
        default=os.environ.get(MCP_TOKEN_ENV),
        help=f"bearer token HTTP clients must send (env {MCP_TOKEN_ENV}, better: an argument is visible to other "
        "local users); required unless --http is a loopback address",
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace) -> int:
    """Run the server as ``args`` (from :func:`add_arguments`) say; 2 on bad usage."""
    listen = None
    if args.http:
        try:
            listen = parse_host_port(args.http, what="--http")
        except ValueError as exc:
            print(f"memoturn mcp: {exc}", file=sys.stderr)
            return 2
    http_token = (args.http_token or None) if listen is not None else None
    http_url = "http://127.0.0.1"
    if listen is not None:
        host, port = listen
        http_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        if http_token is None and not _loopback(host):
            print(
                f"memoturn mcp: refusing to serve {args.http} without --http-token (or {MCP_TOKEN_ENV}): anyone "
                "reaching it could read and delete memories with this server's Memoturn token",
                file=sys.stderr,
            )
            return 2
        if http_token is None:
            print(
                f"memoturn mcp: warning: serving {args.http} without --http-token (or {MCP_TOKEN_ENV}): "
                "any local process can use the tools",
                file=sys.stderr,
            )
    client = Memoturn(args.url, token=args.token, timeout=getattr(args, "timeout", 30.0))
    try:
        server = build_server(client, args.namespace, args.profile, http_token=http_token, http_url=http_url)
    except ModuleNotFoundError as exc:
        print(f"memoturn mcp: {exc}: install the mcp extra (pip install 'memoturn[mcp]')", file=sys.stderr)
        return 2
    if listen is not None:
        host, port = listen
        server.run("streamable-http", host=host, port=port)
    else:
        server.run("stdio")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="memoturn mcp",
        description="MCP server exposing a Memoturn profile's memories as tools for agents.",
    )
    add_arguments(p)
    return serve(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
