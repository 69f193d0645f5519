"""Latency of every request that reaches the app, by method, route template and status.

Requests refused before it (a declared body over the limit, a refused token) are not measured.
A status that an outer middleware sends in place of the app's (see
:data:`.body_limit.REPLACED_STATUS`) is recorded as sent.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...metrics import NodeMetrics
from .body_limit import REPLACED_STATUS


class RequestMetrics:
    """ASGI middleware: observe each HTTP request in ``metrics.requests``."""

    def __init__(self, app: ASGIApp, metrics: NodeMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            code = scope.get(REPLACED_STATUS) or status
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], path, str(code)).observe(time.perf_counter() - start)
