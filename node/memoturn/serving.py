"""How ``memoturnd`` and ``memoturn-gateway`` serve their ASGI app: uvicorn or granian.

``uvicorn`` (uvloop + httptools) is the default and the one that re-reads a rotated TLS
certificate (:mod:`memoturn.tls`). ``granian`` is a Rust HTTP server, run embedded in this
process: the app is already built here (a node holds its databases, the gateway its etcd
watch), so there is no import string and no worker process. It reads the TLS files at start
only. ``docs/benchmarks.md`` compares the two (``bench.throughput --http-servers``).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any, Literal

from .tls import ServerFiles, serve_uvicorn

HTTPServer = Literal["uvicorn", "granian"]


def serve(
    app: Any, host: str, port: int, tls: ServerFiles | None, server: HTTPServer = "uvicorn", **uvicorn_options: Any
) -> None:
    """Serve ``app`` until SIGTERM or SIGINT; either way the app's lifespan shutdown runs."""
    if server == "granian":
        serve_granian(app, host, port, tls)
    else:
        serve_uvicorn(app, host, port, tls, **uvicorn_options)


def serve_granian(app: Any, host: str, port: int, tls: ServerFiles | None = None) -> None:
    """granian's embedded server on ``host:port`` (HTTPS from ``tls``, read once)."""
    from granian.constants import Interfaces
    from granian.server.embed import Server

    async def run() -> None:
        server = Server(
            app,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            log_enabled=False,
            ssl_cert=Path(tls.cert_file) if tls else None,
            ssl_key=Path(tls.key_file) if tls else None,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.stop)
        await server.serve()

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run())
