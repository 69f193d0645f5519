"""A real etcd server on loopback for tests, from Debian's ``etcd-server`` package.

``.ci/install-etcd`` installs it on a fresh machine. ``stop()`` and ``start()`` keep the
ports and the data directory, so tests can take etcd away and bring it back.
"""

from __future__ import annotations

import json
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
    """``host``: the client address (loopback unless a test's pods must reach it, e.g. a bridge the run owns)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.binary = etcd_binary()
        self.host = host
        self.port = free_port()
        self.peer_port = free_port()
        self.endpoint = f"{host}:{self.port}"
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
                with socket.create_connection((self.host, self.port), timeout=0.2):
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


# -- a secured three-member cluster ----------------------------------------------------------

#: The user the tests give Memoturn (readwrite on every key), and its password.
ETCD_USER, ETCD_PASSWORD = "memoturn", "s3cret-pw"
_ROOT_PASSWORD = "root-pw"


class Certificates:
    """A throwaway CA and certificates for 127.0.0.x, made with openssl in ``directory``.

    ``server.crt`` serves etcd's client and peer ports (both usages); ``client.crt`` is the
    client certificate Memoturn presents (CN ``memoturn``); ``root.crt`` is etcdctl's (CN
    ``root``, so it administers the cluster through the certificate alone).
    """

    def __init__(self, directory: str, hosts: list[str]) -> None:
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca = os.path.join(directory, "ca.crt")
        ca_key = os.path.join(directory, "ca.key")
        self._openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=memoturn-test-ca",
        )  # fmt: skip
        san = ",".join([*(f"IP:{h}" for h in hosts), "DNS:localhost"])
        self.server_cert, self.server_key = self._issue("server", "etcd", san, "serverAuth,clientAuth")
        self.client_cert, self.client_key = self._issue("client", "memoturn", None, "clientAuth")
        self.root_cert, self.root_key = self._issue("root", "root", None, "clientAuth")

    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    def _issue(self, name: str, cn: str, san: str | None, usage: str) -> tuple[str, str]:
        key, csr, crt = (os.path.join(self.dir, f"{name}.{ext}") for ext in ("key", "csr", "crt"))
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(f"extendedKeyUsage={usage}\nkeyUsage=digitalSignature,keyEncipherment\n")
            if san:
                f.write(f"subjectAltName={san}\n")
        self._openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={cn}",
        )  # fmt: skip
        self._openssl(
            "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", os.path.join(self.dir, "ca.key"),
            "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext,
        )  # fmt: skip
        return crt, key


class _Member:
    def __init__(self, name: str, host: str, data_dir: str) -> None:
        self.name = name
        self.host = host
        self.port = free_port()
        self.peer_port = free_port()
        self.endpoint = f"{host}:{self.port}"
        self.data_dir = data_dir
        self.log_path = data_dir + ".log"
        self.proc: subprocess.Popen | None = None


class EtcdCluster:
    """Three etcd members on 127.0.0.11-13, TLS everywhere with client certificates required
    (``--client-cert-auth``, peers too) and etcd's user/password auth on.

    ``endpoints`` is ``https://H:P,...`` for ``MEMOTURN_ETCD_ENDPOINTS``; :meth:`env` gives
    every ``MEMOTURN_ETCD_*`` variable a node needs. ``stop(i)``/``start(i)`` take one member
    away and bring it back (same data directory and ports).
    """

    def __init__(self, size: int = 3, *, token_ttl: int = 300) -> None:
        self.binary = etcd_binary()
        self.root = tempfile.mkdtemp(prefix="memoturn-etcd-cluster-")
        self.members = [_Member(f"m{i}", f"127.0.0.{11 + i}", os.path.join(self.root, f"m{i}")) for i in range(size)]
        self.certs = Certificates(os.path.join(self.root, "pki"), [m.host for m in self.members] + ["127.0.0.1"])
        self.token_ttl = token_ttl
        self.endpoints = ",".join(f"https://{m.endpoint}" for m in self.members)
        self.initial_cluster = ",".join(f"{m.name}=https://{m.host}:{m.peer_port}" for m in self.members)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "MEMOTURN_ETCD_ENDPOINTS": self.endpoints,
            "MEMOTURN_ETCD_CA_FILE": self.certs.ca,
            "MEMOTURN_ETCD_CERT_FILE": self.certs.client_cert,
            "MEMOTURN_ETCD_KEY_FILE": self.certs.client_key,
            "MEMOTURN_ETCD_USERNAME": ETCD_USER,
            "MEMOTURN_ETCD_PASSWORD": ETCD_PASSWORD,
        }
        env.update(overrides)
        return {k: v for k, v in env.items() if v}

    # -- processes -----------------------------------------------------------------------

    def _spawn(self, m: _Member, state: str) -> None:
        c = self.certs
        log = open(m.log_path, "ab")
        m.proc = subprocess.Popen(
            [
                self.binary,
                "--name",
                m.name,
                "--data-dir",
                m.data_dir,
                "--listen-client-urls",
                f"https://{m.endpoint}",
                "--advertise-client-urls",
                f"https://{m.endpoint}",
                "--listen-peer-urls",
                f"https://{m.host}:{m.peer_port}",
                "--initial-advertise-peer-urls",
                f"https://{m.host}:{m.peer_port}",
                "--initial-cluster",
                self.initial_cluster,
                "--initial-cluster-state",
                state,
                "--initial-cluster-token",
                os.path.basename(self.root),
                "--cert-file",
                c.server_cert,
                "--key-file",
                c.server_key,
                "--trusted-ca-file",
                c.ca,
                "--client-cert-auth",
                "--peer-cert-file",
                c.server_cert,
                "--peer-key-file",
                c.server_key,
                "--peer-trusted-ca-file",
                c.ca,
                "--peer-client-cert-auth",
                "--auth-token-ttl",
                str(self.token_ttl),
                "--listen-metrics-urls",
                "",
                "--log-level",
                "warn",
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ETCD_UNSUPPORTED_ARCH": "amd64"},
        )
        log.close()

    def etcdctl(self, *args: str, endpoints: str | None = None, check: bool = True) -> str:
        """etcdctl as root (authenticated by the root client certificate)."""
        c = self.certs
        out = subprocess.run(
            [
                "etcdctl",
                "--endpoints",
                endpoints or self.endpoints,
                "--cacert",
                c.ca,
                "--cert",
                c.root_cert,
                "--key",
                c.root_key,
                "--dial-timeout",
                "2s",
                "--command-timeout",
                "5s",
                *args,
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=15,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def _wait_healthy(self, members: list[_Member], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in members:
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd {m.name} exited: {open(m.log_path).read()[-2000:]}")
            endpoints = ",".join(f"https://{m.endpoint}" for m in members)
            try:
                self.etcdctl("endpoint", "health", endpoints=endpoints)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                time.sleep(0.2)
        raise TimeoutError("the etcd cluster did not become healthy")

    def start(self, index: int | None = None, timeout: float = 60.0) -> EtcdCluster:
        """Start every member and turn auth on (first call), or restart member ``index``."""
        if index is not None:
            self._spawn(self.members[index], "existing")
            self._wait_healthy([self.members[index]], timeout)
            return self
        for m in self.members:
            self._spawn(m, "new")
        self._wait_healthy(self.members, timeout)
        for args in (
            ("user", "add", f"root:{_ROOT_PASSWORD}"),
            ("user", "add", f"{ETCD_USER}:{ETCD_PASSWORD}"),
            ("role", "add", "memoturn"),
            ("role", "grant-permission", "memoturn", "--prefix=true", "readwrite", "/"),
            ("user", "grant-role", ETCD_USER, "memoturn"),
            ("auth", "enable"),
        ):
            self.etcdctl(*args)
        return self

    def stop(self, index: int) -> None:
        m = self.members[index]
        if m.proc and m.proc.poll() is None:
            m.proc.terminate()
            try:
                m.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()
        m.proc = None

    def leader(self) -> int:
        """Index of the current leader (asked of the running members)."""
        running = [m for m in self.members if m.proc is not None]
        status = json.loads(
            self.etcdctl(
                "endpoint", "status", "-w", "json", endpoints=",".join(f"https://{m.endpoint}" for m in running)
            )
        )
        leader_id = next(s["Status"]["leader"] for s in status)
        for s in status:
            if s["Status"]["header"]["member_id"] == leader_id:
                return next(i for i, m in enumerate(self.members) if s["Endpoint"].endswith(m.endpoint))
        raise RuntimeError("no leader among the running members")

    def move_leader(self, index: int) -> None:
        """Make member ``index`` the leader (so a test can stop the leader on purpose)."""
        if self.leader() == index:
            return
        members = json.loads(self.etcdctl("member", "list", "-w", "json"))["members"]
        target = next(m["ID"] for m in members if m["name"] == self.members[index].name)
        leader = self.members[self.leader()]
        self.etcdctl("move-leader", format(target, "x"), endpoints=f"https://{leader.endpoint}")

    def close(self) -> None:
        for i in range(len(self.members)):
            self.stop(i)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
