"""Helpers to run nodes in-process or as ``memoturnd`` processes, and to compare databases."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from typing import Any

import httpx
from memoturn.config import Settings
from memoturn.server.node import Node
from memoturn.sql.connection import connect


def make_node(tmp_path: Any, store: Any, name: str = "node", **overrides: Any) -> Node:
    """A started in-process node with its own empty cache directory."""
    settings = Settings(data_dir=str(tmp_path / name), node_id=name, tier_interval_seconds=3600, **overrides)
    return Node(settings, store=store).start()


def dump(path: str) -> list[Any]:
    """Logical content of a database file: schema then every row of every table, in order."""
    conn = connect(path)
    try:
        schema = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name").fetchall()
        out: list[Any] = [("schema", tuple(r)) for r in schema]
        for type_, name, _tbl, sql in schema:
            if type_ != "table" or (sql or "").upper().startswith("CREATE VIRTUAL"):
                continue
            rows = conn.execute(f'SELECT * FROM "{name}"').fetchall()
            out.append((name, sorted(tuple(repr(v) for v in row) for row in rows)))
        return out
    finally:
        conn.close()


def integrity(path: str) -> str:
    conn = connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def verify(ca_file: str | ssl.SSLContext | None) -> ssl.SSLContext | bool:
    """httpx's ``verify`` for a server whose certificate ``ca_file`` signed (or a context as it is;
    None: the defaults)."""
    if isinstance(ca_file, ssl.SSLContext):
        return ca_file
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


class Memoturnd:
    """A ``memoturnd`` child process on 127.0.0.1 with its own data directory; ``https://`` when
    ``env`` gives it a certificate (``ca_file``: the CA its :attr:`client` trusts). ``store_url``
    is its object store unless ``env`` sets ``MEMOTURN_STORE_URL``."""

    def __init__(
        self,
        data_dir: str,
        store_url: str,
        *,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        ca_file: str | ssl.SSLContext | None = None,
    ) -> None:
        self.port = free_port()
        scheme = "https" if (env or {}).get("MEMOTURN_TLS_CERT_FILE") else "http"
        self.url = f"{scheme}://{host}:{self.port}"
        self.log_path = os.path.join(data_dir, "memoturnd.log")
        os.makedirs(data_dir, exist_ok=True)
        full_env = {**os.environ, **(env or {})}
        full_env.update(
            MEMOTURN_DATA_DIR=data_dir,
            MEMOTURN_STORE_URL=(env or {}).get("MEMOTURN_STORE_URL", store_url),
            MEMOTURN_LISTEN=f"{host}:{self.port}",
        )
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "memoturn.server", "--log-level", "warning"],
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30, verify=verify(ca_file))

    def wait_ready(self, timeout: float = 90) -> None:
        """Poll ``/v1/ready``; the timeout is generous (a loaded CI machine starts slowly) and
        the error names the last readiness answer and the end of the daemon's log."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"memoturnd exited with {self.proc.returncode}: {open(self.log_path).read()[-2000:]}"
                )
            try:
                r = self.client.get("/v1/ready")
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:300]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.05)
        tail = open(self.log_path, errors="replace").read()[-1500:]
        raise TimeoutError(f"memoturnd not ready after {timeout}s (last: {last}); log tail:\n{tail}")

    def kill(self, sig: int = 9) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        self.kill()
        self.client.close()
        self.log.close()
