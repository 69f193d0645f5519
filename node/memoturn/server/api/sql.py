"""The SQL route: statements of a database branch, in one transaction by default."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ...names import DEFAULT_BRANCH
from .models import SQLRequest, SQLResponse
from .params import ERRORS, Branch, Durability, MinTxid, NodeDep, durable, set_txid
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["sql"])


@router.post("/v1/databases/{db}/sql", response_model=SQLResponse, responses={**ERRORS, 403: ERRORS[400]})
def sql(
    db: str,
    body: SQLRequest,
    response: Response,
    node: NodeDep,
    branch: Branch = DEFAULT_BRANCH,
    durability: Durability = None,
    min_txid: MinTxid = None,
) -> SQLResponse:
    statements = [(s.sql, s.params) for s in body.statements]
    wait = durable(durability)
    if min_txid is not None:
        node.read(db, lambda c: None, branch=branch, min_txid=min_txid)
    results, txid = node.sql(db, statements, branch=branch, durable=wait, transaction=body.transaction)
    set_txid(response, txid)
    return SQLResponse(results=results, txid=txid)
