"""The two hottest routes, ``GET`` and ``PUT /v1/databases/{db}/kv/{key}``, without FastAPI's per-request work.

A profile of the node under the throughput benchmark's KV phases put about half of a request's
CPU in FastAPI's routing, dependency solving and validation, against a few percent in the
route's own work. :class:`HotKVRoute` answers the common shape of these two requests as a plain
Starlette route placed ahead of the FastAPI ones. It runs the same code as :mod:`.kv` (key and
value checks, the node's cache, read and write, the ``Memoturn-*`` headers) and serializes the
same response models with the same serializer, so the answers are the same bytes. One thing
differs inside: a ``GET`` that misses the cache is read on the event loop when the branch is hot,
owned and its lock free (:meth:`Node.kv_get_nowait`), since the thread hand-off cost more than
that local read; else in a thread, as before.

It takes only requests whose every part it can read exactly as FastAPI would: no query
parameter but ``branch`` (once), ``Memoturn-Min-Txid`` as plain decimal digits, each
``Memoturn-*`` header at most once, no NUL in the path or the query, and for ``PUT`` an
``application/json`` body that is an object of ``value`` and an optional finite, positive,
non-integer ``ttl_seconds``. Anything else (a malformed body, an unknown field, a header to
reject) goes, unread or replayed, to the FastAPI route, whose answers (the 4xx problem bodies
included) are therefore unchanged. The FastAPI routes stay registered, so the OpenAPI document
still describes both operations. Errors raised here are domain errors that the app's exception
handlers turn into problem bodies, as for every route; authentication and the body limit are
middleware and apply first. ``MEMOTURN_HOT_ROUTES=0`` turns this off (for A/B measurements and
for the equivalence test).
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qsl

from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...data import kv
from ...names import DEFAULT_BRANCH
from ..node import Node
from .kv import KEY, read_item
from .models import KVItem, KVWritten
from .params import durable
from .strict import loads

_ITEM = TypeAdapter(KVItem)  # FastAPI's serializer for a response_model: TypeAdapter.dump_json
_WRITTEN = TypeAdapter(KVWritten)
_SINGLE = (b"memoturn-min-txid", b"memoturn-read", b"memoturn-durability", b"content-type")
_PUT_FIELDS = frozenset({"value", "ttl_seconds"})
_SKIP = "memoturn.hot_kv.skip"  # set on a request handed back to the router: the FastAPI route takes it


def _headers(scope: Scope) -> dict[bytes, bytes] | None:
    """The ``Memoturn-*`` and content-type headers, or None if one of them comes twice."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _SINGLE:
            if name in found:
                return None
            found[name] = value
    return found


def _branch(query: bytes) -> str | None:
    """The ``branch`` query parameter (main without one), or None for any other query."""
    if not query:
        return DEFAULT_BRANCH
    if b"\x00" in query or b"%00" in query:
        return None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)  # as starlette's QueryParams
    if len(pairs) != 1 or pairs[0][0] != "branch" or "\x00" in pairs[0][1]:
        return None
    return pairs[0][1]


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


class HotKVRoute(Route):
    """``GET``/``PUT`` of one KV item, ahead of FastAPI's; hands every other shape to it."""

    def __init__(self, node: Node, router: ASGIApp) -> None:
        super().__init__(KEY, self._serve, methods=["GET", "PUT"], include_in_schema=False)
        self.node = node
        self.router = router  # the app's router: where a request goes back when it is not ours
        self.app = self._serve  # an ASGI app, not a request/response endpoint

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(_SKIP) or scope["type"] != "http" or scope["method"] not in ("GET", "PUT"):
            return Match.NONE, {}
        match, child = super().matches(scope)
        if match is not Match.FULL:
            return Match.NONE, {}
        params = child["path_params"]
        if "\x00" in params["db"] or "\x00" in params["key"]:
            return Match.NONE, {}
        child["route"] = self  # the request metrics' label: the same template as FastAPI's route
        return match, child

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        branch = _branch(scope["query_string"])
        if headers is None or branch is None:
            return await self._hand_back(scope, receive, send)
        db, key = scope["path_params"]["db"], scope["path_params"]["key"]
        if scope["method"] == "GET":
            ours, min_txid = _min_txid(headers.get(b"memoturn-min-txid"))
            if not ours:
                return await self._hand_back(scope, receive, send)
            response = await self._get(db, key, branch, min_txid, headers.get(b"memoturn-read"))
            return await response(scope, receive, send)
        if headers.get(b"content-type") != b"application/json":
            return await self._hand_back(scope, receive, send)
        body = await _read_body(receive)
        parsed = _put_body(body) if body else None
        if parsed is None:
            return await self._hand_back(scope, _replay(body, receive), send)
        durability = headers.get(b"memoturn-durability")
        response = await self._put(
            db, key, branch, parsed, None if durability is None else durability.decode("latin-1")
        )
        return await response(scope, receive, send)

    async def _hand_back(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_SKIP] = True
        await self.router(scope, receive, send)

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


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # a disconnect: what came so far (FastAPI's route meets the same end)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives ``body`` once more, then what the connection says next."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def install(routes: list[BaseRoute], node: Node, router: ASGIApp) -> None:
    """Put the hot route first in ``routes`` (the app's), unless ``MEMOTURN_HOT_ROUTES`` is off."""
    if node.settings.hot_routes:
        routes.insert(0, HotKVRoute(node, router))
