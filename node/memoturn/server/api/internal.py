"""Node-to-node routes: a replica's state, and the segments a primary streams to its replicas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ...errors import NotFound
from ...names import DEFAULT_BRANCH
from .models import ReplicaApplied, ReplicaState
from .params import ERRORS, Branch, NodeDep
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, responses=ERRORS, tags=["internal"])


@router.get("/internal/v1/replicas/{db}", response_model=ReplicaState)
def replica_state(db: str, node: NodeDep, branch: Branch = DEFAULT_BRANCH) -> Any:
    """This node's replica copy of a branch (head txid), for replica-lag reporting."""
    state = node.replicas.describe(db, branch)
    if state is None:
        raise NotFound(f"this node holds no replica of {db}/{branch}", type="no-replica")
    return state


@router.post("/internal/v1/replicate/{db}", response_model=ReplicaApplied)
async def replicate(db: str, request: Request, node: NodeDep, branch: Branch = DEFAULT_BRANCH) -> Any:
    """Node to node: apply one streamed segment to this node's replica copy."""
    data = await request.body()
    head = request.headers.get("Memoturn-Head-Txid")
    return await run_in_threadpool(
        node.replicas.apply, db, branch, data, int(head) if head and head.isdigit() else None
    )
