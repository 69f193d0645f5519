"""Relationship routes: typed, directed links between a profile's memories, and their traversal.

Under the profile's own routes (``/v1/namespaces/{ns}/profiles/{p}``), in its own database file
(:mod:`memoturn.data.relationships`): create one from a memory, list a memory's neighbours,
read or remove one, the shortest path between two memories and the subgraph around one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...data import relationships
from ...errors import BadRequest
from .memory import BASE, MemoryOut, ProfileReaderAt, ProfileWriter, _ts
from .models import Bool, Float, Int, Text, Timestamp
from .params import ERRORS, query_time
from .strict import StrictRoute

DirectionIn = Literal["out", "in", "both"]
RelType = Annotated[Text, Field(min_length=1, max_length=64)]
MemoryId = Annotated[Text, Field(min_length=1, max_length=256)]


MAX_TYPES = 32


def _checked_types(value: list[str] | None) -> list[str] | None:
    if value and len(value) > MAX_TYPES:
        raise BadRequest(f"at most {MAX_TYPES} relationship types", type="invalid-relationship-type")
    return [relationships.check_type(t) for t in value] if value else value


class RelationshipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: MemoryId = Field(description="The memory this one points to (same profile, another memory)")
    type: RelType = Field(
        description="relates_to, caused_by, part_of, contradicts, follows, or your own: a-z, 0-9, '_', 1-64 characters"
    )
    weight: Float | None = Field(None, ge=0, le=1, description="Strength 0..1; recall expansion multiplies by it")
    properties: dict[str, Any] = Field(default_factory=dict, description="Any JSON object")

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        return relationships.check_type(v)


class RelationshipOut(BaseModel):
    id: str
    type: str
    source: str
    target: str
    weight: float | None
    properties: dict[str, Any]
    created_at: float
    removed_at: float | None = Field(description="When it was removed (it stays visible as_of an earlier time)")


class Related(BaseModel):
    relationship: RelationshipOut
    duplicate: bool = Field(description="A live relationship of this type between these memories existed: unchanged")
    txid: int


class RelationshipPage(BaseModel):
    relationships: list[RelationshipOut] = Field(description="Live relationships in id order")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last one")
    txid: int


class Neighbour(BaseModel):
    relationship: RelationshipOut
    direction: Literal["out", "in"] = Field(description="out: the memory is the target; in: it is the source")
    memory: MemoryOut


class Neighbours(BaseModel):
    results: list[Neighbour]
    txid: int


class _Walk(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)
    types: list[RelType] | None = Field(None, max_length=MAX_TYPES, description="Follow only these relationship types")
    as_of: Timestamp | None = Field(None, description="Walk the relationships and memories as they were then")
    include_superseded: Bool = Field(False, description="Also walk through superseded memories")

    @field_validator("types")
    @classmethod
    def _types(cls, v: list[str] | None) -> list[str] | None:
        return _checked_types(v)


class PathIn(_Walk):
    from_: MemoryId = Field(alias="from", description="The memory to start from")
    to: MemoryId = Field(description="The memory to reach")
    max_depth: Int = Field(4, ge=1, le=relationships.MAX_PATH_DEPTH, description="At most this many hops")
    direction: DirectionIn = Field("out", description="out: along relationships; in: against them; both: either")


class PathOut(BaseModel):
    found: bool
    depth: int | None = Field(description="Hops of the shortest path found")
    memories: list[MemoryOut] = Field(description="from .. to, in order")
    relationships: list[RelationshipOut] = Field(description="One per hop, in order")
    truncated: bool = Field(description="The walk stopped at its row bound before finding a path")
    txid: int


class SubgraphIn(_Walk):
    memory_id: MemoryId
    depth: Int = Field(2, ge=1, le=relationships.MAX_SUBGRAPH_DEPTH, description="At most this many hops away")
    limit: Int = Field(50, ge=1, le=relationships.MAX_SUBGRAPH_NODES, description="At most this many memories")
    direction: DirectionIn = "both"


class Reached(BaseModel):
    memory: MemoryOut
    depth: int


class SubgraphOut(BaseModel):
    memories: list[Reached] = Field(description="Nearest first; the start at depth 0")
    relationships: list[RelationshipOut] = Field(description="The relationships among these memories")
    truncated: bool = Field(description="More memories were in reach than limit (or the walk hit its row bound)")
    txid: int


router = APIRouter(route_class=StrictRoute, responses=ERRORS, tags=["relationships"])


@router.post(BASE + "/memories/{memory_id}/relationships", status_code=201, response_model=Related)
def relate(memory_id: str, body: RelationshipIn, w: ProfileWriter) -> Related:
    rel, duplicate = w.write(
        lambda c: relationships.relate(
            c, memory_id, body.target, body.type, weight=body.weight, properties=body.properties
        )
    )
    return Related(relationship=RelationshipOut(**rel), duplicate=duplicate, txid=w.txid)


@router.get(BASE + "/memories/{memory_id}/relationships", response_model=Neighbours)
def neighbours(
    memory_id: str,
    r: ProfileReaderAt,
    type: Annotated[list[str] | None, Query(description="Only these relationship types")] = None,
    direction: Annotated[DirectionIn, Query(description="out, in or both")] = "both",
    limit: Annotated[int, Query(ge=1, le=relationships.MAX_NEIGHBOURS)] = 100,
    as_of: Annotated[str | None, Query(description="unix seconds or ISO 8601: as they were then")] = None,
    include_superseded: bool = False,
) -> Neighbours:
    types, when = _checked_types(type), query_time("as_of", as_of)
    found = r.read(
        lambda c: relationships.neighbours(
            c,
            memory_id,
            types=types,
            direction=direction,
            limit=limit,
            as_of=when,
            include_superseded=include_superseded,
        )
    )
    return Neighbours(
        results=[
            Neighbour(
                relationship=RelationshipOut(**n["relationship"]),
                direction=n["direction"],
                memory=MemoryOut(**n["memory"]),
            )
            for n in found
        ],
        txid=r.txid,
    )


@router.get(BASE + "/relationships", response_model=RelationshipPage)
def list_relationships(
    r: ProfileReaderAt,
    limit: Annotated[int, Query(ge=1, le=relationships.MAX_NEIGHBOURS)] = 100,
    cursor: Annotated[str | None, Query(max_length=256, description="next_cursor of the previous page")] = None,
) -> RelationshipPage:
    """Every live relationship of the profile, a page at a time (for export and audits)."""
    page = r.read(lambda c: relationships.live(c, after=cursor, limit=limit + 1))
    more = len(page) > limit
    page = page[:limit]
    return RelationshipPage(
        relationships=[RelationshipOut(**rel) for rel in page],
        next_cursor=page[-1]["id"] if more else None,
        txid=r.txid,
    )


@router.get(BASE + "/relationships/{rel_id}", response_model=RelationshipOut)
def get_relationship(rel_id: str, r: ProfileReaderAt) -> RelationshipOut:
    return RelationshipOut(**r.read(lambda c: relationships.get(c, rel_id)))


@router.delete(BASE + "/relationships/{rel_id}", status_code=204)
def unrelate(rel_id: str, w: ProfileWriter) -> Response:
    w.write(lambda c: relationships.unrelate(c, rel_id))
    return w.no_content()


@router.post(BASE + "/relationships/path", response_model=PathOut)
def path(body: PathIn, r: ProfileReaderAt) -> PathOut:
    found: dict[str, Any] = r.read(
        lambda c: relationships.path(
            c,
            body.from_,
            body.to,
            max_depth=body.max_depth,
            types=body.types,
            direction=body.direction,
            as_of=_ts(body.as_of),
            include_superseded=body.include_superseded,
        )
    )
    return PathOut(
        found=found["found"],
        depth=found["depth"],
        memories=[MemoryOut(**m) for m in found["memories"]],
        relationships=[RelationshipOut(**x) for x in found["relationships"]],
        truncated=found["truncated"],
        txid=r.txid,
    )


@router.post(BASE + "/relationships/subgraph", response_model=SubgraphOut)
def subgraph(body: SubgraphIn, r: ProfileReaderAt) -> SubgraphOut:
    found: dict[str, Any] = r.read(
        lambda c: relationships.subgraph(
            c,
            body.memory_id,
            depth=body.depth,
            limit=body.limit,
            types=body.types,
            direction=body.direction,
            as_of=_ts(body.as_of),
            include_superseded=body.include_superseded,
        )
    )
    return SubgraphOut(
        memories=[Reached(memory=MemoryOut(**n["memory"]), depth=n["depth"]) for n in found["memories"]],
        relationships=[RelationshipOut(**x) for x in found["relationships"]],
        truncated=found["truncated"],
        txid=r.txid,
    )
