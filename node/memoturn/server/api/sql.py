"""The SQL route: statements of a database branch, in one transaction by default."""

from __future__ import annotations

from fastapi import APIRouter

from .models import SQLRequest, SQLResponse
from .params import ERRORS, BranchWriter, MinTxid
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["sql"])


@router.post("/v1/databases/{db}/sql", response_model=SQLResponse, responses={**ERRORS, 403: ERRORS[400]})
def sql(body: SQLRequest, w: BranchWriter, min_txid: MinTxid = None) -> SQLResponse:
    statements = [(s.sql, s.params) for s in body.statements]
    results = w.sql(statements, transaction=body.transaction, min_txid=min_txid)
    return SQLResponse(results=results, txid=w.txid)
