"""What every router takes from a request, declared once: the node, the branch, the Memoturn headers.

The header aliases and their parsing live only here, so a route cannot read
``Memoturn-Durability`` or ``Memoturn-Min-Txid`` differently from another. A route that
writes or reads one database branch takes a :class:`Writer` or :class:`Reader`
(``BranchWriter``, ``BranchReader``, ...): it bundles the database, the branch, the header, the
node and the response, and says the txid of what it did in ``Memoturn-Txid``. The shared
``ERRORS`` table documents the problem answers every route may give.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query, Request, Response

from ...errors import BadRequest
from ...names import DEFAULT_BRANCH
from ...timewindow import seconds
from ..node import Node
from .models import Problem

T = TypeVar("T")

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


def query_time(name: str, value: str | None) -> float | None:
    """A time in the query string (unix seconds or ISO 8601, read by :func:`memoturn.timewindow.seconds`,
    as the SDK, CLI and MCP read one); 400 ``invalid-time`` naming the parameter else."""
    if value is None:
        return None
    try:
        return seconds(value, name)
    except ValueError as e:
        raise BadRequest(str(e), type="invalid-time") from None


def set_txid(response: Response, txid: int) -> None:
    """Say the txid the answer was served at (``Memoturn-Txid``)."""
    response.headers["Memoturn-Txid"] = str(txid)


@dataclass
class _Scope:
    """One request's database branch: what it reads or writes there says its txid (``Memoturn-Txid``).

    The database is named lazily (``database`` may be a function that checks the name), and the
    headers are parsed only when used, so a route raises its errors in the same order as when it
    read them itself: request validation first, then its own checks, then the header.
    """

    node: Node
    response: Response
    database: str | Callable[[], str]
    branch: str = DEFAULT_BRANCH
    txid: int = field(init=False)  # of the last read or write, once there was one

    @property
    def db(self) -> str:
        if not isinstance(self.database, str):
            self.database = self.database()
        return self.database

    def said(self, result: T, txid: int) -> T:
        """``result``, served at ``txid``: said in ``Memoturn-Txid`` (and kept as :attr:`txid`)."""
        self.txid = txid
        set_txid(self.response, txid)
        return result

    def no_content(self) -> Response:
        """The 204 answer of a write that returns nothing (a new Response: it says its txid itself)."""
        return Response(status_code=204, headers={"Memoturn-Txid": str(self.txid)})


@dataclass
class Writer(_Scope):
    """Writes at the ``Memoturn-Durability`` the request asked for (None: the node's default)."""

    durability: str | None = None

    def durable(self) -> bool | None:
        """The parsed ``Memoturn-Durability`` header (400 ``invalid-header`` if it is neither value)."""
        return durable(self.durability)

    def write(self, fn: Callable[[Any], T], **kw: Any) -> T:
        """``node.write(db, fn)`` on the branch; ``kw`` goes to the node."""
        return self.said(*self.node.write(self.db, fn, branch=self.branch, durable=self.durable(), **kw))

    def sql(
        self, statements: list[tuple[str, Any]], *, transaction: bool, min_txid: int | None
    ) -> list[dict[str, Any]]:
        """User SQL (``node.sql``) on the branch, once the branch has reached ``min_txid``."""
        db, wait = self.db, self.durable()
        if min_txid is not None:
            self.node.read(db, lambda c: None, branch=self.branch, min_txid=min_txid)
        return self.said(*self.node.sql(db, statements, branch=self.branch, durable=wait, transaction=transaction))


@dataclass
class Reader(_Scope):
    """Reads once the branch has reached the request's ``Memoturn-Min-Txid`` (if any)."""

    min_txid: int | None = None

    def read(self, fn: Callable[[Any], T], **kw: Any) -> T:
        """``node.read(db, fn)`` on the branch; ``kw`` goes to the node."""
        return self.said(*self.node.read(self.db, fn, branch=self.branch, min_txid=self.min_txid, **kw))


# The dependencies are async: resolved on the event loop, they add no thread hand-off.
async def _branch_writer(
    db: str, response: Response, node: NodeDep, branch: Branch = DEFAULT_BRANCH, durability: Durability = None
) -> Writer:
    return Writer(node, response, db, branch, durability)


async def _branch_default_writer(db: str, response: Response, node: NodeDep, branch: Branch = DEFAULT_BRANCH) -> Writer:
    return Writer(node, response, db, branch)


async def _branch_reader(
    db: str, response: Response, node: NodeDep, branch: Branch = DEFAULT_BRANCH, min_txid: MinTxid = None
) -> Reader:
    return Reader(node, response, db, branch, min_txid)


# The path's ``{db}``, the ``branch`` query and the header each one honours:
BranchWriter = Annotated[Writer, Depends(_branch_writer)]  # Memoturn-Durability
BranchDefaultWriter = Annotated[Writer, Depends(_branch_default_writer)]  # none: the node's durability
BranchReader = Annotated[Reader, Depends(_branch_reader)]  # Memoturn-Min-Txid
