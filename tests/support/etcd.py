"""A real etcd server on loopback for tests, from Debian's ``etcd-server`` package.

``.ci/install-etcd`` installs it on a fresh machine. ``stop()`` and ``start()`` keep the
ports and the data directory, so tests can take etcd away and bring it back.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

from support.nodes import free_port


def etcd_binary() -> str:
    path = os.environ.get("MEMOTURN_ETCD_BIN") or shutil.which("etcd") or "/usr/bin/etcd"
    if os.access(path, os.X_OK):
        return path
    reason = f"etcd not found ({path}): run .ci/install-etcd (Debian package etcd-server)"
    if os.environ.get("CI"):
        raise RuntimeError(reason)
    import pytest

    pytest.skip(reason)


class EtcdServer:
    def __init__(self) -> None:
        self.binary = etcd_binary()
        self.port = free_port()
        self.peer_port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.data_dir = tempfile.mkdtemp(prefix="memoturn-etcd-")
        self.log_path = self.data_dir + ".log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> EtcdServer:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--name",
                "memoturn-test",
                "--data-dir",
                self.data_dir,
                "--listen-client-urls",
                f"http://{self.endpoint}",
                "--advertise-client-urls",
                f"http://{self.endpoint}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{self.peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{self.peer_port}",
                "--initial-cluster",
                f"memoturn-test=http://127.0.0.1:{self.peer_port}",
                "--listen-metrics-urls",
                "",
                "--log-level",
                "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ETCD_UNSUPPORTED_ARCH": "amd64"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {open(self.log_path).read()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                out = subprocess.run(
                    ["etcdctl", "--endpoints", self.endpoint, "endpoint", "health"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    env={**os.environ, "ETCDCTL_API": "3"},
                )
                if out.returncode == 0:
                    return self
            except (OSError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.1)
        raise TimeoutError("etcd did not become healthy")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
