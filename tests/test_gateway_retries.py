"""The gateway's retry contract, over real sockets: a request goes to a second node only if it
provably never ran; one that may have run is answered ``outcome-unknown`` and sent once.

The nodes are stand-ins (a few lines of asyncio speaking HTTP/1.1 on 127.0.0.1) so that each
test can drop a connection at the exact moment it needs; the gateway runs under uvicorn on a
socket of its own and is called with httpx, as a client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from memoturn.cluster.gateway import KEEPALIVE_SECONDS, Gateway, create_gateway_app
from memoturn.cluster.placement import Placement

# What a stand-in node does with the request it read: (method, n-th request on this connection) -> action.
Script = Callable[[str, int], str]


class Node:
    """A node stand-in that records every request it read, then follows its script.

    Actions: ``ok`` (answer 200, keep the connection), ``ok-then-close`` (answer, then close
    the idle connection as a keep-alive timeout would), ``drop`` (close without answering),
    ``drop-and-die`` (close without answering and stop listening: a node killed mid-request),
    ``hang`` (never answer), ``not-owner`` / ``lease-lost-after-commit`` (typed answers),
    ``close-unread`` (close without running the request: counted in ``unread``, not ``seen``).
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.seen: list[tuple[str, str, bytes]] = []
        self.unread = 0
        self.connections = 0
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Node:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, target, _ = head[0].split(" ", 2)
                fields = (line.partition(":") for line in head[1:] if line)
                headers = {k.strip().lower(): v.strip() for k, _, v in fields}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                n += 1
                action = self.script(method, n)
                if action == "close-unread":
                    self.unread += 1
                    return
                self.seen.append((method, target, body))
                if action in ("drop", "drop-and-die"):
                    if action == "drop-and-die" and self.server is not None:
                        self.server.close()
                    return
                if action == "hang":
                    await asyncio.sleep(3600)
                if action == "not-owner":
                    writer.write(_answer(409, {"type": "not-owner", "status": 409, "detail": "moved"}, problem=True))
                elif action == "lease-lost-after-commit":
                    writer.write(
                        _answer(
                            503,
                            {
                                "type": "lease-lost",
                                "status": 503,
                                "txid": 7,
                                "detail": "lease lost while committing txid 7; outcome unknown",
                            },
                            problem=True,
                            txid=7,
                        )
                    )
                else:
                    writer.write(_answer(200, {"n": len(self.seen)}, txid=len(self.seen)))
                await writer.drain()
                if action == "ok-then-close":
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.closed.set()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def _answer(status: int, body: dict[str, Any], *, problem: bool = False, txid: int | None = None) -> bytes:
    data = json.dumps(body).encode()
    kind = "application/problem+json" if problem else "application/json"
    lines = [f"HTTP/1.1 {status} X", f"content-type: {kind}", f"content-length: {len(data)}"]
    if txid is not None:
        lines.append(f"memoturn-txid: {txid}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


class StaticPlacement(Placement):
    """The real routing over a fixed node list; a refresh moves the owner where the test says."""

    def __init__(self, nodes: dict[str, str], owner: str | None = None, moved_to: str | None = None) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # no etcd: the watch never starts
        self.nodes = {n: {"id": n, "url": url} for n, url in nodes.items()}
        if owner:
            self.owners["db/main"] = owner
        self.moved_to = moved_to

    def refresh_owner(self, key: str) -> str | None:
        if self.moved_to:
            self.owners[key] = self.moved_to
        return self.owners.get(key)


@contextlib.asynccontextmanager
async def serving(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway under uvicorn on a real socket, and an httpx client (which never retries) for it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_gateway_app(gateway), log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await task
        sock.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gateway(placement: Placement, **kw: Any) -> Gateway:
    return Gateway(placement, attempts=kw.pop("attempts", 4), backoff=0.01, max_backoff=0.02, **kw)


def test_idle_connections_go_before_the_node_closes_them():
    """memoturnd (uvicorn, default keep-alive) closes idle connections after its timeout: the
    gateway's client drops them first, so a request is not written to one being closed."""
    assert KEEPALIVE_SECONDS < uvicorn.Config(create_gateway_app).timeout_keep_alive


def test_a_put_applied_then_dropped_is_sent_once_and_answered_outcome_unknown():
    async def go() -> None:
        node = await Node(lambda method, n: "drop").start()
        gateway = _gateway(StaticPlacement({"a": node.url}))
        async with serving(gateway) as client:
            r = await client.put("/v1/databases/db/kv/k", content=b'{"value": 1}')
        await node.stop()
        assert [m for m, _, _ in node.seen] == ["PUT"]  # once: neither the gateway nor its client resent it
        assert r.status_code == 502 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "outcome-unknown" and "may have been applied" in r.json()["detail"]
        assert gateway.retries == 0

    asyncio.run(go())


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH"])
def test_a_write_applied_by_a_node_that_then_died_is_not_503_no_route(method):
    """The failover case of issue 12: applied, connection lost, the node gone, the next node still
    answering not-owner. Before, aiohttp resent the PUT/DELETE, met a refused connection, and the
    gateway took that for "never reached the node": retries, then ``503 no-route``."""

    async def go() -> None:
        victim = await Node(lambda method, n: "drop-and-die").start()
        successor = await Node(lambda method, n: "not-owner").start()
        gateway = _gateway(StaticPlacement({"a": victim.url, "b": successor.url}, owner="a"))
        async with serving(gateway) as client:
            r = await client.request(method, "/v1/databases/db/kv/k", content=b'{"value": 1}')
        await successor.stop()
        assert r.status_code == 502 and r.json()["type"] == "outcome-unknown", r.text
        assert [m for m, _, _ in victim.seen] == [method] and successor.seen == []
        assert gateway.retries == 0

    asyncio.run(go())


def test_a_write_without_an_answer_in_time_is_504_outcome_unknown():
    async def go() -> None:
        node = await Node(lambda method, n: "hang").start()
        gateway = _gateway(StaticPlacement({"a": node.url}), timeout=0.5)
        async with serving(gateway) as client:
            r = await client.post("/v1/databases/db/memories", content=b"{}")
        await node.stop()
        assert r.status_code == 504 and r.json()["type"] == "outcome-unknown"
        assert len(node.seen) == 1

    asyncio.run(go())


def test_a_refused_connection_is_retried_on_another_node():
    async def go() -> None:
        node = await Node(lambda method, n: "ok").start()
        gateway = _gateway(StaticPlacement({"dead": f"http://127.0.0.1:{closed_port()}", "b": node.url}, owner="dead"))
        async with serving(gateway) as client:
            r = await client.put("/v1/databases/db/kv/k", content=b'{"value": 1}')
            scraped = (await client.get("/metrics")).text
        await node.stop()
        assert r.status_code == 200 and r.headers["memoturn-txid"] == "1"
        assert len(node.seen) == 1 and gateway.retries == 1
        # The gateway's own /metrics (the chart's gateway PodMonitor scrapes it).
        assert "memoturn_gateway_retries_total 1.0" in scraped
        assert 'memoturn_gateway_request_seconds_count{method="PUT",status="200"} 1.0' in scraped
        assert "memoturn_gateway_live_nodes 2.0" in scraped

    asyncio.run(go())


def test_no_live_node_at_all_is_503_no_route():
    async def go() -> None:
        gateway = _gateway(StaticPlacement({"dead": f"http://127.0.0.1:{closed_port()}"}), attempts=2)
        async with serving(gateway) as client:
            r = await client.put("/v1/databases/db/kv/k", content=b"{}")
            scraped = (await client.get("/metrics")).text
        assert r.status_code == 503 and r.json()["type"] == "no-route"
        assert "memoturn_gateway_no_route_total 1.0" in scraped

    asyncio.run(go())


def test_a_typed_refusal_is_retried_but_a_commit_with_unknown_outcome_is_not():
    async def go() -> None:
        refuses = await Node(lambda method, n: "not-owner").start()
        owner = await Node(lambda method, n: "ok").start()
        gateway = _gateway(StaticPlacement({"a": refuses.url, "b": owner.url}, owner="a", moved_to="b"))
        async with serving(gateway) as client:
            r = await client.put("/v1/databases/db/kv/k", content=b"{}")
        assert r.status_code == 200 and len(refuses.seen) == 1 and len(owner.seen) == 1

        # lease-lost carrying the txid it committed: the write may stand, so it goes back as it is.
        committed = await Node(lambda method, n: "lease-lost-after-commit").start()
        gateway = _gateway(StaticPlacement({"a": committed.url, "b": owner.url}, owner="a", moved_to="b"))
        async with serving(gateway) as client:
            r = await client.put("/v1/databases/db/kv/k", content=b"{}")
        assert r.status_code == 503 and r.json()["type"] == "lease-lost" and r.headers["memoturn-txid"] == "7"
        assert len(committed.seen) == 1 and len(owner.seen) == 1 and gateway.retries == 0
        for n in (refuses, owner, committed):
            await n.stop()

    asyncio.run(go())


def test_an_idle_connection_the_node_closed_is_not_used_for_the_next_request():
    """Keep-alive closed by the node between requests: the next PUT opens a new connection and succeeds."""

    async def go() -> None:
        node = await Node(lambda method, n: "ok-then-close").start()
        gateway = _gateway(StaticPlacement({"a": node.url}))
        async with serving(gateway) as client:
            first = await client.put("/v1/databases/db/kv/k", content=b"1")
            await asyncio.wait_for(node.closed.wait(), 5)
            await asyncio.sleep(0.05)  # the FIN reaches the gateway's pool
            second = await client.put("/v1/databases/db/kv/k", content=b"2")
        await node.stop()
        assert (first.status_code, second.status_code) == (200, 200)
        assert [b for _, _, b in node.seen] == [b"1", b"2"] and node.connections == 2

    asyncio.run(go())


def test_a_connection_lost_after_sending_is_retried_for_reads_only():
    """The node closes a kept-alive connection as the next request arrives (unread, but the gateway
    cannot know): a GET goes again on a new connection, a DELETE is answered outcome-unknown."""

    async def go() -> None:
        node = await Node(lambda method, n: "ok" if n == 1 else "close-unread").start()
        gateway = _gateway(StaticPlacement({"a": node.url}))
        async with serving(gateway) as client:
            assert (await client.get("/v1/databases/db/kv/k")).status_code == 200
            read = await client.get("/v1/databases/db/kv/k")  # 2nd on connection 1: lost, sent on connection 2
            write = await client.delete("/v1/databases/db/kv/k")  # 2nd on connection 2: lost, not resent
        await node.stop()
        assert read.status_code == 200 and gateway.retries == 1
        assert write.status_code == 502 and write.json()["type"] == "outcome-unknown"
        assert [m for m, _, _ in node.seen] == ["GET", "GET"] and node.unread == 2 and node.connections == 2

    asyncio.run(go())


def test_a_chunked_body_over_the_limit_is_refused_without_reaching_a_node():
    """The body limit counts bytes as they arrive: a chunked body has no Content-Length to check."""

    async def go() -> None:
        node = await Node(lambda method, n: "ok").start()
        gateway = _gateway(StaticPlacement({"b": node.url}, owner="b"), max_body_bytes=1000)

        async def chunks():
            for _ in range(10):
                yield b"x" * 500

        async with serving(gateway) as client:
            r = await client.put("/v1/databases/db/kv/k", content=chunks())
        await node.stop()
        assert r.status_code == 413 and r.json()["type"] == "payload-too-large"
        assert node.seen == []

    asyncio.run(go())
