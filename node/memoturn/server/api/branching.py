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


BASE = "/v1/databases/{db}/branches"
router = APIRouter(route_class=StrictRoute, responses=ERRORS, tags=["branches"])


@router.post(BASE, status_code=201)
def fork(db: str, body: ForkIn, node: NodeDep) -> dict[str, Any]:
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


@router.get(BASE)
def list_branches(db: str, node: NodeDep) -> dict[str, Any]:
    return {"branches": branches.list_branches(node, db)}


@router.delete(BASE + "/{branch}", status_code=204)
def delete_branch(db: str, branch: str, node: NodeDep) -> Response:
    branches.delete_branch(node, db, branch)
    return Response(status_code=204)


@router.post(BASE + "/{branch}/rewind")
def rewind(db: str, branch: str, body: Point, response: Response, node: NodeDep) -> dict[str, Any]:
    txid = branches.rewind(node, db, branch, txid=body.txid, checkpoint=body.checkpoint, timestamp=body.timestamp)
    set_txid(response, txid)
    return {"branch": branch, "head_txid": txid}


@router.post(BASE + "/{branch}/undo-rewind")
def undo(db: str, branch: str, response: Response, node: NodeDep) -> dict[str, Any]:
    txid = branches.undo_rewind(node, db, branch)
    set_txid(response, txid)
    return {"branch": branch, "head_txid": txid}


@router.post(BASE + "/{branch}/checkpoints", status_code=201)
def checkpoint(db: str, branch: str, body: CheckpointIn, node: NodeDep) -> dict[str, Any]:
    return {"checkpoint": body.name, "txid": branches.set_checkpoint(node, db, branch, body.name, body.txid)}


@router.get(BASE + "/{branch}/checkpoints")
def checkpoints(db: str, branch: str, node: NodeDep) -> dict[str, Any]:
    m, _ = load_manifest(node.store, db, branch)
    return {"checkpoints": m.checkpoints}


@router.delete(BASE + "/{branch}/checkpoints/{name}", status_code=204)
def delete_checkpoint(db: str, branch: str, name: str, node: NodeDep) -> Response:
    branches.delete_checkpoint(node, db, branch, name)
    return Response(status_code=204)


@router.put(BASE + "/{branch}/policy")
def policy(db: str, branch: str, body: PolicyIn, node: NodeDep) -> dict[str, Any]:
    """Per-branch snapshot cadence, snapshots kept, PITR retention window, segment merging."""
    return branches.set_policy(node, db, branch, body.model_dump())


@router.post("/v1/databases/{db}/gc")
def gc(db: str, body: GCIn, node: NodeDep) -> dict[str, Any]:
    return branches.collect(node, db, grace=body.grace_seconds, dry_run=body.dry_run)
