"""Hot routes: the busiest requests served by plain Starlette routes ahead of FastAPI's, with the same answers.

A profile of the node under the throughput benchmark put about half of a small request's CPU in
FastAPI's routing, dependency solving and validation. A hot route answers the common shape of
one request as a plain Starlette route placed ahead of the FastAPI one: it runs the same code
and serializes the same response model with the same serializer, so the answers are the same
bytes. It takes only requests whose every part it can read exactly as FastAPI would (each
``Memoturn-*`` header at most once, no query parameter but ``branch``, no NUL in the path or
the query, a body it can validate); anything else goes, unread or replayed, to the FastAPI
route, whose answers (the 4xx problem bodies included) are therefore unchanged. The FastAPI
routes stay registered, so the OpenAPI document still describes every operation. Errors raised
in a hot route are domain errors that the app's exception handlers turn into problem bodies;
authentication and the body limit are middleware and apply first. ``MEMOTURN_HOT_ROUTES=0``
turns them off (for A/B measurements and for the equivalence test, ``tests/test_hot_routes.py``).

The routes: :mod:`.hot_kv` (``GET``/``PUT`` of one KV item) and :mod:`.hot_memory` (adding one
memory).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...names import DEFAULT_BRANCH

SKIP = "memoturn.hot.skip"  # set on a request handed back to the router: the FastAPI route takes it


def single_headers(scope: Scope, names: tuple[bytes, ...]) -> dict[bytes, bytes] | None:
    """The headers ``names`` (lower case) the request carries, or None if one of them comes twice."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in names:
            if name in found:
                return None
            found[name] = value
    return found


def branch_query(query: bytes) -> str | None:
    """The ``branch`` query parameter (main without one), or None for any other query."""
    if not query:
        return DEFAULT_BRANCH
    if b"\x00" in query or b"%00" in query:
        return None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)  # as starlette's QueryParams
    if len(pairs) != 1 or pairs[0][0] != "branch" or "\x00" in pairs[0][1]:
        return None
    return pairs[0][1]


class HotRoute(Route):
    """A route ahead of FastAPI's for ``path`` and ``methods``; :meth:`serve` answers or hands back."""

    def __init__(self, path: str, methods: list[str], router: ASGIApp) -> None:
        super().__init__(path, self.serve, methods=methods, include_in_schema=False)
        self.router = router  # the app's router: where a request goes back when it is not ours
        self.app = self.serve  # an ASGI app, not a request/response endpoint
        self._methods = frozenset(methods)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(SKIP) or scope["type"] != "http" or scope["method"] not in self._methods:
            return Match.NONE, {}
        match, child = super().matches(scope)
        if match is not Match.FULL or any("\x00" in v for v in child["path_params"].values()):
            return Match.NONE, {}
        child["route"] = self  # the request metrics' label: the same template as FastAPI's route
        return match, child

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError

    async def hand_back(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the FastAPI route answer (``receive`` replays a body already read, see :func:`replay`)."""
        scope[SKIP] = True
        await self.router(scope, receive, send)


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # a disconnect: what came so far (FastAPI's route meets the same end)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """``receive`` that gives ``body`` once more, then what the connection says next."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
