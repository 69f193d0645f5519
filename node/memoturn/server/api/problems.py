"""Every error leaves the API as an ``application/problem+json`` body with a fitting status.

Domain errors (:mod:`memoturn.errors`) say what went wrong; the HTTP status each one means is
decided here, in :data:`STATUS`, and nowhere else. An object-store outage that reaches the edge
untranslated answers as the domain's :class:`~memoturn.errors.Unavailable` would.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...errors import (
    BadRequest,
    Conflict,
    DataCorrupt,
    Forbidden,
    MemoturnError,
    NotFound,
    NotOwner,
    PayloadTooLarge,
    PreconditionFailed,
    Unauthorized,
    Unavailable,
)
from ...storage.store import StoreUnavailable

log = logging.getLogger("memoturn.api")

# The HTTP status of each domain error; a subclass answers as its nearest listed ancestor.
STATUS: dict[type, int] = {
    MemoturnError: 500,
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    NotOwner: 409,
    PreconditionFailed: 412,
    PayloadTooLarge: 413,
    DataCorrupt: 502,
    Unavailable: 503,
}


def status_of(exc: MemoturnError) -> int:
    """The HTTP status that ``exc`` answers with."""
    return next((STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), 500)


def as_domain(exc: Exception) -> MemoturnError | None:
    """``exc`` as a domain error (a store outage is :class:`Unavailable`), or None if it is none."""
    if isinstance(exc, MemoturnError):
        return exc
    if isinstance(exc, StoreUnavailable):
        return Unavailable(f"object store unavailable: {exc}")
    return None


def problem(
    status: int, type_: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra: object
) -> JSONResponse:
    """An RFC 9457 problem response; ``extra`` members with a value are added to the body."""
    body = {"type": type_, "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def error_response(exc: MemoturnError) -> JSONResponse:
    """The answer to a domain error raised by a route: its txid as a header, Retry-After on a 503."""
    status = status_of(exc)
    headers = {}
    txid = exc.extra.get("txid")
    if isinstance(txid, int):
        headers["Memoturn-Txid"] = str(txid)
    if status == 503:
        headers["Retry-After"] = "1"
    return problem(status, exc.type, exc.title, exc.detail, headers, **exc.extra)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem body."""

    @app.exception_handler(MemoturnError)
    @app.exception_handler(StoreUnavailable)
    async def _memoturn(request: Request, exc: Exception) -> JSONResponse:
        domain = as_domain(exc)
        assert domain is not None  # registered for exactly these two
        return error_response(domain)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        for e in errors:
            if e.get("type") == "json_invalid":
                why = (e.get("ctx") or {}).get("error")
                return problem(
                    400,
                    "malformed-json",
                    "Malformed JSON",
                    "the request body is not valid JSON" + (f": {why}" if why else ""),
                )

        def described(some: Sequence[Any]) -> str:
            parts = []
            for e in some[:5]:
                loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
                parts.append(f"{loc or 'body'}: {e.get('msg')}")
            return "; ".join(parts)

        # A NUL would be cut off by SQLite (a silent change): its own 400, named apart from schema errors.
        nul = [e for e in errors if e.get("type") == "invalid_string"]
        if nul:
            return problem(400, "invalid-string", "Invalid string", described(nul))
        return problem(422, "invalid-request", "Invalid request", described(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem(exc.status_code, type_, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal-error", "Internal error", f"{type(exc).__name__}: {exc}")
