"""The container image, run the way the operator and the chart run it.

``$MEMOTURN_IMAGE`` names the image (``.ci/build-image`` builds it; ``make test`` passes it) and
``$MEMOTURN_DOCKER_BIN`` the docker client (``.ci/install-docker``). Every container runs as the
pod does: uid 10001, a read-only root filesystem, every capability dropped, no privilege
escalation, writable only in an ``emptyDir``-like cache at ``/var/lib/memoturn`` (a fresh host
directory, mode 0777 like an emptyDir) and a ``/tmp`` tmpfs. They share the host's network
(CI's engine has no bridge), so MinIO and etcd from the session fixtures are on 127.0.0.1.

Missing image or engine: a failure under CI (``$CI`` set), a skip elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from memoturn.client import Memoturn
from support.processes import free_port

TOKEN = "image-test-admin-token"
CACHE = "/var/lib/memoturn"  # the image's MEMOTURN_DATA_DIR and the operator's cache mount


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def docker() -> str:
    binary = os.environ.get("MEMOTURN_DOCKER_BIN") or shutil.which("docker")
    if not binary:
        _missing("no docker client: run .ci/install-docker (or set MEMOTURN_DOCKER_BIN)")
    assert binary
    info = subprocess.run([binary, "info"], capture_output=True, text=True)
    if info.returncode != 0:
        _missing(f"no Docker engine answers: run .ci/start-dockerd ({info.stderr.strip()[-300:]})")
    return binary


@pytest.fixture(scope="module")
def image(docker: str) -> str:
    tag = os.environ.get("MEMOTURN_IMAGE")
    if not tag:
        _missing("MEMOTURN_IMAGE is not set: run .ci/build-image (make test sets it)")
    assert tag
    if subprocess.run([docker, "image", "inspect", tag], capture_output=True).returncode != 0:
        _missing(f"image {tag} is not in the engine: run .ci/build-image")
    return tag


class Container:
    """One detached container of the image under the pod's security settings; ``close()``
    removes it (``docker rm -f``: SIGKILL, as when a node is lost)."""

    def __init__(self, docker: str, image: str, cache: Path, env: dict[str, str], command: list[str]) -> None:
        self.docker = docker
        self.name = f"memoturn-test-{uuid.uuid4().hex[:10]}"
        cache.mkdir(parents=True, exist_ok=True)
        cache.chmod(0o777)  # an emptyDir is world-writable; the container's uid owns nothing on the host
        args = [docker, "run", "--detach", "--name", self.name, *pod_security(), "--network", "host"]
        args += ["--volume", f"{cache}:{CACHE}", "--tmpfs", "/tmp:rw,size=256m"]
        for name, value in env.items():
            args += ["--env", f"{name}={value}"]
        subprocess.run([*args, image, *command], check=True, capture_output=True, text=True)

    def running(self) -> bool:
        state = subprocess.run(
            [self.docker, "inspect", "--format", "{{.State.Running}}", self.name], capture_output=True, text=True
        )
        return state.stdout.strip() == "true"

    def logs(self) -> str:
        out = subprocess.run([self.docker, "logs", "--tail", "40", self.name], capture_output=True, text=True)
        return (out.stdout + out.stderr)[-3000:]

    def wait_http(self, url: str, ok: object = None, timeout: float = 180) -> None:
        """Poll ``url`` until it answers 200 (and ``ok(response)`` holds, if given); the error
        names the last answer and the end of the container's log."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"container {self.name} exited:\n{self.logs()}")
            try:
                r = httpx.get(url, timeout=10)
                if r.status_code == 200 and (ok is None or ok(r)):  # type: ignore[operator]
                    return
                last = f"{r.status_code} {r.text[:300]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise TimeoutError(f"{url} not ready after {timeout}s (last: {last}); log:\n{self.logs()}")

    def close(self) -> None:
        subprocess.run([self.docker, "rm", "--force", self.name], capture_output=True)


def pod_security() -> list[str]:
    """The operator's securityContext in docker flags: runAsUser/runAsGroup 10001,
    readOnlyRootFilesystem, capabilities drop ALL, allowPrivilegeEscalation false."""
    return ["--user", "10001:10001", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for container in started:
        container.close()


def node_env(minio, prefix: str, port: int, **extra: str) -> dict[str, str]:
    return {
        "MEMOTURN_STORE_URL": minio.store_url(prefix),
        "MEMOTURN_ADMIN_TOKEN": TOKEN,
        "MEMOTURN_LISTEN": f"127.0.0.1:{port}",
        **minio.credentials,
        **extra,
    }


def test_a_node_container_restores_from_minio_after_its_container_is_removed(
    docker, image, minio, tmp_path, containers
):
    """Write a database (SQL, KV) and a memory (the image's own embedder) durably, remove the
    container with its cache, then a new container with an empty cache reads them all back
    from MinIO."""
    prefix = f"image-{uuid.uuid4().hex[:10]}"
    port = free_port()
    first = Container(docker, image, tmp_path / "cache-1", node_env(minio, prefix, port), ["memoturnd"])
    containers.append(first)
    first.wait_http(f"http://127.0.0.1:{port}/v1/ready")
    with Memoturn(f"http://127.0.0.1:{port}", token=TOKEN, durability="durable") as mt:
        mt.create_database("orders")
        db = mt.database("orders")
        db.sql("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)", ("INSERT INTO items VALUES (?, ?)", [1, "tea"]))
        db.kv_put("customer", {"name": "Alice", "tier": "gold"})
        alice = mt.profile("acme", "alice")
        added = alice.add("Alice prefers green tea in the morning", type="preference", subject="drink")
        assert added["memory"]["current"] is True
    # The cache (the emptyDir) got the node's files: the read-only root filesystem is not in the way.
    assert any((tmp_path / "cache-1").rglob("*")), "the node wrote nothing to its cache"
    first.close()

    port = free_port()
    second = Container(docker, image, tmp_path / "cache-2", node_env(minio, prefix, port), ["memoturnd"])
    containers.append(second)
    assert not any((tmp_path / "cache-2").iterdir())
    second.wait_http(f"http://127.0.0.1:{port}/v1/ready")
    with Memoturn(f"http://127.0.0.1:{port}", token=TOKEN) as mt:
        db = mt.database("orders")
        assert db.sql("SELECT id, name FROM items")["results"][0]["rows"] == [[1, "tea"]]
        assert db.kv_get("customer")["value"] == {"name": "Alice", "tier": "gold"}
        hits = mt.profile("acme", "alice").recall("what does Alice drink?")
        assert [h["memory"]["content"] for h in hits["results"]][:1] == ["Alice prefers green tea in the morning"]


def test_the_gateway_container_routes_to_a_node_container_through_etcd(
    docker, image, minio, etcd, tmp_path, containers
):
    """The cluster as the operator deploys it: a node container registered in etcd, a gateway
    container (``memoturn-gateway``) that finds it there and forwards a request to it."""
    etcd_prefix = f"/image-{uuid.uuid4().hex[:8]}"
    node_port, gateway_port = free_port(), free_port()
    cluster = {"MEMOTURN_ETCD_ENDPOINTS": etcd.endpoint, "MEMOTURN_ETCD_PREFIX": etcd_prefix}
    env = node_env(minio, etcd_prefix.strip("/"), node_port, MEMOTURN_NODE_ID="image-node-0", **cluster)
    node = Container(docker, image, tmp_path / "node", env, ["memoturnd"])
    containers.append(node)
    node.wait_http(f"http://127.0.0.1:{node_port}/v1/ready")
    gateway_env = {**cluster, "MEMOTURN_ADMIN_TOKEN": TOKEN}
    gateway_command = ["memoturn-gateway", "--listen", f"127.0.0.1:{gateway_port}"]
    gateway = Container(docker, image, tmp_path / "gateway", gateway_env, gateway_command)
    containers.append(gateway)
    gateway.wait_http(f"http://127.0.0.1:{gateway_port}/v1/gateway/health", ok=lambda r: r.json()["nodes"] >= 1)
    with Memoturn(f"http://127.0.0.1:{gateway_port}", token=TOKEN) as mt:
        mt.create_database("via-gateway")
        put = mt.database("via-gateway").kv_put("k", "v")
        assert mt.database("via-gateway").kv_get("k", min_txid=put.txid)["value"] == "v"


def test_the_image_runs_as_uid_10001_and_every_command_starts(docker, image):
    """The image's own USER is 10001 (what runAsNonRoot checks, with no --user given), and each
    console script of the one image answers --help under the pod's settings."""
    uid = subprocess.run(
        [docker, "run", "--rm", "--network", "host", image, "id", "-u"], capture_output=True, text=True
    )
    assert uid.returncode == 0 and uid.stdout.strip() == "10001", uid.stderr
    for command in ("memoturnd", "memoturn", "memoturn-gateway", "memoturn-operator"):
        run = subprocess.run(
            [docker, "run", "--rm", "--network", "host", *pod_security(), "--tmpfs", "/tmp", image, command, "--help"],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0 and "usage" in run.stdout.lower(), (command, run.stdout[-500:], run.stderr[-1500:])
