"""Database routes: create, list, describe and delete the databases of the node's store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ...names import DEFAULT_BRANCH
from .models import CreateDatabase, DatabaseInfo, DatabaseList
from .params import ERRORS, Branch, NodeDep, set_txid
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, responses=ERRORS, tags=["databases"])


@router.post("/v1/databases", status_code=201, response_model=DatabaseInfo)
def create_database(body: CreateDatabase, response: Response, node: NodeDep) -> DatabaseInfo:
    node.create_database(body.name)
    set_txid(response, 0)
    return DatabaseInfo(**node.describe(body.name))


@router.get("/v1/databases", response_model=DatabaseList)
def list_databases(
    node: NodeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100, cursor: str | None = None
) -> DatabaseList:
    names, nxt = node.list_databases(limit=limit, cursor=cursor)
    return DatabaseList(databases=names, next_cursor=nxt)


@router.get("/v1/databases/{db}", response_model=DatabaseInfo)
def get_database(db: str, response: Response, node: NodeDep, branch: Branch = DEFAULT_BRANCH) -> DatabaseInfo:
    info = node.describe(db, branch)
    set_txid(response, info["head_txid"])
    return DatabaseInfo(**info)


@router.delete("/v1/databases/{db}", status_code=204)
def delete_database(db: str, node: NodeDep) -> Response:
    node.delete_database(db)
    return Response(status_code=204)
