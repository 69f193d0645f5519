"""``memoturn mcp``: an MCP server exposing a profile's memories as tools for agents.

Runs over stdio (for desktop MCP clients) or streamable HTTP (``--http HOST:PORT``, endpoint
``/mcp``), and talks to a Memoturn node or gateway through the SDK (``--url``/``MEMOTURN_URL``,
``--token``/``MEMOTURN_TOKEN``; ``memoturn --url URL mcp`` and ``memoturn mcp --url URL`` both
work). Every tool takes ``namespace`` and ``profile_name``, defaulting to ``--namespace`` and
``--profile`` (``MEMOTURN_NAMESPACE``, ``MEMOTURN_PROFILE``). Tools: ``memory_store``,
``memory_recall``, ``memory_get``, ``memory_update`` (supersede), ``memory_forget``,
``memory_list``, ``memory_export``; ``memory_forget_matching`` (by type, tag or time, with a dry
run) and ``memory_stats``; and over the profile database's branches, ``memory_checkpoint``,
``memory_rewind``, ``memory_undo_rewind``, ``memory_fork``, ``memory_drop_branch`` and
``memory_branches`` (the memory tools take ``branch`` to work on a forked one); relationships
between memories: ``memory_relate``, ``memory_unrelate``, ``memory_neighbours``, ``memory_path``
and ``memory_subgraph`` (and ``memory_recall``'s ``expand``). Time windows
may be given in words (:mod:`memoturn.timewindow`, in this server's time zone). Errors come
back as tool errors with the server's problem detail.

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
from datetime import datetime
from typing import Any

from .client import Memoturn, ProblemError
from .errors import MemoturnError
from .netaddr import parse_host_port
from .timewindow import FORMS, TIME_HELP, resolve_window, seconds

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
            "when something changed (the old memory is kept in history as superseded). Before a risky change "
            "to memory, memory_checkpoint, and memory_rewind to go back; for a sub-task whose notes should not "
            "stay, memory_fork a scratch branch, pass it as branch, and memory_drop_branch when done."
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
    Branch = Annotated[
        str | None,
        Field(
            description="Work on this branch of the profile's memory, a scratch copy made with memory_fork; "
            "omit for the main memory"
        ),
    ]
    Window = Annotated[
        str | None,
        Field(
            description=f"Only memories from this time window, in words: {FORMS}. Days begin at midnight in "
            "this server's time zone; matched on event_time, else the time the memory was stored. Not with "
            "since/until"
        ),
    ]
    Since = Annotated[
        float | str | None,
        Field(description=f"Only memories whose event_time (else stored time) is at or after this: {TIME_HELP}"),
    ]
    Until = Annotated[
        float | str | None,
        Field(description=f"Only memories whose event_time (else stored time) is at or before this: {TIME_HELP}"),
    ]
    AsOf = Annotated[
        float | str | None,
        Field(
            description="Answer as of this past time: the memories that were current then (later ones and "
            f"later corrections left out): {TIME_HELP}"
        ),
    ]
    Tags = Annotated[list[str] | None, Field(description="Only memories with all of these tags")]

    def profile(namespace: str | None, name: str | None, branch: str | None = None) -> Any:
        return client.profile(namespace or default_namespace, name or default_profile, branch or "main")

    def window_of(window: str | None, since: float | str | None, until: float | str | None) -> tuple[Any, Any]:
        try:
            return resolve_window(window, since, until, datetime.now().astimezone())
        except ValueError as exc:
            raise ToolError(str(exc)) from None

    def moment(value: float | str | None, what: str) -> float | None:
        try:
            return None if value is None else seconds(value, what)
        except ValueError as exc:
            raise ToolError(str(exc)) from None

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
        branch: Branch = None,
    ) -> dict[str, Any]:
        """Store a memory in the profile's long-term memory.

        A memory with the same subject as a current one supersedes it (the old one is kept in
        history). An exact duplicate (same type, subject and content) of a current memory is not
        stored twice: its id comes back with duplicate true. Returns the memory's id, duplicate
        and the txid of the write.
        """
        r = call(
            profile(namespace, profile_name, branch).add,
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
        window: Window = None,
        since: Since = None,
        until: Until = None,
        as_of: AsOf = None,
        expand: Annotated[
            list[str] | None,
            Field(
                description="Also return memories linked to the results by these relationship types (one hop, "
                "e.g. ['caused_by']); each such result has via (relationship, type, from: the result it was "
                "reached from). Omit for none"
            ),
        ] = None,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
        branch: Branch = None,
    ) -> list[dict[str, Any]]:
        """Find the current memories most relevant to a query, best first; an empty list means nothing relevant.

        Ranks by keyword (BM25) and meaning (embeddings) together; superseded memories are left out,
        and so are memories below the relevance floor (min_score). Each result is a memory (id, type,
        content, tags, subject, metadata, event_time in seconds since the Unix epoch, current) with
        score (the fused rank score, for ordering only), similarity (cosine similarity in meaning,
        -1 to 1), text_match (whether its words matched the query) and text_score (BM25, higher is better).
        Narrow it to a time (window such as 'last week', or since/until), or ask what was known as_of
        a past time.
        """
        lo, hi = window_of(window, since, until)
        r = call(
            profile(namespace, profile_name, branch).recall,
            query,
            limit=limit,
            types=types,
            tags=tags,
            min_score=min_score,
            since=lo,
            until=hi,
            as_of=moment(as_of, "as_of"),
            expand=expand,
        )
        return [
            {
                **slim(h["memory"]),
                **({"via": h["via"]} if h.get("via") else {}),
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
        memory_id: MemoryId, namespace: Namespace = None, profile_name: ProfileName = None, branch: Branch = None
    ) -> dict[str, Any]:
        """Get one memory by id, superseded or not.

        Returns all its fields: times (event_time, valid_from, valid_to, recorded_at) are seconds
        since the Unix epoch; supersedes and superseded_by are the ids of the memories it replaced
        and that replaced it; current is false once it was superseded.
        """
        return dict(call(profile(namespace, profile_name, branch).get, memory_id).data)

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
        branch: Branch = None,
    ) -> dict[str, Any]:
        """Replace a memory with new content because something changed.

        The new memory keeps the old one's type, subject, tags and metadata (so a later memory
        with that subject supersedes it in turn); the old one stays in history as superseded.
        Fails if the old memory was already superseded. Returns the new memory's id, the id it
        supersedes and the txid of the write.
        """
        p = profile(namespace, profile_name, branch)
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
        memory_id: MemoryId, namespace: Namespace = None, profile_name: ProfileName = None, branch: Branch = None
    ) -> dict[str, Any]:
        """Delete a memory for good (it leaves no history; to record a change, use memory_update instead)."""
        call(profile(namespace, profile_name, branch).forget, memory_id)
        return {"forgotten": memory_id}

    @tool(
        title="List memories",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def memory_list(
        types: Types = None,
        tags: Tags = None,
        window: Window = None,
        since: Since = None,
        until: Until = None,
        as_of: AsOf = None,
        include_superseded: Annotated[
            bool, Field(description="Also list memories that were replaced (current false); ignored with as_of")
        ] = False,
        limit: Annotated[int, Field(ge=1, le=1000, description="At most this many memories per page (1-1000)")] = 50,
        cursor: Annotated[
            str | None,
            Field(description="Continue after the previous page: pass its next_cursor; omit for the first page"),
        ] = None,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
        branch: Branch = None,
    ) -> dict[str, Any]:
        """List the profile's current memories (superseded ones left out), a page at a time.

        Optionally only some types, tags or a time (window such as 'yesterday', or since/until), or
        as_of a past time. Returns memories (each: id, type, content, tags, subject, metadata,
        event_time in seconds since the Unix epoch, current) and next_cursor: pass it as cursor
        for the next page; null when this was the last.
        """
        lo, hi = window_of(window, since, until)
        r = call(
            profile(namespace, profile_name, branch).list,
            types=types,
            tags=tags,
            since=lo,
            until=hi,
            as_of=moment(as_of, "as_of"),
            include_superseded=include_superseded,
            limit=limit,
            cursor=cursor,
        )
        return {"memories": [slim(m) for m in r["memories"]], "next_cursor": r["next_cursor"]}

    @tool(
        title="Export all memories",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def memory_export(
        namespace: Namespace = None, profile_name: ProfileName = None, branch: Branch = None
    ) -> list[dict[str, Any]]:
        """Every memory of the profile, superseded ones included, with all fields, for backup or review.

        Times are seconds since the Unix epoch; current is false for superseded memories.
        """
        p = profile(namespace, profile_name, branch)
        out, cursor = [], None
        while True:
            page = call(p.list, include_superseded=True, limit=1000, cursor=cursor)
            out += page["memories"]
            cursor = page["next_cursor"]
            if not cursor:
                return out

    # -- bulk deletion and stats --------------------------------------------------------------

    @tool(
        title="Forget memories matching a filter",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    def memory_forget_matching(
        types: Types = None,
        tags: Tags = None,
        window: Window = None,
        since: Since = None,
        until: Until = None,
        dry_run: Annotated[
            bool,
            Field(
                description="True (the default): delete nothing, only return what would be deleted. Look at "
                "the result, then call again with false to delete"
            ),
        ] = True,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
        branch: Branch = None,
    ) -> dict[str, Any]:
        """Delete every memory matching a filter, for good: by type, by tag, by time, or all of them together.

        Superseded memories that match go too (no history is left). Give at least one of types,
        tags, window, since, until. By default this is a dry run: it returns the ids and count
        that would be deleted; dry_run false deletes them and returns the same for what was
        deleted. To undo a mistaken deletion, checkpoint first (memory_checkpoint) and rewind.
        """
        lo, hi = window_of(window, since, until)
        r = call(
            profile(namespace, profile_name, branch).forget_matching,
            types=types,
            tags=tags,
            since=lo,
            until=hi,
            dry_run=dry_run,
        )
        return {"ids": r["ids"], "count": r["count"], "dry_run": r["dry_run"], "txid": r["txid"]}

    @tool(
        title="Memory server health and profile stats",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def memory_stats(
        namespace: Namespace = None, profile_name: ProfileName = None, branch: Branch = None
    ) -> dict[str, Any]:
        """Whether the memory server is up, and how many memories the profile holds.

        Returns server (status 'ok' or why not, node_id) and profile: memories (all, superseded
        included), current, by_type (current memories per type), embedding_dim and head_txid;
        profile is null if nothing was stored in it yet.
        """
        try:
            server_health: dict[str, Any] = dict(client.health().data)
        except MemoturnError as exc:
            server_health = {"status": "unavailable", "detail": _message(exc)}
        try:
            stats: dict[str, Any] | None = dict(profile(namespace, profile_name, branch).stats().data)
        except ProblemError as exc:
            if exc.status != 404:
                raise ToolError(_message(exc)) from None
            stats = None
        except MemoturnError as exc:
            raise ToolError(_message(exc)) from None
        return {"server": server_health, "profile": stats, "branch": branch or "main"}

    # -- checkpoints, rewind and scratch branches (of the profile's database) -----------------

    def database(namespace: str | None, name: str | None, branch: str | None, *, create: bool = False) -> Any:
        p = profile(namespace, name, branch)
        if create and p.branch == "main":
            call(p.create)  # a checkpoint or fork of a profile with no memory yet needs its database
        return p.database()

    @tool(
        title="Checkpoint memory",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    def memory_checkpoint(
        name: Annotated[
            str,
            Field(
                description="A name for this point, e.g. 'before-cleanup' (1-128 characters of a-z, 0-9, '.', '_', "
                "'-', starting and ending with a letter or digit; unique on the branch)"
            ),
        ],
        namespace: Namespace = None,
        profile_name: ProfileName = None,
        branch: Branch = None,
    ) -> dict[str, Any]:
        """Name the profile's memory as it is now, before a risky step, so memory_rewind can go back to it.

        Cheap (nothing is copied). Returns the checkpoint and the txid it names.
        """
        r = call(database(namespace, profile_name, branch, create=True).checkpoint, name)
        return {"checkpoint": r["checkpoint"], "txid": r["txid"], "branch": branch or "main"}

    @tool(
        title="Rewind memory",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
        ),
    )
    def memory_rewind(
        checkpoint: Annotated[
            str | None, Field(description="Rewind to this checkpoint (from memory_checkpoint)")
        ] = None,
        txid: Annotated[
            int | None, Field(ge=0, description="Rewind to this txid (as returned by memory_store and others)")
        ] = None,
        time: Annotated[
            float | str | None, Field(description=f"Rewind to how the memory was at this time: {TIME_HELP}")
        ] = None,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
        branch: Branch = None,
    ) -> dict[str, Any]:
        """Put the profile's memory back as it was at a checkpoint, txid or time: later writes disappear.

        Give exactly one of checkpoint, txid, time. Everything stored, changed or forgotten after
        that point is undone. memory_undo_rewind brings it back, as long as nothing was written
        since. Returns the branch and its new head_txid.
        """
        if sum(x is not None for x in (checkpoint, txid, time)) != 1:
            raise ToolError("give exactly one of checkpoint, txid, time")
        r = call(
            database(namespace, profile_name, branch).rewind,
            checkpoint=checkpoint,
            txid=txid,
            timestamp=moment(time, "time"),
        )
        return {"branch": r["branch"], "head_txid": r["head_txid"]}

    @tool(
        title="Undo a rewind",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    def memory_undo_rewind(
        namespace: Namespace = None, profile_name: ProfileName = None, branch: Branch = None
    ) -> dict[str, Any]:
        """Undo the last memory_rewind: the writes it took away come back.

        Refused (written-since-rewind) once anything was written after the rewind, and
        (nothing-to-undo) if there was no rewind. Returns the branch and its head_txid.
        """
        r = call(database(namespace, profile_name, branch).undo_rewind)
        return {"branch": r["branch"], "head_txid": r["head_txid"]}

    @tool(
        title="Fork a scratch branch of memory",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    def memory_fork(
        name: Annotated[
            str,
            Field(
                description="The new branch, e.g. 'subtask-42' (1-128 characters of a-z, 0-9, '.', '_', '-', "
                "starting and ending with a letter or digit)"
            ),
        ],
        checkpoint: Annotated[
            str | None, Field(description="Start from this checkpoint instead of the memory as it is now")
        ] = None,
        ttl_seconds: Annotated[
            float | None,
            Field(gt=0, description="Delete the branch by itself after this many seconds; omit to keep it"),
        ] = None,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
        branch: Annotated[str | None, Field(description="The branch to fork from; omit for the main memory")] = None,
    ) -> dict[str, Any]:
        """Make a scratch copy of the profile's memory for a sub-task (instant: nothing is copied).

        Pass the returned branch as branch to memory_store, memory_recall and the other memory
        tools to read and write the copy; the main memory does not see those writes. Drop it with
        memory_drop_branch when done. Returns branch, parent (branch and txid it started from) and
        expires_at (seconds since the Unix epoch, or null).
        """
        r = call(
            database(namespace, profile_name, branch, create=True).fork,
            name,
            checkpoint=checkpoint,
            ttl_seconds=ttl_seconds,
        )
        return {"branch": r["branch"], "parent": r["parent"], "expires_at": r["expires_at"]}

    @tool(
        title="Drop a scratch branch of memory",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    def memory_drop_branch(
        branch: Annotated[str, Field(description="The branch to delete (made with memory_fork; not main)")],
        namespace: Namespace = None,
        profile_name: ProfileName = None,
    ) -> dict[str, Any]:
        """Delete a scratch branch made with memory_fork, and every memory written on it. The main memory is untouched."""
        call(database(namespace, profile_name, branch).delete_branch)
        return {"dropped": branch}

    @tool(
        title="List memory branches and checkpoints",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def memory_branches(namespace: Namespace = None, profile_name: ProfileName = None) -> list[dict[str, Any]]:
        """The branches of the profile's memory (main and scratch ones), each with its checkpoints.

        Each: branch, parent (branch and txid it was forked at, null for main), head_txid,
        checkpoints (name: txid) and expires_at. Empty if nothing was stored in the profile yet.
        """
        try:
            r = database(namespace, profile_name, None).branches()
        except ProblemError as exc:
            if exc.status == 404:
                return []
            raise ToolError(_message(exc)) from None
        except MemoturnError as exc:
            raise ToolError(_message(exc)) from None
        keep = ("branch", "parent", "head_txid", "checkpoints", "expires_at")
        return [{k: b.get(k) for k in keep} for b in r["branches"]]

    # -- relationships between memories ---------------------------------------------------------

    RelTypes = Annotated[
        list[str] | None,
        Field(description="Follow only relationships of these types, e.g. ['caused_by']; omit for all"),
    ]
    Direction = Annotated[
        str,
        Field(
            pattern="^(out|in|both)$",
            description="'out': along relationships (from source to target), 'in': against them, 'both': either",
        ),
    ]
    WalkAsOf = Annotated[
        float | str | None,
        Field(description=f"Walk the relationships and memories as they were at this past time: {TIME_HELP}"),
    ]
    IncludeSuperseded = Annotated[
        bool, Field(description="Also walk through memories that were superseded (default: current ones only)")
    ]

    def link(rel: dict[str, Any]) -> dict[str, Any]:
        return {k: rel[k] for k in ("id", "type", "source", "target", "weight", "properties")}

    @tool(
        title="Relate two memories",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    def memory_relate(
        source_id: Annotated[str, Field(description="Id of the memory the relationship starts from")],
        target_id: Annotated[str, Field(description="Id of the memory it points to (another memory of the profile)")],
        type: Annotated[
            str,
            Field(
                description="What the link means, read as 'source <type> target': relates_to (default), caused_by, "
                "part_of, contradicts, follows, or a type of your own (lowercase a-z, 0-9 and '_', starting with "
                "a letter, at most 64 characters)"
            ),
        ] = "relates_to",
        weight: Annotated[
            float | None, Field(ge=0, le=1, description="How strong the link is, 0 to 1; omit for none")
        ] = None,
        properties: Annotated[
            dict[str, Any] | None, Field(description="A JSON object of extra fields kept with the relationship")
        ] = None,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
        branch: Branch = None,
    ) -> dict[str, Any]:
        """Link two memories with a typed, directed relationship, e.g. 'memory A caused_by memory B'.

        Both memories must exist in the profile and be different. Linking the same two memories
        with the same type again changes nothing (duplicate true). memory_neighbours, memory_path
        and memory_recall (expand) follow the links. Returns the relationship's id, duplicate and
        the txid of the write.
        """
        r = call(
            profile(namespace, profile_name, branch).relate,
            source_id,
            target_id,
            type,
            weight=weight,
            properties=properties,
        )
        return {"id": r["relationship"]["id"], "duplicate": r["duplicate"], "txid": r.txid}

    @tool(
        title="Remove a relationship",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
        ),
    )
    def memory_unrelate(
        relationship_id: Annotated[
            str, Field(description="The relationship's id, as returned by memory_relate or memory_neighbours")
        ],
        namespace: Namespace = None,
        profile_name: ProfileName = None,
        branch: Branch = None,
    ) -> dict[str, Any]:
        """Remove a relationship between two memories; the memories stay.

        It is still seen by walks as_of a time before its removal. Returns the relationship's id and
        the txid of the write.
        """
        r = call(profile(namespace, profile_name, branch).unrelate, relationship_id)
        return {"removed": relationship_id, "txid": r.txid}

    @tool(
        title="Related memories",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def memory_neighbours(
        memory_id: MemoryId,
        types: RelTypes = None,
        direction: Direction = "both",
        limit: Annotated[int, Field(ge=1, le=1000, description="At most this many relationships (1-1000)")] = 50,
        as_of: WalkAsOf = None,
        include_superseded: IncludeSuperseded = False,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
        branch: Branch = None,
    ) -> list[dict[str, Any]]:
        """The memories directly linked to a memory, newest link first.

        Each: relationship (id, type, source, target, weight, properties), direction ('out': the
        given memory is the source, 'in': it is the target) and memory (the one at the other end).
        """
        r = call(
            profile(namespace, profile_name, branch).neighbours,
            memory_id,
            types=types,
            direction=direction,
            limit=limit,
            as_of=moment(as_of, "as_of"),
            include_superseded=include_superseded,
        )
        return [
            {"relationship": link(n["relationship"]), "direction": n["direction"], "memory": slim(n["memory"])}
            for n in r["results"]
        ]

    @tool(
        title="Path between memories",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def memory_path(
        from_id: Annotated[str, Field(description="Id of the memory to start from")],
        to_id: Annotated[str, Field(description="Id of the memory to reach")],
        max_depth: Annotated[int, Field(ge=1, le=6, description="At most this many hops (1-6)")] = 4,
        types: RelTypes = None,
        direction: Direction = "both",
        as_of: WalkAsOf = None,
        include_superseded: IncludeSuperseded = False,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
        branch: Branch = None,
    ) -> dict[str, Any]:
        """How two memories are connected: a shortest chain of relationships from one to the other.

        Returns found, depth (hops), memories (from .. to, in order) and relationships (one per
        hop, in order); found false if there is none within max_depth.
        """
        r = call(
            profile(namespace, profile_name, branch).path,
            from_id,
            to_id,
            max_depth=max_depth,
            types=types,
            direction=direction,
            as_of=moment(as_of, "as_of"),
            include_superseded=include_superseded,
        )
        return {
            "found": r["found"],
            "depth": r["depth"],
            "memories": [slim(m) for m in r["memories"]],
            "relationships": [link(x) for x in r["relationships"]],
        }

    @tool(
        title="Memories around a memory",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def memory_subgraph(
        memory_id: MemoryId,
        depth: Annotated[int, Field(ge=1, le=4, description="At most this many hops away (1-4)")] = 2,
        limit: Annotated[int, Field(ge=1, le=500, description="At most this many memories (1-500)")] = 50,
        types: RelTypes = None,
        direction: Direction = "both",
        as_of: WalkAsOf = None,
        include_superseded: IncludeSuperseded = False,
        namespace: Namespace = None,
        profile_name: ProfileName = None,
        branch: Branch = None,
    ) -> dict[str, Any]:
        """The memories within a few relationship hops of a memory, and the relationships among them.

        Returns memories (each with depth: hops from the given memory, 0 for itself; nearest
        first), relationships and truncated (true if more were in reach than limit).
        """
        r = call(
            profile(namespace, profile_name, branch).subgraph,
            memory_id,
            depth=depth,
            limit=limit,
            types=types,
            direction=direction,
            as_of=moment(as_of, "as_of"),
            include_superseded=include_superseded,
        )
        return {
            "memories": [{**slim(n["memory"]), "depth": n["depth"]} for n in r["memories"]],
            "relationships": [link(x) for x in r["relationships"]],
            "truncated": r["truncated"],
        }

    return server


def add_arguments(p: argparse.ArgumentParser, *, connection_defaults: bool = True) -> None:
    """The server's options. ``connection_defaults=False`` (the ``memoturn mcp`` subcommand):
    ``--url`` and ``--token`` set nothing unless given, so ``memoturn --url URL mcp`` keeps the
    global ones."""
    url_default: Any = os.environ.get("MEMOTURN_URL", "http://127.0.0.1:7411")
    token_default: Any = os.environ.get("MEMOTURN_TOKEN")
    ca_default: Any = os.environ.get("MEMOTURN_CA_FILE") or None
    if not connection_defaults:
        url_default = token_default = ca_default = argparse.SUPPRESS
    p.add_argument(
        "--url",
        default=url_default,
        help="node or gateway URL (env MEMOTURN_URL; default http://127.0.0.1:7411)",
    )
    p.add_argument("--token", default=token_default, help="bearer token for the node (env MEMOTURN_TOKEN)")
    p.add_argument(
        "--ca-file",
        default=ca_default,
        help="PEM CA bundle that signed the node's certificate, for https:// URLs (env MEMOTURN_CA_FILE)",
    )
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
    try:
        client = Memoturn(
            args.url,
            token=args.token,
            timeout=getattr(args, "timeout", 30.0),
            verify=getattr(args, "ca_file", None) or True,
        )
    except ValueError as exc:  # an unusable --ca-file
        print(f"memoturn mcp: --ca-file: {exc}", file=sys.stderr)
        return 2
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
