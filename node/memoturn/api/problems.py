"""Every error leaves the API as an ``application/problem+json`` body with a fitting status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import MemoturnError

log = logging.getLogger("memoturn.api")


def problem(
    status: int, type_: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra: object
) -> JSONResponse:
    body = {"type": type_, "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(MemoturnError)
    async def _memoturn(request: Request, exc: MemoturnError) -> JSONResponse:
        headers = {}
        txid = exc.extra.get("txid")
        if isinstance(txid, int):
            headers["Memoturn-Txid"] = str(txid)
        if exc.status == 503:
            headers["Retry-After"] = "1"
        return problem(exc.status, exc.type, exc.title, exc.detail, headers, **exc.extra)

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

        def described(some: list) -> str:
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
