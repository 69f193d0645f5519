"""A local cluster for tests: several memoturnd processes on 127.0.0.x, one gateway, real
etcd and MinIO (from the session fixtures)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from typing import Any

import httpx

from support.nodes import Memoturnd, free_port, verify


class Gateway:
    """``memoturn-gateway`` as a child process; ``https://`` when ``env`` gives it a certificate."""

    def __init__(
        self,
        etcd_endpoint: str,
        prefix: str,
        log_dir: str,
        attempts: int = 8,
        *,
        env: dict[str, str] | None = None,
        ca_file: str | ssl.SSLContext | None = None,
    ) -> None:
        self.port = free_port()
        scheme = "https" if (env or {}).get("MEMOTURN_TLS_CERT_FILE") else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log_path = os.path.join(log_dir, "gateway.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "memoturn.cluster.gateway",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--etcd",
                etcd_endpoint,
                "--prefix",
                prefix,
                "--attempts",
                str(attempts),
            ],
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30, verify=verify(ca_file))

    def wait_ready(self, nodes: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {open(self.log_path).read()[-2000:]}")
            try:
                r = self.client.get("/v1/gateway/health")
                if r.status_code == 200 and r.json()["nodes"] >= nodes:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError("gateway not ready")

    def owner(self, db: str) -> str | None:
        return self.client.get(f"/v1/cluster/placement/{db}").json()["owner"]

    def wait_owner(self, db: str, timeout: float = 30) -> str:
        """The owner once the gateway's etcd watch has delivered it (polled, not slept for)."""
        deadline = time.monotonic() + timeout
        while (owner := self.owner(db)) is None:
            assert time.monotonic() < deadline, f"the gateway never learned an owner for {db!r}"
            time.sleep(0.05)
        return owner

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.client.close()
        self.log.close()


class Cluster:
    def __init__(
        self,
        tmp_path: Any,
        etcd: Any,
        minio: Any,
        *,
        nodes: int = 3,
        ttl: int = 3,
        env: dict[str, str] | None = None,
        prefix: str | None = None,
        gateway_env: dict[str, str] | None = None,
        ca_file: str | ssl.SSLContext | None = None,
    ) -> None:
        """``env`` goes to every node, ``gateway_env`` to the gateway; ``ca_file`` is the CA the
        test's clients trust (TLS: the certificate variables in ``env``/``gateway_env``)."""
        self.tmp_path = tmp_path
        self.ca_file = ca_file
        self.prefix = prefix or f"/mt-{os.urandom(4).hex()}"
        self.store_url = minio.store_url(self.prefix.strip("/"))
        self.etcd = etcd
        self.ttl = ttl
        self.env = {
            "MEMOTURN_ETCD_ENDPOINTS": etcd.endpoint,
            "MEMOTURN_ETCD_PREFIX": self.prefix,
            "MEMOTURN_LEASE_TTL_SECONDS": str(ttl),
            **(env or {}),
        }
        self.nodes: dict[str, Memoturnd] = {}
        for i in range(nodes):
            self.add_node(f"n{i}")
        for node in self.nodes.values():
            node.wait_ready()
        self.gateway = Gateway(etcd.endpoint, self.prefix, str(tmp_path), env=gateway_env, ca_file=ca_file)
        self.gateway.wait_ready(len(self.nodes))

    def add_node(self, node_id: str) -> Memoturnd:
        host = f"127.0.0.{len(self.nodes) + 2}"
        node = Memoturnd(
            str(self.tmp_path / node_id),
            self.store_url,
            host=host,
            env={**self.env, "MEMOTURN_NODE_ID": node_id},
            ca_file=self.ca_file,
        )
        self.nodes[node_id] = node
        return node

    def close(self) -> None:
        self.gateway.close()
        for node in self.nodes.values():
            node.close()


def until_status(request: Any, status: int, timeout: float) -> httpx.Response:
    """Repeat ``request()`` every 0.2 s until it answers ``status`` or ``timeout`` passes; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        r = request()
        if r.status_code == status or time.monotonic() >= deadline:
            return r
        time.sleep(0.2)
