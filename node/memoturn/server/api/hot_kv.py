"""``GET`` and ``PUT /v1/databases/{db}/kv/{key}`` as a hot route (:mod:`.hot`).

It runs the same code as :mod:`.kv` (key and value checks, :func:`.kv.read_item`, the write, the
``Memoturn-*`` headers). A ``GET`` takes ``Memoturn-Min-Txid`` only as plain decimal digits; a
``PUT`` only an ``application/json`` body that is an object of ``value`` and an optional finite,
positive, non-integer ``ttl_seconds``; every other shape goes to the FastAPI route.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ...data import kv
from ..node import Node
from .hot import HotRoute, branch_query, read_body, replay, single_headers
from .kv import KEY, read_item
from .models import KVItem, KVWritten
from .params import durable
from .strict import loads

_ITEM = TypeAdapter(KVItem)  # FastAPI's serializer for a response_model: TypeAdapter.dump_json
_WRITTEN = TypeAdapter(KVWritten)
_SINGLE = (b"memoturn-min-txid", b"memoturn-read", b"memoturn-durability", b"content-type")
_PUT_FIELDS = frozenset({"value", "ttl_seconds"})


def _min_txid(value: bytes | None) -> tuple[bool, int | None]:
    """``(ours, Memoturn-Min-Txid)``: not ours unless absent or plain digits (FastAPI reads or refuses it)."""
    if value is None:
        return True, None
    if not value.isdigit() or len(value) > 18:  # bytes.isdigit: ASCII digits only
        return False, None
    return True, int(value)


def _put_body(body: bytes) -> tuple[Any, float | None] | None:
    """``(value, ttl_seconds)`` of a body KVPut takes as it is, or None for FastAPI to judge."""
    try:
        data = loads(body)
    except ValueError:
        return None
    if type(data) is not dict or "value" not in data or not _PUT_FIELDS.issuperset(data):
        return None
    ttl = data.get("ttl_seconds")
    if ttl is not None and (type(ttl) is not float or not math.isfinite(ttl) or ttl <= 0):
        return None
    return data["value"], ttl


class HotKVRoute(HotRoute):
    """``GET``/``PUT`` of one KV item, ahead of FastAPI's; hands every other shape to it."""

    def __init__(self, node: Node, router: ASGIApp) -> None:
        super().__init__(KEY, ["GET", "PUT"], router)
        self.node = node

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = single_headers(scope, _SINGLE)
        branch = branch_query(scope["query_string"])
        if headers is None or branch is None:
            return await self.hand_back(scope, receive, send)
        db, key = scope["path_params"]["db"], scope["path_params"]["key"]
        if scope["method"] == "GET":
            ours, min_txid = _min_txid(headers.get(b"memoturn-min-txid"))
            if not ours:
                return await self.hand_back(scope, receive, send)
            response = await self._get(db, key, branch, min_txid, headers.get(b"memoturn-read"))
            return await response(scope, receive, send)
        if headers.get(b"content-type") != b"application/json":
            return await self.hand_back(scope, receive, send)
        body = await read_body(receive)
        parsed = _put_body(body) if body else None
        if parsed is None:
            return await self.hand_back(scope, replay(body, receive), send)
        durability = headers.get(b"memoturn-durability")
        response = await self._put(
            db, key, branch, parsed, None if durability is None else durability.decode("latin-1")
        )
        return await response(scope, receive, send)

    async def _get(self, db: str, key: str, branch: str, min_txid: int | None, read: bytes | None) -> Response:
        item, txid, served_by = await read_item(
            self.node, db, key, branch, min_txid, None if read is None else read.decode("latin-1")
        )
        return Response(
            _ITEM.dump_json(item, by_alias=True),
            media_type="application/json",
            headers={"Memoturn-Served-By": served_by, "Memoturn-Txid": str(txid)},
        )

    async def _put(
        self, db: str, key: str, branch: str, parsed: tuple[Any, float | None], durability: str | None
    ) -> Response:
        # As kv.kv_put, in the same order: key, value, header, then the write in a thread.
        value, ttl = parsed
        node = self.node
        kv.check_key(key)
        text = kv.encode_value(value, node.settings.max_value_bytes)
        wait = durable(durability)
        _, txid = await run_in_threadpool(
            node.write, db, lambda c: kv.put(c, key, text, ttl), branch=branch, durable=wait
        )
        return Response(
            _WRITTEN.dump_json(KVWritten(key=key, txid=txid), by_alias=True),
            media_type="application/json",
            headers={"Memoturn-Txid": str(txid)},
        )


def install(routes: list[BaseRoute], node: Node, router: ASGIApp) -> None:
    """Put the hot route first in ``routes`` (the app's), unless ``MEMOTURN_HOT_ROUTES`` is off."""
    if node.settings.hot_routes:
        routes.insert(0, HotKVRoute(node, router))
