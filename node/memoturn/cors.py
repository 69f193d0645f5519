"""Cross-origin requests from browser pages (the TypeScript SDK in a web app), when allowed.

Off unless ``MEMOTURN_CORS_ORIGINS`` names the origins (or ``*``): a page on another origin can
then call the node or the gateway directly. The middleware sits outside authentication, so a
preflight ``OPTIONS`` is answered without a token (it carries none) while the real request is
still authenticated; the bearer token travels in ``Authorization``, never a cookie, so
credentials are not allowed. The Memoturn headers a client sends and reads are listed, so
``Memoturn-Txid`` (read-your-writes) is visible to the page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from starlette.applications import Starlette
from starlette.applications import Starlette

REQUEST_HEADERS = ["Authorization", "Content-Type", "Memoturn-Min-Txid", "Memoturn-Durability", "Memoturn-Read"]
RESPONSE_HEADERS = [
    "Memoturn-Txid",
    "Memoturn-Head-Txid",
    "Memoturn-Served-By",
    "Memoturn-Read",
    "Memoturn-Timeline",
    "Memoturn-Created-At",
    "Retry-After",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
PREFLIGHT_MAX_AGE = 600


def parse_origins(text: str | None) -> list[str]:
    """``MEMOTURN_CORS_ORIGINS``: comma-separated ``scheme://host[:port]`` origins, or ``*``; ValueError else."""
    origins = [o.strip().rstrip("/") for o in (text or "").split(",") if o.strip()]
    for origin in origins:
        if origin == "*":
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise ValueError(f"CORS origin {origin!r} must be scheme://host[:port] (http or https) or *")
    if "*" in origins and len(origins) > 1:
        raise ValueError("CORS origins: * stands alone")
    return origins


def add_cors(app: Starlette, origins: list[str]) -> None:
    """Answer cross-origin requests from ``origins`` (nothing when there are none); call it after
    every other ``add_middleware`` so it is the outermost layer."""
    if origins:
        from starlette.middleware.cors import CORSMiddleware  # the servers' dependency, not the settings'

        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=METHODS,
            allow_headers=REQUEST_HEADERS,
            expose_headers=RESPONSE_HEADERS,
            allow_credentials=False,
            max_age=PREFLIGHT_MAX_AGE,
        )
