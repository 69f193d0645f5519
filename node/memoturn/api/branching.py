"""Branch routes: fork, list, delete, rewind (and undo), checkpoints, garbage collection."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict, Field

from .. import branches
from ..node import Node
from .memory import ERRORS
from .models import Bool, Float, Int, Text


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


def install(app: FastAPI, node: Node) -> None:
    base = "/v1/databases/{db}/branches"

    @app.post(base, status_code=201, responses=ERRORS, tags=["branches"])
    def fork(db: str, body: ForkIn) -> dict[str, Any]:
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

    @app.get(base, responses=ERRORS, tags=["branches"])
    def list_branches(db: str) -> dict[str, Any]:
        return {"branches": branches.list_branches(node, db)}

    @app.delete(base + "/{branch}", status_code=204, responses=ERRORS, tags=["branches"])
    def delete_branch(db: str, branch: str) -> Response:
        branches.delete_branch(node, db, branch)
        return Response(status_code=204)

    @app.post(base + "/{branch}/rewind", responses=ERRORS, tags=["branches"])
    def rewind(db: str, branch: str, body: Point, response: Response) -> dict[str, Any]:
        txid = branches.rewind(node, db, branch, txid=body.txid, checkpoint=body.checkpoint, timestamp=body.timestamp)
        response.headers["Memoturn-Txid"] = str(txid)
        return {"branch": branch, "head_txid": txid}

    @app.post(base + "/{branch}/undo-rewind", responses=ERRORS, tags=["branches"])
    def undo(db: str, branch: str, response: Response) -> dict[str, Any]:
        txid = branches.undo_rewind(node, db, branch)
        response.headers["Memoturn-Txid"] = str(txid)
        return {"branch": branch, "head_txid": txid}

    @app.post(base + "/{branch}/checkpoints", status_code=201, responses=ERRORS, tags=["branches"])
    def checkpoint(db: str, branch: str, body: CheckpointIn) -> dict[str, Any]:
        return {"checkpoint": body.name, "txid": branches.set_checkpoint(node, db, branch, body.name, body.txid)}

    @app.get(base + "/{branch}/checkpoints", responses=ERRORS, tags=["branches"])
    def checkpoints(db: str, branch: str) -> dict[str, Any]:
        from ..manifest import load_manifest

        m, _ = load_manifest(node.store, db, branch)
        return {"checkpoints": m.checkpoints}

    @app.delete(base + "/{branch}/checkpoints/{name}", status_code=204, responses=ERRORS, tags=["branches"])
    def delete_checkpoint(db: str, branch: str, name: str) -> Response:
        branches.delete_checkpoint(node, db, branch, name)
        return Response(status_code=204)

    @app.put(base + "/{branch}/policy", responses=ERRORS, tags=["branches"])
    def policy(db: str, branch: str, body: PolicyIn) -> dict[str, Any]:
        """Per-branch snapshot cadence, snapshots kept, PITR retention window, segment merging."""
        return branches.set_policy(node, db, branch, body.model_dump())

    @app.post("/v1/databases/{db}/gc", responses=ERRORS, tags=["branches"])
    def gc(db: str, body: GCIn) -> dict[str, Any]:
        return branches.collect(node, db, grace=body.grace_seconds, dry_run=body.dry_run)
