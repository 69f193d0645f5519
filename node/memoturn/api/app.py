"""Routes of the ``memoturnd`` HTTP API over a :class:`memoturn.node.Node`.

Every response that reads or writes a database carries ``Memoturn-Txid``. Reads honour
``Memoturn-Min-Txid``; writes honour ``Memoturn-Durability: standard|durable``. Route
handlers are plain functions: FastAPI runs them in its thread pool, and the node serialises
per database.
"""

from __future__ import annotations

import sys
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from .. import kv
from ..errors import BadRequest, MemoturnError, NotFound
from ..names import DEFAULT_BRANCH
from ..node import Node
from . import problems
from .models import (
    CreateDatabase,
    DatabaseInfo,
    DatabaseList,
    Health,
    KVDeleted,
    KVItem,
    KVList,
    KVPut,
    KVWritten,
    Problem,
    SQLRequest,
    SQLResponse,
    TokenRequest,
)
from .strict import StrictRoute

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 404, 409, 412, 413, 422, 503)
}
Branch = Annotated[str, Query(description="Branch of the database")]
MinTxid = Annotated[int | None, Header(alias="Memoturn-Min-Txid", ge=0)]
ReadFrom = Annotated[
    str | None,
    Header(
        alias="Memoturn-Read", description="'primary' (default, strong) or 'replica' (bounded-stale, says its txid)"
    ),
]


def _replica(value: str | None) -> bool:
    if value is None or value == "primary":
        return False
    if value != "replica":
        raise BadRequest("Memoturn-Read must be 'primary' or 'replica'", type="invalid-header")
    return True


DurabilityHeader = Annotated[str | None, Header(alias="Memoturn-Durability")]


def _durable(value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("standard", "durable"):
        raise BadRequest("Memoturn-Durability must be 'standard' or 'durable'", type="invalid-header")
    return value == "durable"


def _txid(response: Response, txid: int) -> None:
    response.headers["Memoturn-Txid"] = str(txid)


class BodyLimit:
    """Refuse request bodies larger than the limit (HTTP 413), counting the bytes that arrive.

    A declared Content-Length over the limit is refused before anything is read. A body without
    one (chunked) or longer than it says is counted as it is received: past the limit the app is
    told the client left, its answer is dropped and the 413 goes out instead (if the app had
    already started its response, the response just stops).
    """

    def __init__(self, app: Any, limit: int, metrics: Any, auth: Any) -> None:
        self.app, self.limit, self.metrics, self.auth = app, limit, metrics, auth

    def _too_large(self, size: int | None) -> JSONResponse:
        detail = (
            f"request body is {size} bytes; the limit is {self.limit}"
            if size is not None
            else f"request body is larger than the limit of {self.limit} bytes"
        )
        return problems.problem(413, "payload-too-large", "Payload too large", detail)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                resp = self._too_large(int(value))
                return await resp(scope, receive, send)
        if self.auth.enabled:
            authorization = next(
                (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"authorization"), None
            )
            try:
                self.auth.authorize(scope["path"], authorization)
            except MemoturnError as exc:
                resp = problems.problem(
                    exc.status,
                    exc.type,
                    exc.title,
                    exc.detail,
                    {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None,
                )
                return await resp(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}
        body = {"received": 0, "over": False, "started": False}

        async def _receive() -> dict:
            if body["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                body["received"] += len(message.get("body", b""))
                if body["received"] > self.limit:
                    body["over"] = True
                    return {"type": "http.disconnect"}
            return message

        async def _send(message: dict) -> None:
            if body["over"] and not body["started"]:
                return  # the app's answer to a body it never fully got: the 413 replaces it
            if message["type"] == "http.response.start":
                body["started"] = True
                status["code"] = message["status"]
            await send(message)

        try:
            try:
                await self.app(scope, _receive, _send)
            except Exception:
                if not body["over"]:
                    raise
            if body["over"] and not body["started"]:
                status["code"] = 413
                await self._too_large(None)(scope, receive, send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], path, str(status["code"])).observe(
                time.perf_counter() - start
            )


def create_app(node: Node, *, manage_lifecycle: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if manage_lifecycle and not node.started:
            node.start()
        yield
        if manage_lifecycle:
            shipped = node.stop()
            left = node.shipper.unshipped_txids
            print(
                f"memoturnd {settings.node_id}: stopped; "
                + (
                    "every committed txid is in object storage"
                    if shipped and not left
                    else f"{left} committed txids could not be shipped"
                ),
                file=sys.stderr,
                flush=True,
            )

    app = FastAPI(
        title="Memoturn node API",
        version="0.1.0",
        description="memoturnd: databases, KV and SQL over libSQL files shipped to object storage.",
        lifespan=lifespan,
    )
    app.router.route_class = StrictRoute  # every route: strict JSON, no NUL in path or query
    problems.install(app)
    settings = node.settings

    @app.get("/v1/health", response_model=Health, tags=["ops"])
    def health() -> Health:
        return Health(status="ok", node_id=settings.node_id)

    @app.get("/v1/ready", response_model=Health, responses={503: {"model": Health}}, tags=["ops"])
    def ready() -> Any:
        ok, detail = node.ready()
        body = Health(status="ok" if ok else "unavailable", detail=detail, node_id=settings.node_id)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(node.metrics.render(), media_type="text/plain; version=0.0.4")

    # -- databases ------------------------------------------------------------------------

    @app.post("/v1/databases", status_code=201, response_model=DatabaseInfo, responses=ERRORS, tags=["databases"])
    def create_database(body: CreateDatabase, response: Response) -> DatabaseInfo:
        node.create_database(body.name)
        _txid(response, 0)
        return DatabaseInfo(**node.describe(body.name))

    @app.get("/v1/databases", response_model=DatabaseList, responses=ERRORS, tags=["databases"])
    def list_databases(limit: Annotated[int, Query(ge=1, le=1000)] = 100, cursor: str | None = None) -> DatabaseList:
        names, nxt = node.list_databases(limit=limit, cursor=cursor)
        return DatabaseList(databases=names, next_cursor=nxt)

    @app.get("/v1/databases/{db}", response_model=DatabaseInfo, responses=ERRORS, tags=["databases"])
    def get_database(db: str, response: Response, branch: Branch = DEFAULT_BRANCH) -> DatabaseInfo:
        info = node.describe(db, branch)
        _txid(response, info["head_txid"])
        return DatabaseInfo(**info)

    @app.delete("/v1/databases/{db}", status_code=204, responses=ERRORS, tags=["databases"])
    def delete_database(db: str) -> Response:
        node.delete_database(db)
        return Response(status_code=204)

    # -- KV -------------------------------------------------------------------------------

    @app.put("/v1/databases/{db}/kv/{key:path}", response_model=KVWritten, responses=ERRORS, tags=["kv"])
    def kv_put(
        db: str,
        key: str,
        body: KVPut,
        response: Response,
        branch: Branch = DEFAULT_BRANCH,
        durability: DurabilityHeader = None,
    ) -> KVWritten:
        kv.check_key(key)
        text = kv.encode_value(body.value, settings.max_value_bytes)
        _, txid = node.write(
            db, lambda c: kv.put(c, key, text, body.ttl_seconds), branch=branch, durable=_durable(durability)
        )
        _txid(response, txid)
        return KVWritten(key=key, txid=txid)

    @app.get("/v1/databases/{db}/kv/{key:path}", response_model=KVItem, responses=ERRORS, tags=["kv"])
    async def kv_get(
        db: str,
        key: str,
        response: Response,
        branch: Branch = DEFAULT_BRANCH,
        min_txid: MinTxid = None,
        read_from: ReadFrom = None,
    ) -> KVItem:
        # async: a hit in the hot handle's KV cache is answered on the event loop (no thread
        # hand-off, the largest cost of a cached read); anything that may do I/O runs in a thread.
        kv.check_key(key)
        replica = _replica(read_from)
        if replica and node.serves_replica(db, branch):
            item, txid = await run_in_threadpool(
                node.read, db, lambda c: kv.get(c, key), branch=branch, min_txid=min_txid, replica=True
            )
        elif (hit := node.kv_cached(db, key, branch=branch, min_txid=min_txid)) is not None:
            item, txid = hit
        else:
            item, txid = await run_in_threadpool(node.kv_get, db, key, branch=branch, min_txid=min_txid)
        _served_by(response, db, branch, replica)
        if item is None:
            raise NotFound(f"key {key!r} not found in {db}", type="key-not-found", txid=txid)
        _txid(response, txid)
        return KVItem(**item)

    @app.delete("/v1/databases/{db}/kv/{key:path}", response_model=KVDeleted, responses=ERRORS, tags=["kv"])
    def kv_delete(
        db: str, key: str, response: Response, branch: Branch = DEFAULT_BRANCH, durability: DurabilityHeader = None
    ) -> KVDeleted:
        kv.check_key(key)
        existed, txid = node.write(db, lambda c: kv.delete(c, key), branch=branch, durable=_durable(durability))
        _txid(response, txid)
        return KVDeleted(key=key, deleted=existed, txid=txid)

    @app.get("/v1/databases/{db}/kv", response_model=KVList, responses=ERRORS, tags=["kv"])
    def kv_list(
        db: str,
        response: Response,
        prefix: str = "",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
        values: bool = True,
        branch: Branch = DEFAULT_BRANCH,
        min_txid: MinTxid = None,
        read_from: ReadFrom = None,
    ) -> KVList:
        replica = _replica(read_from)
        items, txid = node.read(
            db,
            lambda c: kv.list_keys(c, prefix, limit + 1, cursor, values),
            branch=branch,
            min_txid=min_txid,
            replica=replica,
        )
        _served_by(response, db, branch, replica)
        nxt = items[limit - 1]["key"] if len(items) > limit else None
        _txid(response, txid)
        return KVList(items=[KVItem(**i) for i in items[:limit]], next_cursor=nxt)

    def _served_by(response: Response, db: str, branch: str, replica: bool) -> None:
        response.headers["Memoturn-Served-By"] = "replica" if replica and node.serves_replica(db, branch) else "primary"

    @app.get("/internal/v1/replicas/{db}", tags=["internal"], responses=ERRORS)
    def replica_state(db: str, branch: Branch = DEFAULT_BRANCH) -> dict:
        """This node's replica copy of a branch (head txid), for replica-lag reporting."""
        state = node.replicas.describe(db, branch)
        if state is None:
            raise NotFound(f"this node holds no replica of {db}/{branch}", type="no-replica")
        return state

    @app.post("/internal/v1/replicate/{db}", tags=["internal"], responses=ERRORS)
    async def replicate(db: str, request: Request, branch: Branch = DEFAULT_BRANCH) -> dict:
        """Node to node: apply one streamed segment to this node's replica copy."""
        data = await request.body()
        head = request.headers.get("Memoturn-Head-Txid")
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(
            node.replicas.apply, db, branch, data, int(head) if head and head.isdigit() else None
        )

    # -- SQL ------------------------------------------------------------------------------

    @app.post(
        "/v1/databases/{db}/sql", response_model=SQLResponse, responses={**ERRORS, 403: ERRORS[400]}, tags=["sql"]
    )
    def sql(
        db: str,
        body: SQLRequest,
        response: Response,
        branch: Branch = DEFAULT_BRANCH,
        durability: DurabilityHeader = None,
        min_txid: MinTxid = None,
    ) -> SQLResponse:
        statements = [(s.sql, s.params) for s in body.statements]
        durable = _durable(durability)
        if min_txid is not None:
            node.read(db, lambda c: None, branch=branch, min_txid=min_txid)
        results, txid = node.sql(db, statements, branch=branch, durable=durable, transaction=body.transaction)
        _txid(response, txid)
        return SQLResponse(results=results, txid=txid)

    from . import branching, data, memory

    memory.install(app, node, settings.embedder, settings.embedding_url, settings.embedding_api_key)
    data.install(app, node)
    branching.install(app, node)

    @app.post("/v1/admin/tokens", status_code=201, responses=ERRORS, tags=["admin"])
    def mint_token(body: TokenRequest) -> dict:
        """Mint a token for one namespace (admin only), optionally expiring. The token is shown once."""
        return node.auth.mint(body.namespace, ttl_seconds=body.ttl_seconds, expires_at=body.expires_at)

    @app.delete("/v1/admin/tokens/{token_sha256}", status_code=204, responses=ERRORS, tags=["admin"])
    def revoke_token(token_sha256: str) -> Response:
        node.auth.revoke(token_sha256)
        return Response(status_code=204)

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, metrics=node.metrics, auth=node.auth)
    return app
