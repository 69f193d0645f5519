"""Bearer-token authentication of every request, before routing (so unknown paths are guarded too).

What a token may reach is :mod:`memoturn.server.auth`'s decision; this middleware only asks it and turns
a refusal into a problem answer (401 with ``WWW-Authenticate: Bearer``, 403, or 503).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth import Authenticator
from . import problems


class Authenticate:
    """ASGI middleware: a request goes on only if ``auth`` lets its token reach its path."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.auth.enabled:
            return await self.app(scope, receive, send)
        authorization = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        try:
            self.auth.authorize(scope["path"], authorization)
        except Exception as exc:
            refusal = problems.as_domain(exc)
            if refusal is None:
                raise
            status = problems.status_of(refusal)
            challenge = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            resp = problems.problem(status, refusal.type, refusal.title, refusal.detail, challenge)
            return await resp(scope, receive, send)
        await self.app(scope, receive, send)
