"""The gateway's HTTP/1.1 client to the nodes: keep-alive connections and nothing else.

The gateway forwards a request it has already read whole and relays the answer as it comes,
so its client needs no cookies, redirects, decompression, retries or header objects: aiohttp's
client did all of those per request and was half of the gateway's CPU (py-spy under
``bench.throughput``). This one writes the request in one call on a pooled connection and
reads the answer with ``httptools`` (llhttp, the parser uvicorn serves with), chunked or with a
length.

Contracts the gateway's retry rule rests on (``tests/test_gateway_retries.py``):

* :class:`NotSent`: nothing of the request was written: the connection was refused, timed out
  while connecting, or the node's certificate failed verification.
* :class:`ConnectionLost`: the request was written (it may have run) and no whole answer came.
* :class:`TimeoutError`: no whole answer within the request's time.
* Nothing is ever sent twice: a pooled connection the node has closed is dropped before use,
  and one that closes under a request raises :class:`ConnectionLost`. "Closed" is asked of the
  socket itself, not only of the event loop's view of it: a node that is shutting down closes
  its idle connections, and under load the loop may not yet have read that FIN when it picks
  the connection for the next request (rehearsal: a PUT answered ``502 outcome-unknown`` on a
  scale-in). An idle connection with anything to read (the FIN, a reset, a TLS close) is closing.

A connection goes back to the pool only after a whole answer on HTTP/1.1 without
``Connection: close`` (and never after ``HEAD``, whose answer the parser cannot delimit); an
idle one is dropped after ``keepalive`` seconds, before the node's own idle timeout.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 256 * 1024  # buffered body bytes at which reading from the node pauses
_MAX_IDLE_PER_NODE = 256


class NotSent(Exception):
    """The request never left the gateway: safe to send elsewhere."""


class ConnectionLost(Exception):
    """The connection ended after the request was written: it may have run."""


class _Connection(asyncio.Protocol):
    """One connection and the answer being read on it (one request at a time)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.parser = httptools.HttpResponseParser(self)
        self.response: NodeResponse | None = None
        self.interim = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TLS transport is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # bytes nobody asked for: the connection is not to be trusted
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.response._fail(ConnectionLost(f"malformed answer from the node: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        # At once: a pooled connection the node closed is never handed out again. An answer
        # delimited by the close (no length, not chunked) ends as lost: nodes never send one.
        self.closed = True
        return None  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.response is not None and not self.response.complete:
            self.response._fail(ConnectionLost(f"the node closed the connection: {exc or 'EOF'}"))

    def pause_writing(self) -> None:  # the request is written in one call; nothing to pause
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.raw_headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        assert self.response is not None
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self.interim = True
            self.response.raw_headers.clear()
            return
        self.response._headers_done(status, self.parser.get_http_version())

    def on_body(self, body: bytes) -> None:
        assert self.response is not None
        self.response._body(body)

    def on_message_complete(self) -> None:
        assert self.response is not None
        if self.interim:
            self.interim = False
            return
        self.response._complete()

    # -- own ---------------------------------------------------------------------------------

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class NodeResponse:
    """A node's answer: status and headers at once, the body by :meth:`read` or :meth:`iter_chunks`.

    :meth:`release` must be called once the caller is done: it returns the connection to the
    pool if the answer was read whole, and closes it otherwise.
    """

    def __init__(self, pool: NodeClient, key: tuple[str, str, int], conn: _Connection, method: str) -> None:
        self._pool, self._key, self._conn, self._method = pool, key, conn, method
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.complete = False
        self._reusable = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._head: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._released = False
        self._body_bytes: bytes | None = None

    # headers -------------------------------------------------------------------------------

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case), or None."""
        key = name.encode("latin-1")
        for k, v in self.raw_headers:
            if k == key:
                return v.decode("latin-1")
        return None

    @property
    def content_length(self) -> int | None:
        value = self.header("content-length")
        return int(value) if value is not None and value.isdigit() else None

    # body ------------------------------------------------------------------------------------

    async def read(self) -> bytes:
        """The whole body (kept: a second call returns it again)."""
        if self._body_bytes is None:
            self._body_bytes = b"".join([chunk async for chunk in self.iter_chunks()])
        return self._body_bytes

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (reading from the node pauses while a large part waits here)."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                transport = self._conn.transport
                if self._buffered < _HIGH_WATER // 2 and transport is not None and not self._conn.closed:
                    transport.resume_reading()
                yield chunk
                continue
            if self._error is not None:
                raise self._error
            if self.complete:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def release(self) -> None:
        """Hand the connection back (whole answer, reusable) or close it."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        conn.response = None
        if self.complete and self._reusable and not self._chunks and not conn.closed:
            self._pool._put_back(self._key, conn)
        else:
            conn.close()

    # fed by the connection -------------------------------------------------------------------

    async def _wait_head(self) -> None:
        await self._head
        if self._method == "HEAD":  # llhttp would wait for a body a HEAD answer never has
            self.complete = True
            self._reusable = False

    def _headers_done(self, status: int, version: str) -> None:
        self.status = status
        connection = (self.header("connection") or "").lower()
        self._reusable = version == "1.1" and "close" not in connection
        if not self._head.done():
            self._head.set_result(None)

    def _body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        transport = self._conn.transport
        if self._buffered > _HIGH_WATER and transport is not None:
            transport.pause_reading()
        self._wake()

    def _complete(self) -> None:
        self.complete = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None and not self.complete:
            self._error = exc
        if not self._head.done():
            self._head.set_exception(exc)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class NodeClient:
    """Keep-alive HTTP/1.1 connections to each node (``scheme://host:port``) for the gateway.

    ``ssl_context`` verifies ``https://`` nodes (None: the system's CAs); ``server_hostname`` is
    the name their certificates carry when it is not the URL's host.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float = 2.0,
        keepalive: float = 4.0,
    ) -> None:
        self._ssl = ssl_context
        self._server_hostname = server_hostname
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._closed = False

    async def request(
        self, base_url: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes, timeout: float
    ) -> NodeResponse:
        """Send ``method target`` (path and query as the client sent them) with ``headers`` (no
        hop-by-hop ones) and ``body``; return once the status and headers are in."""
        key = _node_key(base_url)
        conn = self._idle_connection(key) or await self._connect(key)
        response = NodeResponse(self, key, conn, method)
        conn.response = response
        host = key[1] if ":" not in key[1] else f"[{key[1]}]"
        head = [f"{method} {target} HTTP/1.1\r\nhost: {host}:{key[2]}\r\n"]
        head.extend(f"{name}: {value}\r\n" for name, value in headers)
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            head.append(f"content-length: {len(body)}\r\n")
        head.append("\r\n")
        assert conn.transport is not None
        try:
            conn.transport.write("".join(head).encode("latin-1") + body)
            async with asyncio.timeout(timeout):
                await response._wait_head()
        except BaseException:
            response.release()
            raise
        return response

    def _idle_connection(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be timing out
            if not conn.closed and now - conn.idle_since < self.keepalive and _quiet(conn):
                return conn
            conn.close()
        return None

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            tls = self._ssl if self._ssl is not None else ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _transport, conn = await loop.create_connection(
                    _Connection,
                    host,
                    port,
                    ssl=tls,
                    server_hostname=(self._server_hostname or host) if tls is not None else None,
                )
        except TimeoutError as exc:
            raise NotSent(f"no connection to {host}:{port} within {self.connect_timeout} s") from exc
        except (OSError, ssl.SSLError) as exc:  # refused, unreachable, certificate not trusted
            raise NotSent(f"cannot connect to {host}:{port}: {exc}") from exc
        return conn

    def _put_back(self, key: tuple[str, str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, deque())
        if self._closed or len(idle) >= _MAX_IDLE_PER_NODE:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


def _quiet(conn: _Connection) -> bool:
    """Nothing to read on an idle connection's socket (poll, not select: descriptors may pass 1024)."""
    sock = conn.transport.get_extra_info("socket") if conn.transport is not None else None
    if sock is None:
        return True
    poller = select.poll()
    try:
        poller.register(sock.fileno(), select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):  # already closed under us
        return False


def _node_key(base_url: str) -> tuple[str, str, int]:
    parts = urlsplit(base_url)
    scheme = parts.scheme or "http"
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, parts.hostname or "127.0.0.1", port
