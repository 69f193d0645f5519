"""Where the e2e suite runs: its own control plane and node runtime, or a cluster it is given.

By default (and always in CI) a test module starts its own kube-apiserver, controller manager
and scheduler on the session's etcd, a node runtime (``MEMOTURN_E2E_KUBELET``: ``agent``, the
node agent of :mod:`support.kubelet`, whose pods are local processes; ``real``, the real kubelet
of :mod:`support.realkubelet`, whose pods are containers of ``$MEMOTURN_IMAGE``), and gives
tenants the session's etcd and MinIO. Real pods cannot reach the host's loopback, so with the
real kubelet tenants get an etcd and a MinIO of the module's own on the node's bridge address
(the control plane keeps the session's etcd), and run ``$MEMOTURN_IMAGE``.

An external cluster is used only when asked for explicitly, so a developer's own ``KUBECONFIG``
is never touched by ``make test`` by accident:

* ``MEMOTURN_E2E_KUBECONFIG=<path>``, or
* ``MEMOTURN_E2E_EXTERNAL=1``, which takes ``$KUBECONFIG`` (else ``~/.kube/config``).

What such a cluster cannot provide by itself is named by variables, and a missing one fails with
one line saying so: ``MEMOTURN_E2E_ETCD_ENDPOINTS`` (comma-separated etcd members) and
``MEMOTURN_E2E_S3_ENDPOINT``/``_BUCKET``/``_ACCESS_KEY_ID``/``_SECRET_ACCESS_KEY``, all reachable
from the cluster's pods and from this machine (the suite runs the operator as a local process,
which revokes leases in etcd and calls the pods). Tenants run ``MEMOTURN_E2E_IMAGE`` (default
``memoturn:e2e``). The suite reaches pods at their pod IPs; a pod IP this machine cannot reach
fails with one line naming the address. Tests that need the suite's own cluster (its audit log,
its node agent's processes, a fresh API server) carry ``@pytest.mark.own_cluster(reason)`` and
are skipped, with the reason printed, on an external one.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

EXTERNAL_KUBECONFIG = "MEMOTURN_E2E_KUBECONFIG"
EXTERNAL_FLAG = "MEMOTURN_E2E_EXTERNAL"
KUBELET = "MEMOTURN_E2E_KUBELET"
ETCD_ENDPOINTS = "MEMOTURN_E2E_ETCD_ENDPOINTS"
S3_VARS = ("ENDPOINT", "BUCKET", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY")
IMAGE = "MEMOTURN_E2E_IMAGE"
REAL_KUBELET = Path(__file__).resolve().parent / "realkubelet.py"
# The CRDs and cluster-wide objects a module installs; removed again on an external cluster.
MEMOTURN_CRDS = ("memorytenants.memoturn.io", "memorybranches.memoturn.io")
KOPF_CRDS = ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")  # the chart's too; removed only if it added them


class ClusterUnusable(Exception):
    """The cluster (or what it was given) cannot run the suite; the message is one line saying why."""


class NodeRuntime(Protocol):
    """What runs the pods of the suite's own cluster: ``support.kubelet.NodeAgent`` or the real kubelet."""

    def close(self) -> None: ...


def external_kubeconfig() -> str | None:
    """The kubeconfig of the cluster the suite was pointed at, or None to start its own."""
    explicit = os.environ.get(EXTERNAL_KUBECONFIG)
    if explicit:
        return explicit
    if os.environ.get(EXTERNAL_FLAG) == "1":
        return os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    return None


def kubelet_kind(kind: str | None = None) -> str:
    """``kind`` (default ``$MEMOTURN_E2E_KUBELET``, else ``agent``) if usable: ``agent``, or ``real``
    once ``tests/support/realkubelet.py`` exists."""
    kind = kind or os.environ.get(KUBELET) or "agent"
    if kind not in ("agent", "real"):
        raise ClusterUnusable(f"kubelet {kind!r}: use agent or real")
    if kind == "real" and not REAL_KUBELET.exists():
        raise ClusterUnusable(f"kubelet real needs {REAL_KUBELET} (the real kubelet, issue 19 item 2)")
    return kind


def suite_kubelet() -> str:
    """The node runtime for a scenario suite that runs on real pods where it can:
    ``$MEMOTURN_E2E_KUBELET`` if set, else ``real`` when the real kubelet's parts are given
    (``MEMOTURN_KUBELET_BIN``, ``MEMOTURN_CONTAINERD`` and ``MEMOTURN_IMAGE``, as ``make test``
    gives them), else the node agent."""
    chosen = os.environ.get(KUBELET)
    if chosen:
        return chosen
    parts = ("MEMOTURN_KUBELET_BIN", "MEMOTURN_CONTAINERD", "MEMOTURN_IMAGE")
    return "real" if all(os.environ.get(p) for p in parts) else "agent"


@dataclass(frozen=True)
class ObjectStore:
    """The S3 store tenants get: an endpoint their pods reach, a bucket, a key."""

    endpoint: str
    bucket: str
    access_key_id: str
    secret_access_key: str

    @property
    def credentials(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """The predicate's first truthy value; HTTP errors, refusals and missing keys count as not yet."""
    from memoturn.client import ProblemError

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (httpx.HTTPError, ProblemError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


def api_client(kubeconfig: str) -> tuple[str, httpx.Client]:
    """(server URL, an httpx client) for any kubeconfig the Kubernetes client reads (tokens, client
    certificates, exec plugins), verifying TLS unless the kubeconfig says not to."""
    from kubernetes import client, config

    c = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=c)
    headers = {}
    auth = (c.api_key or {}).get("authorization") or (c.api_key or {}).get("BearerToken")
    if auth:
        headers["Authorization"] = auth if auth.lower().startswith("bearer ") else f"Bearer {auth}"
    verify: Any = (c.ssl_ca_cert or True) if c.verify_ssl else False
    cert = (c.cert_file, c.key_file) if c.cert_file else None
    return c.host, httpx.Client(base_url=c.host, verify=verify, cert=cert, timeout=30, headers=headers)


class TestCluster:
    """The API (``api``, ``url``, ``kubeconfig``), what tenants need (``etcd_endpoints``, ``store``,
    ``image``), and whether it is the suite's own (``external``, ``control``, ``agent``)."""

    __test__ = False  # not a test class, whatever pytest's naming rules say

    def __init__(
        self,
        *,
        url: str,
        api: httpx.Client,
        kubeconfig: str,
        etcd_endpoints: list[str],
        store: ObjectStore,
        image: str,
        external: bool,
        control: Any = None,
        runtime: NodeRuntime | None = None,
        servers: Sequence[Any] = (),
    ) -> None:
        self.url, self.api, self.kubeconfig = url, api, kubeconfig
        self.etcd_endpoints, self.store, self.image = etcd_endpoints, store, image
        self.external, self.control, self.runtime = external, control, runtime
        self.servers = list(servers)  # the tenants' etcd and MinIO, when pods cannot reach the session's
        self._namespaces: list[str] = []
        self._pod_network_reached = False
        self._crds_before: set[str] = set()

    @property
    def agent(self) -> Any:
        """The node agent of the suite's own cluster (its pods are local processes), else None."""
        from support.kubelet import NodeAgent

        return self.runtime if isinstance(self.runtime, NodeAgent) else None

    @property
    def real_node(self) -> Any:
        """The real node of the suite's own cluster (:class:`support.realkubelet.RealNode`: its pods
        are containers, with addresses on its bridge), else None."""
        if self.runtime is None or self.agent is not None:
            return None
        return self.runtime

    def describe(self) -> str:
        if self.external:
            return f"external cluster {self.url} (kubeconfig {self.kubeconfig})"
        return f"the suite's own control plane {self.url}, node runtime {type(self.runtime).__name__}"

    # -- starting or connecting ----------------------------------------------------------------

    @classmethod
    def own(
        cls,
        etcd: Any,
        minio: Any,
        log_dir: str | os.PathLike[str],
        *,
        audit_groups: Sequence[str] = (),
        node_name: str = "worker-1",
        agent_env: Mapping[str, str] | None = None,
        ip_pool: Sequence[str] | None = None,
        kubelet: str | None = None,
    ) -> TestCluster:
        """A control plane on ``etcd`` and one node (``kubelet``: agent or real; default
        :func:`kubelet_kind`'s), logging under ``log_dir``; tenants get ``etcd`` and ``minio``."""
        from support.controlplane import ControlPlane

        kind = kubelet_kind(kubelet)
        control = ControlPlane(etcd.endpoint, os.fspath(log_dir), audit_groups=audit_groups)
        try:
            runtime = start_runtime(kind, control, node_name, Path(log_dir) / "pods", agent_env, ip_pool)
        except BaseException:
            control.close()
            raise
        servers: list[Any] = []
        host = getattr(runtime, "host", "127.0.0.1")
        image = os.environ.get(IMAGE, "memoturn:e2e")
        if not host.startswith("127."):
            # Real pods cannot reach the session's etcd and MinIO on 127.0.0.1: the tenants get
            # their own on the node's bridge address, and the image the node loaded.
            try:
                etcd, minio = start_servers_on(host, servers)
            except BaseException:
                stop_all([*servers, runtime, control])
                raise
            image = getattr(runtime, "image", image)
        creds = minio.credentials
        store = ObjectStore(minio.endpoint, minio.bucket, creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"])
        return cls(
            url=control.url,
            api=control.api,
            kubeconfig=control.kubeconfig,
            etcd_endpoints=[etcd.endpoint],
            store=store,
            image=image,
            external=False,
            control=control,
            runtime=runtime,
            servers=servers,
        )

    @classmethod
    def connect(cls, kubeconfig: str) -> TestCluster:
        """The cluster of ``kubeconfig``, with etcd and S3 from the environment (module docstring)."""
        if not os.path.exists(kubeconfig):
            raise ClusterUnusable(f"no kubeconfig at {kubeconfig} (from {EXTERNAL_KUBECONFIG} or KUBECONFIG)")
        etcd = [e.strip() for e in os.environ.get(ETCD_ENDPOINTS, "").split(",") if e.strip()]
        if not etcd:
            raise ClusterUnusable(
                f"external cluster: set {ETCD_ENDPOINTS} to etcd members its pods and this machine reach"
            )
        s3 = {v: os.environ.get(f"MEMOTURN_E2E_S3_{v}", "") for v in S3_VARS}
        missing = [f"MEMOTURN_E2E_S3_{v}" for v, value in s3.items() if not value]
        if missing:
            raise ClusterUnusable(f"external cluster: set {', '.join(missing)} (an S3 store its pods reach)")
        url, api = api_client(kubeconfig)
        try:
            version = api.get("/version")
        except httpx.HTTPError as exc:
            raise ClusterUnusable(f"external cluster {url} does not answer: {exc}") from None
        if version.status_code != 200:
            raise ClusterUnusable(f"external cluster {url}: GET /version answered {version.status_code}")
        for crd in MEMOTURN_CRDS:
            if api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}").status_code == 200:
                raise ClusterUnusable(
                    f"external cluster {url} already has {crd}: the suite installs its own chart and operator; "
                    "give it a cluster without Memoturn (e.g. localcluster up --bare)"
                )
        store = ObjectStore(s3["ENDPOINT"], s3["BUCKET"], s3["ACCESS_KEY_ID"], s3["SECRET_ACCESS_KEY"])
        image = os.environ.get(IMAGE, "memoturn:e2e")
        cluster = cls(
            url=url, api=api, kubeconfig=kubeconfig, etcd_endpoints=etcd, store=store, image=image, external=True
        )
        crds = api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").json().get("items", [])
        cluster._crds_before = {c["metadata"]["name"] for c in crds}
        return cluster

    # -- what tests do on it ---------------------------------------------------------------------

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> httpx.Response:
        """POST a namespace; on an external cluster it is deleted again by :meth:`close`."""
        r = self.api.post("/api/v1/namespaces", json={"metadata": {"name": name, "labels": dict(labels or {})}})
        if r.status_code == 201:
            self._namespaces.append(name)
        elif r.status_code == 409 and self.external:
            raise ClusterUnusable(f"external cluster {self.url} already has namespace {name}: delete it first")
        return r

    def kube(self) -> Any:
        """The operator's own API access (:class:`memoturn_operator.kube.Kube`) as this kubeconfig's user."""
        from kubernetes import client, config
        from memoturn_operator.kube import Kube, _bearer_token_fixed

        configuration = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration)
        return Kube(client.ApiClient(_bearer_token_fixed(configuration)))

    def reachable(self, address: str, port: int) -> tuple[str, int]:
        """``(address, port)``, on an external cluster once a first TCP connection from here succeeded.

        The suite and the operator it runs reach pods at their pod IPs; on a cluster whose pod
        network this machine does not route to, that fails with one line naming the address."""
        if not self.external or self._pod_network_reached:
            return address, port
        for _ in range(10):
            try:
                with socket.create_connection((address, port), timeout=1):
                    self._pod_network_reached = True
                    return address, port
            except OSError:
                time.sleep(0.3)
        raise ClusterUnusable(
            f"pod {address}:{port} is not reachable from this machine: the suite reaches pods by pod IP "
            "(route the cluster's pod network here, docs/kubernetes.md 'The suite on any cluster')"
        )

    def close(self) -> None:
        """The suite's own cluster stops; on an external one, what the module created goes."""
        if self.external:
            self._clean_external()
            self.api.close()
            return
        # The node first (its pods still use the servers while they stop), the control plane last.
        stop_all([self.runtime, *self.servers, self.control])

    def _clean_external(self) -> None:
        """Leaves the cluster as found: finalizers on Memoturn objects released (the operator may be
        gone), the module's namespaces, the chart's cluster-wide objects and the CRDs it added deleted."""
        for ns in self._namespaces:
            for kind in ("memorytenants", "memorybranches"):
                r = self.api.get(f"/apis/memoturn.io/v1alpha1/namespaces/{ns}/{kind}")
                for item in r.json().get("items", []) if r.status_code == 200 else []:
                    self.api.patch(
                        f"/apis/memoturn.io/v1alpha1/namespaces/{ns}/{kind}/{item['metadata']['name']}",
                        json={"metadata": {"finalizers": None}},
                        headers={"Content-Type": "application/merge-patch+json"},
                    )
            self.api.delete(f"/api/v1/namespaces/{ns}")
        selector = {"labelSelector": "app.kubernetes.io/name=memoturn"}
        for path in (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        ):
            for item in self.api.get(path, params=selector).json().get("items", []):
                self.api.delete(f"{path}/{item['metadata']['name']}")
        self.api.delete("/apis/kopf.dev/v1/clusterkopfpeerings/memoturn")
        added = [*MEMOTURN_CRDS, *(c for c in KOPF_CRDS if c not in self._crds_before)]
        for crd in added:
            self.api.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}")
        deadline = time.monotonic() + 180
        for ns in self._namespaces:
            while time.monotonic() < deadline and self.api.get(f"/api/v1/namespaces/{ns}").status_code != 404:
                time.sleep(1)
        for crd in added:
            path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"
            while time.monotonic() < deadline and self.api.get(path).status_code != 404:
                time.sleep(0.5)


def start_servers_on(host: str, started: list[Any]) -> tuple[Any, Any]:
    """(etcd, MinIO) serving on ``host`` (an address the run created, e.g. a real node's bridge),
    each appended to ``started`` as soon as it runs."""
    from support.etcd import EtcdServer
    from support.minio import MinioServer

    etcd = EtcdServer(host=host)
    started.append(etcd)
    etcd.start()
    minio = MinioServer(host=host)
    started.append(minio)
    minio.start()
    return etcd, minio


def stop_all(parts: Sequence[Any]) -> None:
    """``close()`` each part in order, all of them even if one fails; then the first failure."""
    first: BaseException | None = None
    for part in parts:
        if part is None:
            continue
        try:
            part.close()
        except BaseException as exc:  # noqa: BLE001 - stop the rest, then report
            first = first or exc
    if first is not None:
        raise first


def start_runtime(
    kind: str,
    control: Any,
    node_name: str,
    pods_dir: Path,
    agent_env: Mapping[str, str] | None,
    ip_pool: Sequence[str] | None,
) -> NodeRuntime:
    """The node runtime of the suite's own cluster, registered as ``node_name``."""
    if kind == "real":
        from support import realkubelet  # type: ignore[attr-defined]

        start = getattr(realkubelet, "node_runtime", None)
        if start is None:
            raise ClusterUnusable("support.realkubelet has no node_runtime(control, node_name, log_dir)")
        runtime: NodeRuntime = start(control, node_name, pods_dir)
        return runtime
    from support.kubelet import NodeAgent, default_ip_pool

    return NodeAgent(
        control.url,
        control.token,
        node_name,
        str(pods_dir),
        base_env={"HF_HUB_OFFLINE": "1", **(agent_env or {})},
        ip_pool=list(ip_pool) if ip_pool else default_ip_pool(),
    )


def open_cluster(request: Any, log_dir: Path, **own: Any) -> TestCluster:
    """For a module fixture: the external cluster if one is given, else the suite's own (``own``
    are :meth:`TestCluster.own`'s keywords). An unusable cluster fails the module with one line."""
    import pytest

    kubeconfig = external_kubeconfig()
    try:
        if kubeconfig:
            return TestCluster.connect(kubeconfig)
        etcd, minio = request.getfixturevalue("etcd"), request.getfixturevalue("minio")
        return TestCluster.own(etcd, minio, log_dir, **own)
    except ClusterUnusable as exc:
        reason = str(exc)
    pytest.fail(reason, pytrace=False)
