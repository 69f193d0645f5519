"""``memoturn-gateway``: a stateless router in front of the nodes.

For a request addressed to a database (``/v1/databases/{db}/…``, branch from ``?branch=``)
the gateway picks the owner from its :class:`~memoturn.cluster.placement.Placement` cache (or the
rendezvous choice when the branch has no owner), forwards the request and streams the
answer back. Requests not addressed to one database go to any live node.

Retries are the gateway's alone (its HTTP client never resends anything by itself). With
bounded attempts and exponential backoff, a request goes again — to the next choice — only
when it provably did not run:

* it never reached a node: the connection was refused or timed out while connecting, so
  not one byte of it was written (the node is skipped for this request);
* the node answered a typed refusal, ``409 not-owner``, ``409 fenced`` or ``503 lease-lost``,
  that carries no txid (the owner is re-read from etcd and the request goes there). A
  ``lease-lost`` with a txid is a commit whose outcome is unknown: it goes back as it is.

A request that may have reached a node and got no whole answer (connection reset or closed
after sending, read timeout) is never resent if it is a write (anything but ``GET``/``HEAD``):
the answer is ``502`` (connection lost) or ``504`` (no answer in time) with the problem type
``outcome-unknown`` — the write may have been applied; the client reads back before it
retries. ``GET``/``HEAD`` are safe, so a lost connection is retried for them; a read timeout
is answered ``504`` for every method. ``503 no-route`` therefore always means "not applied
anywhere": every attempt was refused or never connected.

Any other answer, success or error, goes back to the client as it is, with its
``Memoturn-Txid``. Request bodies are buffered (they must be replayable for a retry, and
are bounded by ``max_body_bytes``); a response body up to ``BUFFER_BYTES`` is sent with
its length, a larger one (or one of unknown length) streams.

The client side is :mod:`memoturn.cluster.node_client`: keep-alive HTTP/1.1 connections per
node and nothing more, since the gateway's cost per request is most of what it adds (httpx's
pool bookkeeping, then aiohttp's client, were each the largest part of it). It never resends
anything by itself, and it tells "not sent" from "sent, no whole answer". Idle connections
are dropped after ``KEEPALIVE_SECONDS``, before the nodes' own keep-alive timeout (uvicorn's
5 s), so a request is not written to a connection the node is closing at that moment.

TLS (``memoturn.tls``, docs/security.md): the gateway serves HTTPS when given a certificate and
key; nodes advertised as ``https://`` are verified against ``--node-ca-file`` (and
``--node-tls-server-name``, the name their certificate carries when they are reached by IP). A
node whose certificate fails verification counts as unreachable: nothing was sent to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import ssl
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import dashboard
from ..backoff import next_delay
from ..config import GatewaySettings, settings_error
from ..cors import add_cors, parse_origins
from ..errors import BadRequest
from ..metrics import GatewayMetrics
from ..names import profile_database
from ..serving import serve
from ..tls import TLSError, client_context, server_files
from .etcd_client import EtcdClient
from .node_client import ConnectionLost, NodeClient, NodeResponse, NotSent
from .placement import Placement

log = logging.getLogger("memoturn.gateway")
_DB_PATH = re.compile(r"^/v1/databases/([^/]+)(?:/|$)")
_BRANCH_PATH = re.compile(r"^/v1/databases/[^/]+/branches/([^/]+)/")
_PROFILE_PATH = re.compile(r"^/v1/namespaces/([^/]+)/profiles/([^/]+)(?:/|$)")
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}
_NOT_FORWARDED = _HOP_HEADERS | {"expect"}  # the gateway has read the whole body already
_RETRYABLE = {"not-owner", "lease-lost", "fenced"}
_SAFE_METHODS = frozenset({"GET", "HEAD"})
BUFFER_BYTES = 1024**2
KEEPALIVE_SECONDS = 4.0  # below the nodes' idle timeout (uvicorn's default 5 s)


def _profile_database(namespace: str, profile: str) -> str | None:
    """The profile's database, or None for invalid names: any node answers those with the 400."""
    try:
        return profile_database(namespace, profile)
    except BadRequest:
        return None


def _problem(status: int, type_: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": type_, "title": "Gateway error", "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


class Gateway:
    def __init__(
        self,
        placement: Placement,
        *,
        attempts: int = 8,
        backoff: float = 0.05,
        max_backoff: float = 1.0,
        max_body_bytes: int = 16 * 1024**2,
        timeout: float = 60.0,
        replicas: int = 1,
        node_ssl: ssl.SSLContext | None = None,
        node_server_name: str | None = None,
    ) -> None:
        self.replicas = replicas
        self.node_ssl = node_ssl  # verifies nodes advertised as https:// (None: the system's CAs)
        self.node_server_name = node_server_name  # the name their certificates carry, if not the URL's host
        self.placement = placement
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout
        self.client = NodeClient(
            ssl_context=node_ssl, server_hostname=node_server_name, connect_timeout=2.0, keepalive=KEEPALIVE_SECONDS
        )
        self._refreshing: set[str] = set()
        self.retries = 0
        self.metrics = GatewayMetrics()

    async def close(self) -> None:
        await self.client.close()

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        if path == "/v1/gateway/health":
            return JSONResponse({"status": "ok", "nodes": len(self.placement.live_nodes())})
        if path == "/v1/cluster/nodes":
            return JSONResponse({"nodes": list(self.placement.live_nodes().values())})
        m = _DB_PATH.match(path)
        p = _PROFILE_PATH.match(path)
        db = m.group(1) if m else (_profile_database(p.group(1), p.group(2)) if p else None)
        b = _BRANCH_PATH.match(path)
        branch = b.group(1) if b else request.query_params.get("branch", "main")
        key = f"{db}/{branch}" if db else None
        if path.startswith("/v1/cluster/placement/") and m is None:
            db = path.rsplit("/", 1)[-1]
            k = f"{db}/{request.query_params.get('branch', 'main')}"
            owner = self.placement.owner(k)
            return JSONResponse(
                {
                    "key": k,
                    "owner": owner,
                    "route": self.placement.route(k),
                    "replicas": self.placement.replicas(k, owner, self.replicas),
                }
            )
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_body_bytes:
            return _problem(
                413, "payload-too-large", f"request body is {length} bytes; the limit is {self.max_body_bytes}"
            )
        chunks, size = [], 0
        async for chunk in request.stream():  # counted as received: a chunked body has no Content-Length
            size += len(chunk)
            if size > self.max_body_bytes:
                return _problem(
                    413, "payload-too-large", f"request body exceeds the limit of {self.max_body_bytes} bytes"
                )
            chunks.append(chunk)
        body = b"".join(chunks)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED]
        excluded: set[str] = set()
        delay: float | None = None
        last_problem = "no live node"
        replica = key is not None and request.method == "GET" and request.headers.get("memoturn-read") == "replica"
        for _attempt in range(self.attempts):
            node = self._replica_node(key) if replica else None
            node = node or self.placement.route(key, excluded)
            if node is None:
                excluded.clear()  # every node failed once: start over after a pause
                last_problem = "no live node to route to"
            else:
                query = request.url.query
                raw_path = (request.scope.get("raw_path") or path.encode()).decode("latin-1")
                target = raw_path.split("?", 1)[0] + (f"?{query}" if query else "")  # as the client sent them
                deadline = time.monotonic() + self.timeout
                try:
                    resp = await self.client.request(node["url"], request.method, target, headers, body, self.timeout)
                    retry_type = await self._retryable(resp, replica)
                    if replica and retry_type == "min-txid-not-reached":
                        # The replica is behind what the client saw: ask the primary, now.
                        replica = False
                        headers = [(k, v) for k, v in headers if k.lower() != "memoturn-read"]
                        continue
                    if retry_type is None:
                        return await _relay(resp, deadline)
                    last_problem = f"node {node['id']} answered {retry_type}"
                except NotSent as exc:  # never reached the node: safe to retry elsewhere
                    excluded.add(node["id"])
                    last_problem = f"node {node['id']} unreachable: {exc}"
                    self._refresh_soon(key)
                except (TimeoutError, ConnectionLost) as exc:  # may have run
                    # A silent or vanished owner: ask etcd who owns it now rather than wait for
                    # the watch, which is the one thing that could be stale.
                    self._refresh_soon(key)
                    if request.method not in _SAFE_METHODS or isinstance(exc, asyncio.TimeoutError):
                        return _outcome_unknown(request.method, node["id"], exc)
                    last_problem = f"node {node['id']} lost the connection: {exc!r}"
                else:
                    if key:
                        await asyncio.get_running_loop().run_in_executor(None, self._refresh, key)
            self.retries += 1
            self.metrics.retries.inc()
            delay = next_delay(delay, first=self.backoff, cap=self.max_backoff)
            await asyncio.sleep(delay)
        self.metrics.no_route.inc()
        return _problem(503, "no-route", f"gave up after {self.attempts} attempts: {last_problem}")

    def _replica_node(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            return None
        ranked = self.placement.replicas(key, self.placement.owner(key), 1)
        return ranked[0] if ranked else None

    def _refresh_soon(self, key: str | None) -> None:
        """:meth:`_refresh` in the background (the answer to this request does not wait for etcd)."""
        if key and key not in self._refreshing:  # one refresh per key in flight
            self._refreshing.add(key)
            future = asyncio.get_running_loop().run_in_executor(None, self._refresh, key)
            future.add_done_callback(lambda _: self._refreshing.discard(key))

    def _refresh(self, key: str) -> None:
        try:
            self.placement.refresh_owner(key)
        except Exception as exc:  # noqa: BLE001 - the watch will catch up
            log.debug("owner refresh for %s failed: %s", key, exc)

    @staticmethod
    async def _retryable(resp: NodeResponse, replica: bool) -> str | None:
        """The problem type if the node provably did not run the request (the body is then read).

        A refusal that names a txid (``lease-lost`` after a commit) is not one: that commit
        may stand.
        """
        if resp.status not in (409, 412, 503) or not (resp.header("content-type") or "").startswith(
            "application/problem+json"
        ):
            return None
        data = await resp.read()
        try:
            problem = json.loads(data or b"{}")
            type_ = problem.get("type")
        except (ValueError, AttributeError):
            return None
        if not isinstance(type_, str):
            return None
        if "txid" in problem or resp.header("memoturn-txid") is not None:
            return None
        if type_ in _RETRYABLE or (replica and resp.status == 412 and type_ == "min-txid-not-reached"):
            resp.release()
            return type_
        return None


def _outcome_unknown(method: str, node: str, exc: BaseException) -> JSONResponse:
    """The request may have run on ``node``: say so, and do not send it anywhere else."""
    timed_out = isinstance(exc, asyncio.TimeoutError)
    status, what = (504, "no answer in time") if timed_out else (502, f"connection lost: {exc!r}")
    log.warning("%s to node %s: %s; outcome unknown, not retried", method, node, what)
    return _problem(
        status,
        "outcome-unknown",
        f"node {node} may have received the {method} and gave no complete "
        f"answer ({what}); it may have been applied: read it back before retrying",
    )


async def _relay(resp: NodeResponse, deadline: float) -> Response:
    """The node's answer as it is: buffered when small (sent with its length), streamed otherwise."""
    headers = [(k, v) for k, v in resp.raw_headers if k.decode("latin-1") not in _HOP_HEADERS]
    length = resp.content_length
    if length is not None and length <= BUFFER_BYTES:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
                data = await resp.read()
        finally:
            resp.release()
        return _raw(Response(data, status_code=resp.status), headers)

    async def chunks() -> Any:
        try:
            async for chunk in resp.iter_chunks():
                yield chunk
        finally:
            resp.release()

    return _raw(StreamingResponse(chunks(), status_code=resp.status, background=BackgroundTask(resp.release)), headers)


def _raw(response: Response, headers: list[tuple[bytes, bytes]]) -> Response:
    """``response`` with the node's headers as they came (repeated ones kept), after its own length."""
    response.raw_headers = [(k, v) for k, v in response.raw_headers if k == b"content-length"] + headers
    return response


def create_gateway_app(gateway: Gateway, cors_origins: list[str] | None = None) -> Starlette:
    metrics = gateway.metrics

    async def endpoint(request: Request) -> Response:
        t0 = time.perf_counter()
        response = await gateway.handle(request)
        metrics.requests.labels(request.method, str(response.status_code)).observe(time.perf_counter() - t0)
        return response

    async def metrics_endpoint(request: Request) -> Response:
        metrics.live_nodes.set(len(gateway.placement.live_nodes()))
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await gateway.close()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    # The dashboard's files are the gateway's own; its API calls are routed like any other.
    routes = [
        *dashboard.routes(),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/{path:path}", endpoint, methods=methods),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    add_cors(app, cors_origins or [])  # preflights answered here, not forwarded
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="memoturn-gateway", description="Memoturn gateway (stateless router)")
    for name, field in GatewaySettings.model_fields.items():
        flag = str(GatewaySettings.field_extra(name, "flag"))
        default = "" if field.default is None else f"default {field.default}, "
        parser.add_argument(
            flag,
            dest=name,
            metavar=flag.lstrip("-").upper(),
            type=int if field.annotation is int else str,
            help=f"{str(field.description).replace('`', '')} ({default}env {GatewaySettings.env_names(name)[0]})",
        )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    try:
        settings = GatewaySettings.from_env(**{name: getattr(args, name) for name in GatewaySettings.model_fields})
    except ValidationError as exc:
        print(f"memoturn-gateway: invalid setting: {settings_error(exc, GatewaySettings)}", file=sys.stderr)
        return 2
    if not settings.etcd_endpoints:
        print("memoturn-gateway: set --etcd or MEMOTURN_ETCD_ENDPOINTS (HOST:PORT)", file=sys.stderr)
        return 2
    host, port = settings.listen_address
    logging.basicConfig(level=args.log_level.upper())
    try:
        tls = server_files(settings.tls_cert_file, settings.tls_key_file)
        if tls is not None:
            tls.context()  # unreadable or mismatched files stop the start, in one line
        node_ssl = client_context(settings.node_ca_file)
    except TLSError as exc:
        print(f"memoturn-gateway: {exc}", file=sys.stderr)
        return 2
    try:
        etcd = EtcdClient(settings.etcd_endpoints)
    except ValueError as exc:
        print(f"memoturn-gateway: {exc}", file=sys.stderr)
        return 2
    placement = Placement(etcd, settings.etcd_prefix).start()
    gateway = Gateway(
        placement,
        attempts=settings.gateway_attempts,
        node_ssl=node_ssl,
        node_server_name=settings.node_tls_server_name,
    )
    print(
        f"memoturn-gateway listening on {'https' if tls else 'http'}://{settings.gateway_listen} "
        f"(etcd {settings.etcd_endpoints}, {len(placement.live_nodes())} live nodes)",
        flush=True,
    )
    serve(
        create_gateway_app(gateway, parse_origins(settings.cors_origins)),
        host,
        port,
        tls,
        settings.http_server,
        log_level=args.log_level,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
