"""Memory routes: namespaces, profiles and typed memories over the node.

A profile is the database ``{namespace}--{profile}`` (built and parsed only by
:mod:`memoturn.names`), created on first use. Embeddings are
computed before the database lock is taken, so a slow embedder never blocks other writers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from cachetools import LRUCache
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...data import memories, relationships
from ...data.embedding import Embedder, as_vector, get_embedder
from ...errors import BadRequest, Conflict, NotFound
from ...names import DEFAULT_BRANCH, SEPARATOR, check_namespace, profile_database, split_profile_database
from ..node import Node
from .models import Bool, Filter, Float, Int, Text, Timestamp
from .params import ERRORS, Branch, Durability, MinTxid, NodeDep, Reader, Writer, query_time
from .strict import StrictRoute


def _ts(value: Timestamp | None) -> float | None:
    if value is None or isinstance(value, (int, float)):
        return value
    return value.timestamp()


def _window(since: float | None, until: float | None) -> tuple[float | None, float | None]:
    """``since``/``until`` checked against each other before any database is touched."""
    if since is not None and until is not None and since > until:
        raise BadRequest(f"since ({since}) is after until ({until})", type="invalid-window")
    return since, until


class MemoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Text = Field("fact", description="fact, preference, event, instruction, episode, or your own type")
    content: Text = Field(min_length=1, max_length=100_000)
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[Annotated[Text, Field(min_length=1, max_length=128)]] = Field(default_factory=list, max_length=64)
    subject: Text | None = Field(
        None, max_length=512, description="A new memory with the same subject supersedes the current one"
    )
    supersedes: Text | None = Field(None, description="Id of the memory this one replaces")
    event_time: Timestamp | None = Field(None, description="When it happened or became true (unix seconds or ISO 8601)")
    embedding: list[Float] | None = Field(None, description="Your own vector; otherwise the server embeds the content")

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        return memories.check_type(v)


class MemoryOut(BaseModel):
    id: str
    type: str
    content: str
    metadata: dict[str, Any]
    tags: list[str]
    subject: str | None
    event_time: float | None
    valid_from: float
    valid_to: float | None
    recorded_at: float
    supersedes: str | None
    superseded_by: str | None
    current: bool


class Stored(BaseModel):
    memory: MemoryOut
    duplicate: bool
    txid: int


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    memories: list[MemoryIn] = Field(min_length=1, max_length=1000)


class BatchOut(BaseModel):
    memories: list[Stored]
    txid: int


class RecallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: Text = Field(min_length=1, max_length=10_000)
    limit: Int = Field(10, ge=1, le=100)
    types: list[Text] | None = None
    tags: list[Text] | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    metadata: Filter | None = Field(None, description="Equality filters on metadata keys")
    as_of: Timestamp | None = Field(None, description="Recall what was current at this time")
    include_superseded: Bool = False
    recency_half_life_days: Float | None = Field(None, gt=0)
    embedding: list[Float] | None = None
    min_score: Float = Field(
        memories.DEFAULT_MIN_SCORE,
        ge=0,
        le=1,
        description="Relevance floor: a memory whose text did not match the query is returned only if the cosine "
        "similarity of its embedding and the query's is at least this; 0 turns the floor off. The default was "
        "chosen on LoCoMo (docs/memory.md)",
    )
    expand: list[Annotated[Text, Field(min_length=1, max_length=64)]] | None = Field(
        None,
        max_length=32,
        description="Relationship types to follow one hop from the hits: their neighbours join the results "
        "(marked 'via'), scored below the hit they came from; off by default (docs/memory.md)",
    )
    expand_direction: Literal["out", "in", "both"] = Field(
        "both", description="Follow the expand relationships out of the hits, into them, or both"
    )

    @field_validator("expand")
    @classmethod
    def _expand(cls, v: list[str] | None) -> list[str] | None:
        return [relationships.check_type(t) for t in v] if v else v


class Via(BaseModel):
    """Why an expanded hit is there: a relationship from (or to) another hit."""

    model_config = ConfigDict(populate_by_name=True)
    relationship: str = Field(description="The relationship's id")
    type: str
    from_: str = Field(alias="from", description="The hit it was reached from")
    direction: Literal["out", "in"] = Field(description="out: the hit is the relationship's source; in: its target")


class Hit(BaseModel):
    memory: MemoryOut
    score: float = Field(
        description="Fused rank score (reciprocal rank fusion): orders hits, not comparable across queries"
    )
    ranks: dict[str, int]
    similarity: float | None = Field(
        None, description="Cosine similarity of the query's and the memory's embeddings (-1..1)"
    )
    text_match: bool = Field(False, description="Whether the text query (BM25 over content and tags) matched")
    text_score: float | None = Field(
        None, description="BM25 score of the text match (higher matched better; comparable within a profile)"
    )
    via: Via | None = Field(None, description="Set when the hit came from expanding along a relationship")


class RecallOut(BaseModel):
    results: list[Hit]
    txid: int


class MemoryList(BaseModel):
    memories: list[MemoryOut]
    next_cursor: str | None = None


class ForgetIn(BaseModel):
    """Which memories to delete: all the given conditions hold (at least one is needed)."""

    model_config = ConfigDict(extra="forbid")
    types: list[Text] | None = Field(None, description="Only memories of these types")
    tags: list[Text] | None = Field(None, description="Only memories with all of these tags")
    since: Timestamp | None = Field(
        None, description="Only memories whose event time (else record time) is at or after"
    )
    until: Timestamp | None = Field(
        None, description="Only memories whose event time (else record time) is at or before"
    )
    dry_run: Bool = Field(False, description="Delete nothing: only say which memories would go")


class Forgotten(BaseModel):
    ids: list[str] = Field(description="The memories deleted (or, in a dry run, that would be), in id order")
    count: int
    dry_run: bool
    txid: int


class ProfileStats(BaseModel):
    namespace: str
    profile: str
    database: str
    head_txid: int
    memories: int
    current: int
    by_type: dict[str, int]
    embedding_dim: int | None


class ProfileList(BaseModel):
    profiles: list[str]
    next_cursor: str | None = None


KNOWN_PROFILES = 100_000


class Profiles:
    """The profiles' databases of one node: created on first use, filled with embedded memories."""

    def __init__(self, node: Node) -> None:
        self.node = node
        settings = node.settings
        self.embedder_spec = settings.embedder
        self.embedding_url = settings.embedding_url
        self.embedding_key = settings.embedding_api_key
        self.embedder_runtime = settings.embedder_runtime
        self._known: LRUCache[str, bool] = LRUCache(maxsize=KNOWN_PROFILES)  # profiles known to exist
        self._known_lock = threading.Lock()

    def embedder(self) -> Embedder:
        return get_embedder(self.embedder_spec, self.embedding_url, self.embedding_key, self.embedder_runtime)

    def ensure(self, db: str) -> None:
        """Create the profile's database on first use. Known ones cost nothing: without the cache
        every memory write paid a conditional PUT to the object store (a fifth of its time)."""
        with self._known_lock:
            if self._known.get(db):  # a read marks it recently used
                return
        try:
            self.node.create_database(db)
        except Conflict:
            pass
        with self._known_lock:
            self._known[db] = True

    def vectors(self, items: list[tuple[str, list[float] | None]]) -> list[np.ndarray]:
        missing = [i for i, (_, v) in enumerate(items) if v is None]
        out: list[Any] = [None] * len(items)
        dim = None
        if missing:
            model = self.embedder()
            dim = model.dim
            embedded = model.embed([items[i][0] for i in missing])
            for row, i in enumerate(missing):
                out[i] = embedded[row]
        for i, (_, v) in enumerate(items):
            if v is not None:
                out[i] = as_vector(v, dim or len(v))
        dims = {len(v) for v in out}
        if len(dims) > 1:
            raise BadRequest(
                f"embeddings of different dimensions in one request: {sorted(dims)}", type="dimension-mismatch"
            )
        return out

    def store(
        self, db: str, items: list[MemoryIn], durable: bool | None, branch: str = DEFAULT_BRANCH
    ) -> tuple[list[tuple[dict[str, Any], bool]], int]:
        """Add memories to a branch of a profile's database (main: created again if it was deleted
        meanwhile; another branch must exist, forked from main)."""
        vecs = self.vectors([(m.content, m.embedding) for m in items])
        dim = len(vecs[0])
        name = self.embedder_spec if any(m.embedding is None for m in items) else "client"
        payload = [{**m.model_dump(exclude={"embedding"}), "event_time": _ts(m.event_time)} for m in items]

        def tx(conn: Any) -> list[tuple[dict[str, Any], bool]]:
            memories.ensure_schema(conn, dim, name)
            return [memories.add(conn, p, v) for p, v in zip(payload, vecs, strict=False)]

        if branch != DEFAULT_BRANCH:
            return self.node.write(db, tx, branch=branch, durable=durable)
        try:
            return self.node.write(db, tx, durable=durable)
        except NotFound:  # deleted since we saw it: a profile is created on first use, so again
            with self._known_lock:
                self._known.pop(db, None)
            self.ensure(db)
            return self.node.write(db, tx, durable=durable)


async def _profiles(request: Request) -> Profiles:
    profiles: Profiles = request.app.state.profiles
    return profiles


ProfilesDep = Annotated[Profiles, Depends(_profiles)]


class ProfileBranchWriter(Writer):
    """A :class:`Writer` of a profile's database, which :meth:`store` creates on first use."""

    def __init__(
        self,
        profiles: Profiles,
        response: Response,
        db: Callable[[], str],
        durability: str | None,
        branch: str = DEFAULT_BRANCH,
    ) -> None:
        super().__init__(profiles.node, response, db, branch, durability=durability)
        self.profiles = profiles

    def store(self, items: list[MemoryIn]) -> list[tuple[dict[str, Any], bool]]:
        db = self.db
        if self.branch == DEFAULT_BRANCH:
            self.profiles.ensure(db)
        return self.said(*self.profiles.store(db, items, self.durable(), self.branch))


def named_later(namespace: str, profile: str) -> Callable[[], str]:
    """The profile's database, named (and checked) when the route first uses it, as a route
    that named it itself did (so its errors come in the same order)."""
    return lambda: profile_database(namespace, profile)


# async: resolved on the event loop, they add no thread hand-off
async def _profile_writer(
    namespace: str,
    profile: str,
    response: Response,
    profiles: ProfilesDep,
    durability: Durability = None,
    branch: Branch = DEFAULT_BRANCH,
) -> ProfileBranchWriter:
    return ProfileBranchWriter(profiles, response, named_later(namespace, profile), durability, branch)


async def _profile_reader(
    namespace: str, profile: str, response: Response, node: NodeDep, branch: Branch = DEFAULT_BRANCH
) -> Reader:
    return Reader(node, response, named_later(namespace, profile), branch)


async def _profile_reader_at(
    namespace: str,
    profile: str,
    response: Response,
    node: NodeDep,
    min_txid: MinTxid = None,
    branch: Branch = DEFAULT_BRANCH,
) -> Reader:
    return Reader(node, response, named_later(namespace, profile), branch, min_txid=min_txid)


# The path's profile, on the ``branch`` query's branch of its database (main by default: a
# scratch branch is forked with the branch routes, POST /v1/databases/{namespace}--{profile}/branches);
# the Memoturn header each one honours:
ProfileWriter = Annotated[ProfileBranchWriter, Depends(_profile_writer)]  # Memoturn-Durability
ProfileReader = Annotated[Reader, Depends(_profile_reader)]  # none
ProfileReaderAt = Annotated[Reader, Depends(_profile_reader_at)]  # Memoturn-Min-Txid
BASE = "/v1/namespaces/{namespace}/profiles/{profile}"
router = APIRouter(route_class=StrictRoute, responses=ERRORS, tags=["memory"])


@router.post(BASE + "/memories", status_code=201, response_model=Stored)
def add_memory(body: MemoryIn, w: ProfileWriter) -> Stored:
    ((memory, duplicate),) = w.store([body])
    return Stored(memory=MemoryOut(**memory), duplicate=duplicate, txid=w.txid)


@router.post(BASE + "/memories/batch", status_code=201, response_model=BatchOut)
def add_memories(body: BatchIn, w: ProfileWriter) -> BatchOut:
    stored = [Stored(memory=MemoryOut(**m), duplicate=d, txid=w.txid) for m, d in w.store(body.memories)]
    return BatchOut(memories=stored, txid=w.txid)


@router.post(BASE + "/recall", response_model=RecallOut)
def recall(body: RecallIn, profiles: ProfilesDep, r: ProfileReaderAt) -> RecallOut:
    def dim_of(conn: Any) -> int | None:
        return memories.profile_dim(conn)

    _window(_ts(body.since), _ts(body.until))
    dim = r.read(dim_of)
    vector = None
    if body.embedding is not None:
        vector = as_vector(body.embedding, dim or len(body.embedding))
    elif dim is not None:
        model = profiles.embedder()
        if model.dim != dim:
            raise BadRequest(
                f"this profile stores {dim}-dimensional embeddings; the server's embedder makes "
                f"{model.dim}: send your own query embedding",
                type="dimension-mismatch",
            )
        vector = model.embed([body.query])[0]

    def recalled(conn: Any) -> list[dict[str, Any]]:
        hits = memories.recall(
            conn,
            query=body.query,
            vector=vector,
            limit=body.limit,
            types=body.types,
            tags=body.tags,
            since=_ts(body.since),
            until=_ts(body.until),
            metadata=body.metadata,
            as_of=_ts(body.as_of),
            include_superseded=body.include_superseded,
            recency_half_life_days=body.recency_half_life_days,
            min_score=body.min_score,
        )
        if not body.expand:
            return hits
        return relationships.expand(
            conn,
            hits,
            along=body.expand,
            limit=body.limit,
            direction=body.expand_direction,
            vector=vector,
            filters={
                "types": body.types,
                "tags": body.tags,
                "since": _ts(body.since),
                "until": _ts(body.until),
                "metadata": body.metadata,
                "as_of": _ts(body.as_of),
                "include_superseded": body.include_superseded,
            },
        )

    hits = r.read(recalled)
    return RecallOut(
        results=[
            Hit(
                memory=MemoryOut(**h["memory"]),
                score=h["score"],
                ranks=h["ranks"],
                similarity=h["similarity"],
                text_match=h["text_match"],
                text_score=h["text_score"],
                via=Via(**h["via"]) if h.get("via") else None,
            )
            for h in hits
        ],
        txid=r.txid,
    )


@router.get(BASE + "/memories", response_model=MemoryList)
def list_memories(
    r: ProfileReader,
    type: Annotated[list[str] | None, Query()] = None,
    include_superseded: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    tag: Annotated[list[str] | None, Query(description="Only memories with all of these tags")] = None,
    since: Annotated[
        str | None, Query(description="Only memories whose event time (else record time) is at or after this")
    ] = None,
    until: Annotated[
        str | None, Query(description="Only memories whose event time (else record time) is at or before this")
    ] = None,
    as_of: Annotated[str | None, Query(description="The memories that were current at this time")] = None,
) -> MemoryList:
    lo, hi = _window(query_time("since", since), query_time("until", until))
    at = query_time("as_of", as_of)
    items = r.read(
        lambda c: memories.list_memories(
            c,
            types=type,
            include_superseded=include_superseded,
            limit=limit + 1,
            after=cursor,
            tags=tag,
            since=lo,
            until=hi,
            as_of=at,
        ),
    )
    return MemoryList(
        memories=[MemoryOut(**m) for m in items[:limit]],
        next_cursor=items[limit - 1]["id"] if len(items) > limit else None,
    )


@router.post(BASE + "/memories/forget", response_model=Forgotten)
def forget_matching(body: ForgetIn, w: ProfileWriter, r: ProfileReader) -> Forgotten:
    """Delete the memories matching a filter (types, tags, a time range), superseded ones too; or, with
    ``dry_run``, only say which they are."""
    since, until = _window(_ts(body.since), _ts(body.until))
    if not body.types and not body.tags and since is None and until is None:
        raise BadRequest("give at least one of types, tags, since, until", type="empty-filter")

    def match(conn: Any) -> list[str]:
        return memories.forget_matching(
            conn, types=body.types, tags=body.tags, since=since, until=until, dry_run=body.dry_run
        )

    ids = r.read(match) if body.dry_run else w.write(match)
    return Forgotten(ids=ids, count=len(ids), dry_run=body.dry_run, txid=r.txid if body.dry_run else w.txid)


@router.get(BASE + "/memories/{memory_id}", response_model=MemoryOut)
def get_memory(memory_id: str, r: ProfileReader) -> MemoryOut:
    return MemoryOut(**r.read(lambda c: memories.get(c, memory_id)))


@router.get(BASE + "/memories/{memory_id}/history", response_model=list[MemoryOut])
def memory_history(memory_id: str, r: ProfileReader) -> list[MemoryOut]:
    return [MemoryOut(**m) for m in r.read(lambda c: memories.history(c, memory_id))]


@router.delete(BASE + "/memories/{memory_id}", status_code=204)
def forget(memory_id: str, w: ProfileWriter) -> Response:
    w.write(lambda c: memories.forget(c, memory_id))
    return w.no_content()


@router.get(BASE, response_model=ProfileStats)
def profile_stats(namespace: str, profile: str, r: ProfileReader) -> ProfileStats:
    stats = r.read(memories.stats)
    return ProfileStats(namespace=namespace, profile=profile, database=r.db, head_txid=r.txid, **stats)


@router.put(BASE, response_model=ProfileStats)
def create_profile(namespace: str, profile: str, profiles: ProfilesDep, r: ProfileReader) -> ProfileStats:
    """Create the profile's database now if it does not exist (storing a memory does too), e.g. to
    checkpoint or fork it before its first memory; answers its stats either way."""
    db = r.db
    profiles.ensure(db)
    try:
        stats = r.read(memories.stats)
    except NotFound:  # deleted since this node last created it: again
        with profiles._known_lock:
            profiles._known.pop(db, None)
        profiles.ensure(db)
        stats = r.read(memories.stats)
    return ProfileStats(namespace=namespace, profile=profile, database=r.db, head_txid=r.txid, **stats)


@router.delete(BASE, status_code=204)
def delete_profile(namespace: str, profile: str, node: NodeDep) -> Response:
    node.delete_database(profile_database(namespace, profile))
    return Response(status_code=204)


@router.get("/v1/namespaces/{namespace}/profiles", response_model=ProfileList)
def list_profiles(
    namespace: str, node: NodeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100, cursor: str | None = None
) -> ProfileList:
    prefix = check_namespace(namespace) + SEPARATOR
    names, nxt = node.list_databases(limit=limit, cursor=prefix + cursor if cursor else None, prefix=prefix)
    # The prefix also matches names that are no profile of this namespace ('acme---x',
    # 'acme--x--y'): keep only exact splits. The cursor stays the position of the last
    # name read, so a page of skipped names does not end the listing.
    profiles = [split[1] for n in names if (split := split_profile_database(n)) and split[0] == namespace]
    return ProfileList(profiles=profiles, next_cursor=nxt[len(prefix) :] if nxt else None)
