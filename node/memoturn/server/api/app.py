"""The ``memoturnd`` HTTP API over a :class:`memoturn.server.node.Node`: its routers and middleware, assembled.

Every response that reads or writes a database carries ``Memoturn-Txid``. Reads honour
``Memoturn-Min-Txid``; writes honour ``Memoturn-Durability: standard|durable``. Routes live in
one router per surface and reach the node through ``app.state`` (see :mod:`.params`); route
handlers are plain functions that FastAPI runs in its thread pool, and the node serialises per
database.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from ... import dashboard
from ...cors import add_cors, parse_origins
from ..auth import DOCS_ASSETS
from ..node import Node
from . import (
    admin,
    branching,
    data,
    databases,
    hot_kv,
    hot_memory,
    internal,
    kv,
    memory,
    ops,
    problems,
    relationships,
    replica,
    sql,
    status,
)
from .authenticate import Authenticate
from .body_limit import BodyLimit
from .request_metrics import RequestMetrics
from .strict import StrictRoute

ROUTERS = (
    ops,
    status,
    databases,
    kv,
    internal,
    sql,
    memory,
    relationships,
    replica,
    data,
    branching,
    admin,
)  # in matching order


def create_app(node: Node, *, manage_lifecycle: bool = True) -> FastAPI:
    """The API app of ``node``; with ``manage_lifecycle`` it starts and stops the node too."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle and not node.started:
            node.start()
        yield
        if manage_lifecycle:
            shipped = node.stop()
            left = node.shipper.unshipped_txids
            print(
                f"memoturnd {node.settings.node_id}: stopped; "
                + (
                    "every committed txid is in object storage"
                    if shipped and not left
                    else f"{left} committed txids could not be shipped"
                ),
                file=sys.stderr,
                flush=True,
            )

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from assets installed with the
    # project (under DOCS_ASSETS), so they work on a machine without internet.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="Memoturn node API",
        version="0.1.0",
        description="memoturnd: databases, KV and SQL over libSQL files shipped to object storage.",
        lifespan=lifespan,
    )
    app.router.route_class = StrictRoute  # every route: strict JSON, no NUL in path or query
    app.state.node = node
    app.state.profiles = memory.Profiles(node)
    problems.install(app)
    for surface in ROUTERS:
        app.include_router(surface.router)
    app.router.routes.extend(dashboard.routes())  # the web dashboard at /ui/ (docs/dashboard.md)
    # KV GET/PUT and adding a memory ahead of FastAPI (same answers, docs in .hot)
    hot_kv.install(app.router.routes, node, app.router)
    hot_memory.install(app.router.routes, app.state.profiles, app.router)
    # Added innermost first: a request meets the body limit, then authentication, then is measured.
    app.add_middleware(RequestMetrics, metrics=node.metrics)
    app.add_middleware(Authenticate, auth=node.auth)
    app.add_middleware(BodyLimit, limit=node.settings.max_body_bytes)
    add_cors(app, parse_origins(node.settings.cors_origins))  # outermost: a preflight needs no token
    return app
