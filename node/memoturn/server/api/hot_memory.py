"""``POST /v1/namespaces/{namespace}/profiles/{profile}/memories`` as a hot route (:mod:`.hot`).

Adding one memory is the busiest write of an agent. The body is read with the same strict JSON
reader and validated by the same model (:class:`.memory.MemoryIn`); the write is the FastAPI
route's own (:class:`.memory.ProfileBranchWriter`, in a thread, as the route runs), and the answer is
:class:`.memory.Stored` through the same serializer, 201, with the same ``Memoturn-*`` headers.
It takes only an ``application/json`` body the model accepts, with at most a ``branch`` query and
one ``Memoturn-Durability`` header; every other shape (a body that fails validation, whose 422
FastAPI writes) goes to the FastAPI route.
"""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from .hot import HotRoute, branch_query, read_body, replay, single_headers
from .memory import BASE, MemoryIn, MemoryOut, ProfileBranchWriter, Profiles, Stored, named_later
from .strict import loads

_STORED = TypeAdapter(Stored)  # FastAPI's serializer for a response_model: TypeAdapter.dump_json
_SINGLE = (b"memoturn-durability", b"content-type")


def _memory(body: bytes) -> MemoryIn | None:
    """The body as the route's model, or None for FastAPI to judge (and answer 4xx)."""
    try:
        return MemoryIn.model_validate(loads(body))
    except (ValueError, ValidationError):  # json.JSONDecodeError is a ValueError
        return None


class HotMemoryRoute(HotRoute):
    """Adding one memory, ahead of FastAPI's route; hands every other shape to it."""

    def __init__(self, profiles: Profiles, router: ASGIApp) -> None:
        super().__init__(BASE + "/memories", ["POST"], router)
        self.profiles = profiles

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = single_headers(scope, _SINGLE)
        branch = branch_query(scope["query_string"])
        if headers is None or branch is None or headers.get(b"content-type") != b"application/json":
            return await self.hand_back(scope, receive, send)
        body = await read_body(receive)
        item = _memory(body) if body else None
        if item is None:
            return await self.hand_back(scope, replay(body, receive), send)
        params = scope["path_params"]
        durability = headers.get(b"memoturn-durability")
        response = await run_in_threadpool(
            self._store,
            params["namespace"],
            params["profile"],
            item,
            None if durability is None else durability.decode("latin-1"),
            branch,
        )
        await response(scope, receive, send)

    def _store(self, namespace: str, profile: str, item: MemoryIn, durability: str | None, branch: str) -> Response:
        # As memory.add_memory, with the headers its writer sets on FastAPI's sub-response.
        said = Response()
        w = ProfileBranchWriter(self.profiles, said, named_later(namespace, profile), durability, branch)
        ((memory, duplicate),) = w.store([item])
        stored = Stored(memory=MemoryOut(**memory), duplicate=duplicate, txid=w.txid)
        response = Response(_STORED.dump_json(stored, by_alias=True), status_code=201, media_type="application/json")
        response.headers.raw.extend((k, v) for k, v in said.headers.raw if k != b"content-length")
        return response


def install(routes: list[BaseRoute], profiles: Profiles, router: ASGIApp) -> None:
    """Put the hot route first in ``routes`` (the app's), unless ``MEMOTURN_HOT_ROUTES`` is off."""
    if profiles.node.settings.hot_routes:
        routes.insert(0, HotMemoryRoute(profiles, router))
