"""What every router takes from a request, declared once: the node, the branch, the Memoturn headers.

The header aliases and their parsing live only here, so a route cannot read
``Memoturn-Durability`` or ``Memoturn-Min-Txid`` differently from another. The shared
``ERRORS`` table documents the problem answers every route may give.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request, Response

from ...errors import BadRequest
from ..node import Node
from .models import Problem

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 404, 409, 412, 413, 422, 503)
}


async def _node(request: Request) -> Node:
    # async: resolved on the event loop, so it adds no thread hand-off to a request
    node: Node = request.app.state.node
    return node


NodeDep = Annotated[Node, Depends(_node)]
Branch = Annotated[str, Query(description="Branch of the database")]
MinTxid = Annotated[int | None, Header(alias="Memoturn-Min-Txid", ge=0)]
Durability = Annotated[str | None, Header(alias="Memoturn-Durability")]
ReadFrom = Annotated[
    str | None,
    Header(
        alias="Memoturn-Read", description="'primary' (default, strong) or 'replica' (bounded-stale, says its txid)"
    ),
]


def durable(value: str | None) -> bool | None:
    """The ``Memoturn-Durability`` header: None (the node's default), or whether to wait for the store."""
    if value is None:
        return None
    if value not in ("standard", "durable"):
        raise BadRequest("Memoturn-Durability must be 'standard' or 'durable'", type="invalid-header")
    return value == "durable"


def replica(value: str | None) -> bool:
    """The ``Memoturn-Read`` header: whether a bounded-stale replica read is allowed."""
    if value is None or value == "primary":
        return False
    if value != "replica":
        raise BadRequest("Memoturn-Read must be 'primary' or 'replica'", type="invalid-header")
    return True


def set_txid(response: Response, txid: int) -> None:
    """Say the txid the answer was served at (``Memoturn-Txid``)."""
    response.headers["Memoturn-Txid"] = str(txid)
