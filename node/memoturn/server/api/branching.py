"""Branch routes: fork, list, delete, rewind (and undo), checkpoints, garbage collection."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from ...storage.manifest import load_manifest
from .. import branches
from .models import Bool, Float, Int, Text
from .params import ERRORS, NodeDep, set_txid
from .strict import StrictRoute


class Point(BaseModel):
    """At most one of txid / checkpoint / timestamp; none means the head."""

    model_config = ConfigDict(extra="forbid")
    txid: Int | None = Field(None, ge=0)
    checkpoint: Text | None = None
    timestamp: Float | None = Field(None, description="unix seconds: the last txid committed at or before it")


class ForkIn(Point):
    name: Text = Field(description="The new branch")
    parent: Text = "main"
    ttl_seconds: Float | None = Field(None, gt=0, description="A burner branch: deleted once this long has passed")


class CheckpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text
    txid: Int | None = Field(None, ge=0)


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    snapshot_every_txids: Int | None = Field(None, ge=1)
    keep_snapshots: Int | None = Field(None, ge=1)
    retention_seconds: Float | None = Field(None, ge=0)
    merge_segments_over: Int | None = Field(None, ge=2)


class GCIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace_seconds: Float = Field(branches.DEFAULT_GRACE_SECONDS, ge=0)
    dry_run: Bool = False


class BranchParent(BaseModel):
    branch: str = Field(description="The branch this one was forked from")
    txid: int = Field(description="The parent's txid the fork started at")


class AbandonedRewind(BaseModel):
    """What a rewind cut off, kept for the GC grace window so undo-rewind can bring it back."""

    from_txid: int = Field(description="The txid the branch was rewound to")
    head_txid: int = Field(description="The head before the rewind")
    at: float = Field(description="When the rewind happened (unix seconds)")


class BranchInfo(BaseModel):
    """A branch as its manifest describes it."""

    branch: str
    parent: BranchParent | None = Field(description="None for a database's main branch")
    head_txid: int
    timeline: int = Field(description="Grows by one at each rewind and undo")
    checkpoints: dict[str, int] = Field(description="Checkpoint name to txid")
    expires_at: float | None = Field(description="A burner branch's deletion time (unix seconds)")
    created_at: float
    abandoned: list[AbandonedRewind] = Field(description="Rewound tails still undoable, oldest first")


class BranchList(BaseModel):
    branches: list[BranchInfo]


class Rewound(BaseModel):
    branch: str
    head_txid: int = Field(description="The branch's head after the rewind (or its undo)")


class CheckpointSet(BaseModel):
    checkpoint: str
    txid: int = Field(description="The txid the checkpoint names")


class CheckpointList(BaseModel):
    checkpoints: dict[str, int] = Field(description="Checkpoint name to txid")


class Policy(BaseModel):
    """The branch's policy now; null fields use the node's settings."""

    snapshot_every_txids: int | None
    keep_snapshots: int | None
    retention_seconds: float | None = Field(description="Every snapshot younger than this is kept (PITR window)")
    merge_segments_over: int | None = Field(description="Small segments are merged once a branch has more")


class GCReport(BaseModel):
    """One garbage-collection pass over a database (or what it would do, on a dry run)."""

    database: str
    branches: list[str] = Field(description="The live branches whose objects are kept")
    expired_branches: list[str] = Field(description="Burner branches past their expiry, deleted by this pass")
    abandoned_tails_dropped: int = Field(description="Rewound tails older than the grace window, dropped")
    objects: int = Field(description="Objects under the database (manifests aside)")
    referenced: int = Field(description="Objects a manifest still references")
    unreferenced: int
    deleted: list[str] = Field(description="Keys deleted: unreferenced for longer than the grace window")
    candidates: int = Field(description="Unreferenced objects still within the grace window")
    dry_run: bool


BASE = "/v1/databases/{db}/branches"
router = APIRouter(route_class=StrictRoute, responses=ERRORS, tags=["branches"])


@router.post(BASE, status_code=201, response_model=BranchInfo)
def fork(db: str, body: ForkIn, node: NodeDep) -> Any:
    m = branches.fork(
        node,
        db,
        body.name,
        parent=body.parent,
        txid=body.txid,
        checkpoint=body.checkpoint,
        timestamp=body.timestamp,
        ttl_seconds=body.ttl_seconds,
    )
    return branches.describe(m)


@router.get(BASE, response_model=BranchList)
def list_branches(db: str, node: NodeDep) -> Any:
    return {"branches": branches.list_branches(node, db)}


@router.delete(BASE + "/{branch}", status_code=204)
def delete_branch(db: str, branch: str, node: NodeDep) -> Response:
    branches.delete_branch(node, db, branch)
    return Response(status_code=204)


@router.post(BASE + "/{branch}/rewind", response_model=Rewound)
def rewind(db: str, branch: str, body: Point, response: Response, node: NodeDep) -> Any:
    txid = branches.rewind(node, db, branch, txid=body.txid, checkpoint=body.checkpoint, timestamp=body.timestamp)
    set_txid(response, txid)
    return {"branch": branch, "head_txid": txid}


@router.post(BASE + "/{branch}/undo-rewind", response_model=Rewound)
def undo(db: str, branch: str, response: Response, node: NodeDep) -> Any:
    txid = branches.undo_rewind(node, db, branch)
    set_txid(response, txid)
    return {"branch": branch, "head_txid": txid}


@router.post(BASE + "/{branch}/checkpoints", status_code=201, response_model=CheckpointSet)
def checkpoint(db: str, branch: str, body: CheckpointIn, node: NodeDep) -> Any:
    return {"checkpoint": body.name, "txid": branches.set_checkpoint(node, db, branch, body.name, body.txid)}


@router.get(BASE + "/{branch}/checkpoints", response_model=CheckpointList)
def checkpoints(db: str, branch: str, node: NodeDep) -> Any:
    m, _ = load_manifest(node.store, db, branch)
    return {"checkpoints": m.checkpoints}


@router.delete(BASE + "/{branch}/checkpoints/{name}", status_code=204)
def delete_checkpoint(db: str, branch: str, name: str, node: NodeDep) -> Response:
    branches.delete_checkpoint(node, db, branch, name)
    return Response(status_code=204)


@router.put(BASE + "/{branch}/policy", response_model=Policy)
def policy(db: str, branch: str, body: PolicyIn, node: NodeDep) -> Any:
    """Per-branch snapshot cadence, snapshots kept, PITR retention window, segment merging."""
    return branches.set_policy(node, db, branch, body.model_dump())


@router.post("/v1/databases/{db}/gc", response_model=GCReport)
def gc(db: str, body: GCIn, node: NodeDep) -> Any:
    return branches.collect(node, db, grace=body.grace_seconds, dry_run=body.dry_run)
