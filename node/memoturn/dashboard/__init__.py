"""The web dashboard at ``/ui/``: static files shipped in this package, served by memoturnd and the gateway.

The page is a small single-page app (``assets/``: one HTML file, one plain ES module, one
stylesheet; no build step, no CDN) that calls the JSON API with the bearer token the user typed
in. So the files themselves need no token: :mod:`memoturn.server.auth` leaves ``/ui`` open, and
every answer carries a Content-Security-Policy that allows only this origin.
"""

from __future__ import annotations

from pathlib import Path

from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/ui"
ASSETS = Path(__file__).parent / "assets"
#: Everything from this origin only: no inline script, no remote font, image or script.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
_HEADERS = [
    (b"content-security-policy", POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),  # revalidated each load (ETag), so an upgrade shows at once
]


class _Guarded:
    """The (compressed) static files with the dashboard's security headers on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, _send)


async def _to_index(_request: object) -> Response:
    return RedirectResponse(PREFIX + "/", status_code=308)


def routes() -> list[BaseRoute]:
    """``/ui`` (a redirect) and ``/ui/…`` (the files; ``/ui/`` is ``index.html``), to put before any catch-all."""
    files = GZipMiddleware(StaticFiles(directory=ASSETS, html=True), minimum_size=512)  # about a third on the wire
    return [Route(PREFIX, _to_index, methods=["GET", "HEAD"]), Mount(PREFIX, app=_Guarded(files), name="ui")]
