"""TLS of the HTTP servers (``memoturnd``, ``memoturn-gateway``) and of their calls to nodes.

A server serves HTTPS from a PEM certificate (chain) and key, the ``tls.crt`` and ``tls.key`` of
a ``kubernetes.io/tls`` Secret as cert-manager writes them. Served by uvicorn (the gateway, and
``memoturnd`` by default), the files are checked every :data:`RELOAD_SECONDS` and a changed pair
is loaded into the live context: new connections get the new certificate, open ones keep theirs,
so a rotation needs no restart. A pair that does not load (half written, key and certificate
not matching) is logged and the old one kept. granian reads its files at start only.

Calls to nodes (the gateway's, a node streaming to its replicas) verify the node's certificate
against a CA bundle; ``server_name``, when given, is the name checked instead of the host of the
node's URL (a Deployment's pods are reached by IP, which a cert-manager certificate does not name).

Nothing here imports the rest of Memoturn: the server and the cluster packages both use it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("memoturn.tls")
RELOAD_SECONDS = 5.0


class TLSError(ValueError):
    """A certificate, key or CA file that cannot be used; the message is one line naming it."""


@dataclass(frozen=True)
class ServerFiles:
    """The certificate (chain) and private key a server presents, as PEM file paths."""

    cert_file: str
    key_file: str

    def context(self) -> ssl.SSLContext:
        """A server context holding the pair; :class:`TLSError` if they cannot be read or do not match."""
        for what, path in (("certificate", self.cert_file), ("key", self.key_file)):
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise TLSError(f"cannot read the TLS {what} {path}: {exc.strerror or exc}") from None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        except ssl.SSLError as exc:
            raise TLSError(
                f"{self.cert_file} and {self.key_file} are not a PEM certificate and its private key "
                f"({exc.reason or exc})"
            ) from None
        return ctx

    def stamp(self) -> tuple[int, ...] | None:
        """What changes when either file is replaced (a Secret volume swaps a symlink), None if one is missing."""
        try:
            a, b = os.stat(self.cert_file), os.stat(self.key_file)
        except OSError:
            return None
        return (a.st_ino, a.st_mtime_ns, a.st_size, b.st_ino, b.st_mtime_ns, b.st_size)


def server_files(cert_file: str | None, key_file: str | None) -> ServerFiles | None:
    """The pair, None when neither is set (plain HTTP); :class:`TLSError` if only one is."""
    if cert_file and key_file:
        return ServerFiles(cert_file, key_file)
    if cert_file or key_file:
        raise TLSError(pair_error(cert_file, key_file))
    return None


def pair_error(cert_file: str | None, key_file: str | None) -> str:
    given, missing = ("CERT", "KEY") if cert_file else ("KEY", "CERT")
    return (
        f"MEMOTURN_TLS_{given}_FILE is set but MEMOTURN_TLS_{missing}_FILE is not: "
        "set both (HTTPS) or neither (plain HTTP)"
    )


def client_context(ca_file: str | None) -> ssl.SSLContext:
    """A context verifying servers against ``ca_file`` (PEM bundle), or the system's CAs when None."""
    if ca_file is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=ca_file)
    except OSError as exc:  # ssl.SSLError is one: a file with no certificate in it
        reason = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
        raise TLSError(f"cannot use the CA bundle {ca_file}: {reason or exc}") from None


class Reloader:
    """Loads a changed certificate pair into a live server context (see the module's docstring)."""

    def __init__(self, files: ServerFiles, context: ssl.SSLContext) -> None:
        self.files = files
        self.context = context
        self._seen = files.stamp()

    def check(self) -> bool:
        """Reload if the files changed since the last look; True when a new pair is in use."""
        stamp = self.files.stamp()
        if stamp is None or stamp == self._seen:
            return False
        self._seen = stamp
        try:
            self.files.context()  # loaded aside first: a bad pair must not half-replace the live one
            self.context.load_cert_chain(self.files.cert_file, self.files.key_file)
        except (TLSError, ssl.SSLError) as exc:
            log.warning("TLS certificate change not applied, keeping the previous one: %s", exc)
            return False
        log.info("TLS certificate reloaded from %s", self.files.cert_file)
        return True

    async def run(self, interval: float = RELOAD_SECONDS) -> None:
        while True:
            await asyncio.sleep(interval)
            self.check()


def serve_uvicorn(app: Any, host: str, port: int, files: ServerFiles | None, **options: Any) -> None:
    """``uvicorn.run`` with HTTPS from ``files`` (re-read when they change), plain HTTP without.

    Exits 3, as ``uvicorn.run`` does, when the server could not start (the port is taken)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def serve(self, sockets: Any = None) -> None:
            if files is None:
                return await super().serve(sockets)
            if not self.config.loaded:
                self.config.load()
            assert self.config.ssl is not None
            watch = asyncio.create_task(Reloader(files, self.config.ssl).run())
            try:
                await super().serve(sockets)
            finally:
                watch.cancel()

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=files.cert_file if files else None,
        ssl_keyfile=files.key_file if files else None,
        **options,
    )
    server = Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        raise SystemExit(3)
