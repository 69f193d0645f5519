"""Tenant pods as real containers: the project's image under a real kubelet (containerd, runc,
CNI bridge), on the same real control plane as the rest of the e2e suite.

What a platform team does, on a node that is a real node (``support.realkubelet``): install the
chart's CRDs and RBAC, start the operator with the chart's ServiceAccount, apply a MemoryTenant
in a namespace that enforces the ``restricted`` Pod Security profile, and wait for Ready; the
node and gateway pods are containers containerd runs from ``$MEMOTURN_IMAGE``, as uid 10001, in
network namespaces of their own. Then write and read through the gateway (its pod IP, and its
Service's ClusterIP through kube-proxy), delete the owner's pod with the operator up, and kill
the owner's container with the operator down: writes succeed again on the survivor and what was
acknowledged before is read back (the survivor restores it from MinIO).

etcd and MinIO for the pods listen on the node's bridge address (pods cannot reach the host's
loopback). Figures (apply → Ready, failovers) are printed. Needs root, the image, containerd and
the kubelet: a failure under ``$CI``, a skip elsewhere.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from memoturn.client import Memoturn, ProblemError
from support.apply import Discovery, apply, wait_established
from support.controlplane import ControlPlane
from support.etcd import EtcdServer
from support.helm import render
from support.minio import MinioServer
from support.operator import Operator, service_account_kubeconfig
from support.processes import _missing
from support.realkubelet import RealNode

# It starts its own control plane and node (root, containerd): never on a cluster it is given.
pytestmark = pytest.mark.own_cluster("starts its own control plane and a real kubelet (root, containerd, CNI)")

NS = "agents"
SYSTEM_NS = "memoturn-system"
TENANT = "acme"
GROUP_PATH = "/apis/memoturn.io/v1alpha1"
TTL = 6
FIGURES: dict[str, Any] = {}


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (httpx.HTTPError, ProblemError, KeyError, RuntimeError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


class BridgeMinio(MinioServer):
    """MinIO on the node's bridge address, where pods reach it (the console stays on loopback)."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host
        self.endpoint = f"http://{host}:{self.port}"

    def command(self) -> list[str]:
        loopback = f"127.0.0.1:{self.port}"
        return [f"{self.host}:{self.port}" if arg == loopback else arg for arg in super().command()]

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.endpoint}{self.health_path}", timeout=1) as response:
            return response.status == 200


def the_image() -> tuple[str, str]:
    """(docker client, image tag): the image ``.ci/build-image`` built, present in the engine."""
    docker = os.environ.get("MEMOTURN_DOCKER_BIN") or "docker"
    image = os.environ.get("MEMOTURN_IMAGE", "")
    if not image:
        _missing("MEMOTURN_IMAGE is not set: MEMOTURN_IMAGE=$(bash .ci/build-image)")
    try:
        found = subprocess.run([docker, "image", "inspect", image], capture_output=True, timeout=60).returncode == 0
    except OSError:
        found = False
    if not found:
        _missing(f"image {image} not in the Docker engine ({docker}): run .ci/build-image")
    return docker, image


class World:
    def __init__(self, etcd: EtcdServer, tmp: Path) -> None:
        docker, self.image = the_image()
        self.tmp = tmp
        self.control = ControlPlane(etcd.endpoint, str(tmp))
        self.api = self.control.api
        self.discovery = Discovery(self.api)
        self.kube = self.control.kube()
        self.node: RealNode | None = None
        self.etcd: EtcdServer | None = None
        self.minio: BridgeMinio | None = None
        self.operator: Operator | None = None
        self.account = ""
        t0 = time.monotonic()
        self.node = RealNode(
            self.control.url, self.control.token, tmp / "node", image=self.image, docker=docker, kube_proxy=True
        ).start()
        FIGURES["node_start_seconds"] = round(time.monotonic() - t0, 2)
        FIGURES["node_start_steps_seconds"] = self.node.timings
        self.etcd = EtcdServer(host=self.node.host).start()
        self.minio = BridgeMinio(self.node.host).start()

    def close(self) -> None:
        errors = []
        if self.operator:
            self.operator.stop()
        for part in (self.node, self.minio, self.etcd):
            if part is not None:
                try:
                    part.close()
                except Exception as exc:  # noqa: BLE001 - stop the rest, then report
                    errors.append(repr(exc))
        self.control.close()
        assert not errors, errors

    # -- what the scenarios read -------------------------------------------------------------

    def tenant(self) -> dict[str, Any]:
        r = self.api.get(f"{GROUP_PATH}/namespaces/{NS}/memorytenants/{TENANT}")
        r.raise_for_status()
        return r.json()

    def ready(self) -> bool:
        t = self.tenant()
        s = t.get("status") or {}
        return s.get("phase") == "Ready" and s.get("observedGeneration") == t["metadata"]["generation"]

    def ready_pods(self, component: str) -> list[dict[str, Any]]:
        sel = f"app.kubernetes.io/instance={TENANT},app.kubernetes.io/component={component}"
        pods = self.api.get(f"/api/v1/namespaces/{NS}/pods", params={"labelSelector": sel}).json()["items"]
        return [
            p
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
        ]

    def gateway_url(self) -> str:
        endpoints = self.kube.ready_endpoints(NS, f"{TENANT}-memoturn-gateway")
        if not endpoints:
            raise KeyError("no ready gateway endpoint")
        address, port = endpoints[0]
        return f"http://{address}:{port}"

    def token(self) -> str:
        secret = self.api.get(f"/api/v1/namespaces/{NS}/secrets/{TENANT}-memoturn-token").json()
        return base64.b64decode(secret["data"]["admin-token"]).decode()

    def start_operator(self) -> Operator:
        kubeconfig = service_account_kubeconfig(
            self.api, self.control.url, SYSTEM_NS, self.account, str(self.tmp / "operator.kubeconfig")
        )
        self.operator = Operator(
            kubeconfig,
            str(self.tmp / "operator.log"),
            env={"MEMOTURN_OPERATOR_RESYNC_SECONDS": "2", "MEMOTURN_OPERATOR_SCALE_COOLDOWN_SECONDS": "4"},
        ).start()
        return self.operator

    def owner(self, db: str) -> str:
        r = httpx.get(f"{self.gateway_url()}/v1/cluster/placement/{db}", timeout=5)
        r.raise_for_status()
        return str(r.json()["owner"])

    def write_until_ok(self, db: str, key: str, timeout: float, not_by: str | None = None) -> float:
        """Seconds until a durable write through the gateway succeeds (with ``not_by``: one that
        an owner other than that pod took; a pod deleted through the API keeps serving until its
        kubelet has stopped it, and a write it takes meanwhile is acknowledged, durable, and not
        yet the failover)."""
        t0 = time.monotonic()
        token = self.token()

        def attempt() -> bool:
            with Memoturn(self.gateway_url(), token=token, timeout=3, retries=0) as c:
                c.database(db).kv_put(key, key, durability="durable")
            return not_by is None or self.owner(db) not in (not_by, "None")

        wait_for(attempt, timeout, f"a write to {db} to succeed ({key})", interval=0.1)
        return time.monotonic() - t0


@pytest.fixture(scope="module")
def world(etcd, tmp_path_factory):
    w = World(etcd, tmp_path_factory.mktemp("real-pods"))
    try:
        yield w
    finally:
        w.close()
        print("\nreal pods figures:", json.dumps(FIGURES, indent=2), file=sys.stderr)


def test_a_tenant_in_a_restricted_namespace_runs_as_real_containers(world):
    restricted = {"pod-security.kubernetes.io/enforce": "restricted"}
    for name in (SYSTEM_NS, NS):
        r = world.api.post("/api/v1/namespaces", json={"metadata": {"name": name, "labels": restricted}})
        assert r.status_code == 201, r.text
    objects = render("memoturn", SYSTEM_NS)
    (world.account,) = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"]
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    for crd in crds:
        assert apply(world.api, world.discovery, crd).status_code in (200, 201)
    for crd in crds:
        wait_established(world.api, crd["metadata"]["name"])
    for obj in objects:  # the operator runs as a local process with the chart's ServiceAccount
        if obj["kind"] not in ("CustomResourceDefinition", "Deployment"):
            r = apply(world.api, world.discovery, obj, SYSTEM_NS)
            assert r.status_code in (200, 201), f"{obj['kind']} {obj['metadata']['name']}: {r.text}"
    world.start_operator()

    creds = world.minio.credentials
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-credentials", "namespace": NS},
        "stringData": {k: creds[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
    }
    assert world.api.post(f"/api/v1/namespaces/{NS}/secrets", json=secret).status_code == 201
    tenant = {
        "apiVersion": "memoturn.io/v1alpha1",
        "kind": "MemoryTenant",
        "metadata": {"name": TENANT, "namespace": NS},
        "spec": {
            "image": world.image,
            # Two nodes: when the owner goes, the survivor takes its databases over.
            "nodes": {"minReplicas": 2, "maxReplicas": 2, "cacheSizeLimit": "1Gi"},
            "gateway": {"replicas": 1},
            "objectStore": {
                "bucket": world.minio.bucket,
                "prefix": "real-pods",
                "endpoint": world.minio.endpoint,
                "credentialsSecret": "s3-credentials",
            },
            "etcd": {"endpoints": [world.etcd.endpoint]},
            "leaseTtlSeconds": TTL,
        },
    }
    t0 = time.monotonic()
    r = apply(world.api, world.discovery, tenant)
    assert r.status_code == 201, r.text
    wait_for(world.ready, 300, "the tenant to be Ready", interval=0.5)
    FIGURES["apply_to_ready_seconds"] = round(time.monotonic() - t0, 2)
    wait_for(lambda: len(world.ready_pods("node")) == 2 and world.ready_pods("gateway"), 120, "all pods ready")

    # Each pod: a container containerd runs from the image, as uid 10001, in its own network namespace.
    tasks = world.node.tasks()
    for component in ("node", "gateway"):
        for pod in world.ready_pods(component):
            assert pod["spec"]["nodeName"] == world.node.name
            assert pod["status"]["podIP"].startswith(world.node.host.rsplit(".", 1)[0] + ".")
            (status,) = pod["status"]["containerStatuses"]
            runtime, _, container_id = status["containerID"].partition("://")
            assert runtime == "containerd", status
            assert status["imageID"] and world.image.split(":")[-1] in status["image"], status
            pid, state = tasks[container_id]
            assert state == "RUNNING"
            uid_line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Uid:"))
            assert uid_line.split()[1:] == ["10001"] * 4, uid_line
            assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
            info = json.loads(world.node.ctr("containers", "info", container_id))
            assert info["Image"].endswith(world.image), info["Image"]
            assert info["Spec"]["root"]["readonly"] is True
    # The gateway Service's endpoints are the pod's real address, kept by the EndpointSlice controller.
    (gateway,) = world.ready_pods("gateway")
    wait_for(
        lambda: any(
            gateway["status"]["podIP"] in e["addresses"]
            for s in world.api.get(
                f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices",
                params={"labelSelector": f"kubernetes.io/service-name={TENANT}-memoturn-gateway"},
            ).json()["items"]
            for e in s.get("endpoints") or []
        ),
        60,
        "the gateway's EndpointSlice to list its pod IP",
    )


def test_an_agent_writes_and_reads_through_the_gateway(world):
    wait_for(world.gateway_url, 30, "a ready gateway endpoint")
    with Memoturn(world.gateway_url(), token=world.token(), timeout=10, retries=0) as c:
        c.create_database(f"{TENANT}--alice")
        db = c.database(f"{TENANT}--alice")
        put = db.kv_put("greeting", "hello", durability="durable")
        assert db.kv_get("greeting", min_txid=put.txid).data["value"] == "hello"
    # The Service's ClusterIP, through kube-proxy's rules, reaches the same gateway.
    svc = world.api.get(f"/api/v1/namespaces/{NS}/services/{TENANT}-memoturn-gateway").json()["spec"]
    url = f"http://{svc['clusterIP']}:{svc['ports'][0]['port']}"
    with Memoturn(url, token=world.token(), timeout=10, retries=0) as c:
        value = wait_for(
            lambda: c.database(f"{TENANT}--alice").kv_get("greeting").data["value"], 60, "a read via the ClusterIP"
        )
        assert value == "hello"


def _acknowledged_writes(world: World, db: str, prefix: str, n: int = 20) -> dict[str, str]:
    with Memoturn(world.gateway_url(), token=world.token(), timeout=10, retries=0) as c:
        try:
            c.create_database(db)
        except ProblemError as exc:
            if exc.status != 409:
                raise
        written = {}
        for i in range(n):
            c.database(db).kv_put(f"{prefix}-{i}", f"v{i}", durability="durable")
            written[f"{prefix}-{i}"] = f"v{i}"
    return written


def _read_back(world: World, db: str, written: dict[str, str]) -> None:
    with Memoturn(world.gateway_url(), token=world.token(), timeout=10, retries=0) as c:
        for key, value in written.items():
            assert c.database(db).kv_get(key).data["value"] == value, key


def test_deleting_the_owner_pod_with_the_operator_up_moves_its_databases(world):
    db = f"{TENANT}--failover"
    written = _acknowledged_writes(world, db, "before-delete")
    owner = world.owner(db)
    assert owner in {p["metadata"]["name"] for p in world.ready_pods("node")}
    r = world.api.delete(f"/api/v1/namespaces/{NS}/pods/{owner}")
    assert r.status_code == 200, r.text
    seconds = world.write_until_ok(db, f"after-delete-{time.time()}", timeout=TTL * 10, not_by=owner)
    FIGURES["failover_owner_pod_deleted_operator_up_seconds"] = round(seconds, 2)
    new_owner = world.owner(db)
    assert new_owner != owner
    _read_back(world, db, written)  # the survivor restored them from MinIO
    wait_for(lambda: len(world.ready_pods("node")) == 2 and world.ready(), 180, "a replacement node pod, Ready")


def test_killing_the_owner_container_with_the_operator_down_fails_over_within_the_lease_ttl(world):
    db = f"{TENANT}--failover"
    written = _acknowledged_writes(world, db, "before-kill")
    owner = world.owner(db)
    (pod,) = [p for p in world.ready_pods("node") if p["metadata"]["name"] == owner]
    container_id = pod["status"]["containerStatuses"][0]["containerID"].partition("://")[2]
    restarts = pod["status"]["containerStatuses"][0]["restartCount"]
    world.operator.stop()
    world.operator = None
    try:
        world.node.ctr("tasks", "kill", "--signal", "SIGKILL", container_id)
        seconds = world.write_until_ok(db, f"after-kill-{time.time()}", timeout=TTL * 10)
        FIGURES["failover_owner_container_killed_operator_down_seconds"] = round(seconds, 2)
        FIGURES["lease_ttl_seconds"] = TTL
        # Who took over: the survivor, or the killed pod's container restarted by the kubelet.
        FIGURES["owner_after_kill"] = "restarted container" if world.owner(db) == owner else "survivor"
        _read_back(world, db, written)

        def restarted() -> bool:
            p = world.api.get(f"/api/v1/namespaces/{NS}/pods/{owner}").json()
            return p["status"]["containerStatuses"][0]["restartCount"] > restarts

        wait_for(restarted, 120, "the kubelet to restart the killed container")
    finally:
        world.start_operator()
    wait_for(lambda: len(world.ready_pods("node")) == 2 and world.ready(), 180, "Ready again")


def test_deleting_the_tenant_removes_its_containers(world):
    before = set(world.node.tasks())
    assert world.api.delete(f"{GROUP_PATH}/namespaces/{NS}/memorytenants/{TENANT}").status_code == 200
    wait_for(
        lambda: world.api.get(f"{GROUP_PATH}/namespaces/{NS}/memorytenants/{TENANT}").status_code == 404,
        120,
        "the tenant to go",
    )
    wait_for(lambda: not world.api.get(f"/api/v1/namespaces/{NS}/pods").json()["items"], 120, "the tenant's pods to go")
    wait_for(lambda: not set(world.node.tasks()) & before, 60, "containerd to stop the tenant's containers")
