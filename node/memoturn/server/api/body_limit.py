"""Refuse request bodies larger than the limit (HTTP 413), counting the bytes that arrive.

A declared Content-Length over the limit is refused before anything else looks at the request.
A body without one (chunked) or longer than it says is counted as it is received: past the limit
the app is told the client left, its answer is dropped and the 413 goes out instead (if the app
had already started its response, the response just stops).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import problems

# Set in the request's scope once this middleware will answer 413 in place of the app, so the
# request metrics (measured inside it) record the status the client gets.
REPLACED_STATUS = "memoturn.replaced_status"


class BodyLimit:
    """ASGI middleware: at most ``limit`` bytes of request body."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    def _too_large(self, size: int | None) -> JSONResponse:
        detail = (
            f"request body is {size} bytes; the limit is {self.limit}"
            if size is not None
            else f"request body is larger than the limit of {self.limit} bytes"
        )
        return problems.problem(413, "payload-too-large", "Payload too large", detail)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await self._too_large(int(value))(scope, receive, send)
        state: dict[str, Any] = {"received": 0, "over": False, "started": False}

        async def _receive() -> Message:
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.limit:
                    state["over"] = True
                    if not state["started"]:
                        scope[REPLACED_STATUS] = 413
                    return {"type": "http.disconnect"}
            return message

        async def _send(message: Message) -> None:
            if state["over"] and not state["started"]:
                return  # the app's answer to a body it never fully got: the 413 replaces it
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, _receive, _send)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await self._too_large(None)(scope, receive, send)
