"""The gateway's client to the nodes, over real sockets: what it reads, what it reuses, and how
each way of failing is told apart (the retry rule in ``tests/test_gateway_retries.py`` rests on it)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable

import pytest
from memoturn.cluster.node_client import ConnectionLost, NodeClient, NotSent

# A stand-in node: reads one request head (and its body by content-length), then runs ``answer``.
Answer = Callable[[asyncio.StreamWriter, str, dict[str, str], bytes], Awaitable[bool]]  # True: keep the connection


async def _serve(answer: Answer) -> tuple[asyncio.Server, str, list[int]]:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                fields = (line.partition(":") for line in head[1:] if line)
                headers = {k.strip().lower(): v.strip() for k, _, v in fields}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if not await answer(writer, head[0], headers, body):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", connections


def _run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


def test_lengths_chunks_interim_answers_and_repeated_headers():
    async def answer(writer, line, headers, body) -> bool:
        if line.startswith("GET /chunked"):
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        elif line.startswith("PUT /continue"):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            writer.write(b"HTTP/1.1 201 Created\r\nset-cookie: a=1\r\nset-cookie: b=2\r\ncontent-length: 2\r\n\r\nok")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        return True

    async def go() -> None:
        server, url, connections = await _serve(answer)
        client = NodeClient()
        try:
            r = await client.request(url, "POST", "/echo?x=1", [("content-type", "application/json")], b'{"a":1}', 5)
            assert (r.status, await r.read(), r.header("content-length")) == (200, b'{"a":1}', "7")
            r.release()
            r = await client.request(url, "GET", "/chunked", [], b"", 5)
            assert await r.read() == b"abcde" and r.content_length is None
            r.release()
            r = await client.request(url, "PUT", "/continue", [], b"x", 5)
            assert r.status == 201 and await r.read() == b"ok"
            assert [v for k, v in r.raw_headers if k == b"set-cookie"] == [b"a=1", b"b=2"]
            r.release()
            assert len(connections) == 1  # each answer read whole: one kept-alive connection for all
        finally:
            await client.close()
            server.close()

    _run(go())


def test_a_connection_is_not_reused_after_connection_close_head_or_a_half_read_answer():
    async def answer(writer, line, headers, body) -> bool:
        close = line.startswith("GET /close")
        extra = b"connection: close\r\n" if close else b""
        writer.write(
            b"HTTP/1.1 200 OK\r\n" + extra + b"content-length: 5\r\n\r\n" + (b"" if "HEAD" in line else b"hello")
        )
        await writer.drain()
        return not close

    async def go() -> None:
        server, url, connections = await _serve(answer)
        client = NodeClient()
        try:
            r = await client.request(url, "GET", "/close", [], b"", 5)
            assert await r.read() == b"hello"
            r.release()
            r = await client.request(url, "HEAD", "/", [], b"", 5)
            assert r.status == 200 and await r.read() == b"" and r.content_length == 5
            r.release()
            r = await client.request(url, "GET", "/", [], b"", 5)
            r.release()  # the body never read: the connection cannot carry another request
            r = await client.request(url, "GET", "/", [], b"", 5)
            assert await r.read() == b"hello"
            r.release()
            assert len(connections) == 4
        finally:
            await client.close()
            server.close()

    _run(go())


def test_a_large_answer_streams_with_backpressure():
    size = 8 * 1024 * 1024

    async def answer(writer, line, headers, body) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"z" * 65536)
            await writer.drain()  # waits while the client has paused reading
        return True

    async def go() -> None:
        server, url, _ = await _serve(answer)
        client = NodeClient()
        try:
            r = await client.request(url, "GET", "/big", [], b"", 5)
            received = 0
            async for chunk in r.iter_chunks():
                received += len(chunk)
                if received < 1024 * 1024:
                    await asyncio.sleep(0.01)  # a slow reader: the node must wait, not fill memory
                    assert r._buffered <= 2 * 256 * 1024 + 65536
            assert received == size
            r.release()
        finally:
            await client.close()
            server.close()

    _run(go())


def test_not_sent_lost_and_timed_out_are_told_apart():
    async def answer(writer, line, headers, body) -> bool:
        if "/drop" in line:
            return False  # read, then closed without an answer: it may have run
        if "/half" in line:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhal")
            await writer.drain()
            return False
        await asyncio.sleep(3600)
        return False

    async def go() -> None:
        server, url, _ = await _serve(answer)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{s.getsockname()[1]}"
        client = NodeClient(connect_timeout=1)
        try:
            with pytest.raises(NotSent):
                await client.request(closed, "PUT", "/k", [], b"1", 5)
            with pytest.raises(ConnectionLost):
                await client.request(url, "PUT", "/drop", [], b"1", 5)
            r = await client.request(url, "GET", "/half", [], b"", 5)
            with pytest.raises(ConnectionLost):
                await r.read()
            r.release()
            with pytest.raises(TimeoutError):
                await client.request(url, "GET", "/hang", [], b"", 0.3)
        finally:
            await client.close()
            server.close()

    _run(go())


def test_a_pooled_connection_the_node_closed_is_not_used_even_before_the_loop_saw_it_close():
    """A node shutting down closes its idle connections; the gateway's loop, busy, may pick one
    before it has read the FIN. The request must go on a new connection, not into a reset."""
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    close_first, first_closed = threading.Event(), threading.Event()
    seen: list[str] = []

    def node() -> None:  # a plain blocking server: its close does not wait for the client's loop
        for n in range(2):
            conn, _ = listener.accept()
            with conn:
                seen.append(conn.recv(65536).decode("latin-1").split(" ", 2)[1])
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                if n == 0:
                    close_first.wait(10)
            first_closed.set()

    threading.Thread(target=node, daemon=True).start()

    async def go() -> None:
        client = NodeClient()
        try:
            r = await client.request(url, "PUT", "/first", [], b"1", 5)
            assert await r.read() == b"ok"
            r.release()
            close_first.set()
            # The loop blocked (as a busy gateway's is) while the node closes: the FIN reaches
            # the kernel and the loop does not read it before the next request.
            assert first_closed.wait(10)
            time.sleep(0.05)
            r = await client.request(url, "PUT", "/second", [], b"2", 5)
            assert (r.status, await r.read()) == (200, b"ok")
            r.release()
        finally:
            await client.close()

    try:
        _run(go())
        assert seen == ["/first", "/second"]
    finally:
        listener.close()
