"""Key-value routes of a database branch.

A read that need not wait is answered on the event loop; anything that may do I/O runs in a thread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from ...data import kv
from ...errors import NotFound
from ...names import DEFAULT_BRANCH
from ..node import Node
from .models import KVDeleted, KVItem, KVList, KVPut, KVWritten
from .params import ERRORS, Branch, BranchWriter, MinTxid, NodeDep, ReadFrom, replica, set_txid
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, responses=ERRORS, tags=["kv"])
KEY = "/v1/databases/{db}/kv/{key:path}"


async def read_item(
    node: Node, db: str, key: str, branch: str, min_txid: int | None, read_from: str | None
) -> tuple[KVItem, int, str]:
    """``(item, txid, served_by)`` of one key, for this route and the hot one (:mod:`.hot_kv`).

    A read that need not wait (a cache hit, or a hot owned branch whose lock is free) runs on
    the event loop: no thread hand-off, the largest cost of a small read; anything that may do
    I/O runs in a thread. A missing key is a 404 that still names the txid read.
    """
    kv.check_key(key)
    from_replica = replica(read_from) and node.serves_replica(db, branch)
    if from_replica:
        item, txid = await run_in_threadpool(
            node.read, db, lambda c: kv.get(c, key), branch=branch, min_txid=min_txid, replica=True
        )
    elif (hit := node.kv_get_nowait(db, key, branch=branch, min_txid=min_txid)) is not None:
        item, txid = hit
    else:
        item, txid = await run_in_threadpool(node.kv_get, db, key, branch=branch, min_txid=min_txid)
    if item is None:
        raise NotFound(f"key {key!r} not found in {db}", type="key-not-found", txid=txid)
    return KVItem(**item), txid, "replica" if from_replica else "primary"


@router.put(KEY, response_model=KVWritten)
def kv_put(key: str, body: KVPut, w: BranchWriter) -> KVWritten:
    kv.check_key(key)
    text = kv.encode_value(body.value, w.node.settings.max_value_bytes)
    w.write(lambda c: kv.put(c, key, text, body.ttl_seconds))
    return KVWritten(key=key, txid=w.txid)


@router.get(KEY, response_model=KVItem)
async def kv_get(
    db: str,
    key: str,
    response: Response,
    node: NodeDep,
    branch: Branch = DEFAULT_BRANCH,
    min_txid: MinTxid = None,
    read_from: ReadFrom = None,
) -> KVItem:
    item, txid, served_by = await read_item(node, db, key, branch, min_txid, read_from)
    response.headers["Memoturn-Served-By"] = served_by
    set_txid(response, txid)
    return item


@router.delete(KEY, response_model=KVDeleted)
def kv_delete(key: str, w: BranchWriter) -> KVDeleted:
    kv.check_key(key)
    existed = w.write(lambda c: kv.delete(c, key))
    return KVDeleted(key=key, deleted=existed, txid=w.txid)


@router.get("/v1/databases/{db}/kv", response_model=KVList)
def kv_list(
    db: str,
    response: Response,
    node: NodeDep,
    prefix: str = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    values: bool = True,
    branch: Branch = DEFAULT_BRANCH,
    min_txid: MinTxid = None,
    read_from: ReadFrom = None,
) -> KVList:
    from_replica = replica(read_from)
    items, txid = node.read(
        db,
        lambda c: kv.list_keys(c, prefix, limit + 1, cursor, values),
        branch=branch,
        min_txid=min_txid,
        replica=from_replica,
    )
    response.headers["Memoturn-Served-By"] = (
        "replica" if from_replica and node.serves_replica(db, branch) else "primary"
    )
    nxt = items[limit - 1]["key"] if len(items) > limit else None
    set_txid(response, txid)
    return KVList(items=[KVItem(**i) for i in items[:limit]], next_cursor=nxt)
