"""A platform team runs Memoturn on Kubernetes, end to end, on a real control plane.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built from upstream source),
MinIO, and a node agent that runs each scheduled pod as local processes on its own 127.x
address. The chart's CRDs, RBAC and peering object are installed from ``helm template``; the
operator runs as a local process with the chart's ServiceAccount token. Then, in the order a
team would: create a tenant and wait for Ready, write and read through the gateway Service,
check that reconciling is idempotent and repairs drift, roll a spec change, lose node pods
(operator up, and operator down), scale with the hot set, fork with a MemoryBranch, expire a
burner branch, delete the tenant.

When the real kubelet's parts are given (``MEMOTURN_KUBELET_BIN``, ``MEMOTURN_CONTAINERD`` and
``MEMOTURN_IMAGE``, as ``make test`` and so CI give them), or with ``MEMOTURN_E2E_KUBELET=real``,
the node is a real kubelet instead (``support.realkubelet``; ``MEMOTURN_E2E_KUBELET=agent`` keeps
the agent):
tenant pods are containers of ``$MEMOTURN_IMAGE`` with addresses on the node's bridge, the
gateway is found through its Service's EndpointSlices, probes are the kubelet's, and the tenants'
etcd and MinIO listen on the bridge address (docs/kubernetes.md, "Real pods").

The cluster comes from ``support.testcluster``: the one above, or with ``MEMOTURN_E2E_KUBECONFIG``
an existing one (docs/kubernetes.md, "The suite on any cluster"); the audit-log test runs only on
the suite's own. The scenarios share one cluster and run in file order. Figures (time to Ready, failover
times, reconciles per change) go to stdout, and to ``bench/results/e2e.json`` under ``make e2e`` (``MEMOTURN_E2E_RESULTS``).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from memoturn.client import Memoturn, ProblemError
from support.apply import apply, wait_established
from support.helm import render
from support.operator import Operator
from support.tenantworld import RESTRICTED, TenantWorld
from support.testcluster import TestCluster, open_cluster, suite_kubelet, wait_for

ROOT = Path(__file__).resolve().parents[2]
NS = "agents"
SYSTEM_NS = "memoturn-system"
TENANT = "acme"
GROUP_PATH = "/apis/memoturn.io/v1alpha1"
TTL = 6
FIGURES: dict[str, Any] = {}


class World(TenantWorld):
    """Everything the scenarios share."""

    def __init__(self, cluster: TestCluster, tmp: Path) -> None:
        super().__init__(cluster, tmp, namespace=NS, system_namespace=SYSTEM_NS, tenant=TENANT, prefix="e2e")
        self.account = ""
        # Real containers start slower than the node agent's processes (sandbox, CNI, image
        # layers): waits for pods are longer there; what is asserted is the same.
        self.patience = 3.0 if cluster.real_node is not None else 1.0

    # -- helpers ----------------------------------------------------------------------------

    def condition(self, type_: str, name: str = TENANT) -> dict[str, Any]:
        conditions = (self.tenant(name).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), {})

    def events(self, name: str, namespace: str = NS) -> list[dict[str, Any]]:
        """The Events about one object (the operator posts them on MemoryTenants and MemoryBranches)."""
        r = self.api.get(
            f"/api/v1/namespaces/{namespace}/events", params={"fieldSelector": f"involvedObject.name={name}"}
        )
        r.raise_for_status()
        return r.json()["items"]

    def reasons(self, name: str) -> set[tuple[str, str]]:
        return {(e["type"], e["reason"]) for e in self.events(name)}

    def ready(self) -> bool:
        t = self.tenant()
        s = t.get("status") or {}
        return s.get("phase") == "Ready" and s.get("observedGeneration") == t["metadata"]["generation"]

    def live_pods(self, component: str) -> list[dict[str, Any]]:
        return [p for p in self.pods(component) if not p["metadata"].get("deletionTimestamp")]

    def ready_pods(self, component: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.live_pods(component)
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))
        ]

    def start_operator(
        self,
        account: str | None = None,
        *,
        extra_args: tuple[str, ...] = (),
        log: str = "operator.log",
        resync: str = "2",
    ) -> Operator:
        """An operator replica as the chart runs it (``--all-namespaces --peering memoturn``)."""
        self.account = account or self.account
        operator = self.run_operator(
            self.account,
            args=["--all-namespaces", "--peering", "memoturn", *extra_args],
            env={
                "MEMOTURN_OPERATOR_RESYNC_SECONDS": resync,
                "MEMOTURN_OPERATOR_SCALE_COOLDOWN_SECONDS": "4",
                "MEMOTURN_OPERATOR_BRANCH_CHECK_SECONDS": "1",
            },
            log=log,
        )
        if log == "operator.log":
            self.operator = operator
        return operator

    def write_until_ok(self, key: str, timeout: float) -> float:
        """Seconds until a durable write through the gateway succeeds again."""
        t0 = time.monotonic()
        token = self.token()

        def attempt() -> bool:
            with Memoturn(self.gateway_url(), token=token, timeout=3, retries=0) as c:
                c.database(f"{TENANT}--failover").kv_put(key, time.time(), durability="durable")
            return True

        wait_for(attempt, timeout, f"a write to succeed after losing a node ({key})", interval=0.1)
        return time.monotonic() - t0


@pytest.fixture(scope="module")
def world(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    # The operator's requests (its ServiceAccount's groups) are audited: the API calls it costs.
    # Real pods when the real kubelet's parts are given (`make test`, CI), else the node agent.
    cluster = open_cluster(request, tmp, audit_groups=[f"system:serviceaccounts:{SYSTEM_NS}"], kubelet=suite_kubelet())
    w = World(cluster, tmp)
    yield w
    w.close()
    # Published only when asked (`make e2e`): a test run leaves the checkout as it found it.
    target = os.environ.get("MEMOTURN_E2E_RESULTS") or str(w.tmp / "e2e.json")
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    with open(target, "w") as f:
        f.write(json.dumps(FIGURES, indent=2))
    print("\ne2e figures:", json.dumps(FIGURES, indent=2), file=sys.stderr)


def test_a_platform_team_installs_the_chart_and_starts_the_operator(world):
    # Both namespaces enforce the "restricted" Pod Security profile: the real API server's
    # admission refuses any pod of the chart or the operator that regresses.
    for name in (SYSTEM_NS, NS):
        r = world.cluster.create_namespace(name, RESTRICTED)
        assert r.status_code == 201, r.text
    objects = render("memoturn", SYSTEM_NS)
    (account,) = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"]
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    assert {c["metadata"]["name"] for c in crds} >= {"memorytenants.memoturn.io", "memorybranches.memoturn.io"}
    for crd in crds:
        r = apply(world.api, world.discovery, crd)
        assert r.status_code in (200, 201), r.text
    for crd in crds:
        wait_established(world.api, crd["metadata"]["name"])
    # Everything but the operator's own Deployment: the operator runs as a local process here,
    # with the chart's ServiceAccount token, so the chart's RBAC is what it gets.
    for obj in objects:
        if obj["kind"] not in ("CustomResourceDefinition", "Deployment"):
            r = apply(world.api, world.discovery, obj, SYSTEM_NS)
            assert r.status_code in (200, 201), f"{obj['kind']} {obj['metadata']['name']}: {r.text}"
    op = world.start_operator(account)
    wait_for(lambda: "resuming" in op.log().lower() or op.total("memoturn_operator_reconciles") >= 0, 10, "operator up")


def test_a_tenant_becomes_ready(world):
    creds = world.store.credentials
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-credentials", "namespace": NS},
        "stringData": {
            "AWS_ACCESS_KEY_ID": creds["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": creds["AWS_SECRET_ACCESS_KEY"],
        },
    }
    assert world.api.post(f"/api/v1/namespaces/{NS}/secrets", json=secret).status_code == 201
    tenant = {
        "apiVersion": "memoturn.io/v1alpha1",
        "kind": "MemoryTenant",
        "metadata": {"name": TENANT, "namespace": NS},
        "spec": {
            "image": world.cluster.image,
            "nodes": {"minReplicas": 1, "maxReplicas": 2, "cacheSizeLimit": "1Gi", "hotPerNodeTarget": 6},
            "gateway": {"replicas": 1},
            "objectStore": {
                "bucket": world.store.bucket,
                "prefix": world.prefix,
                "endpoint": world.store.endpoint,
                "credentialsSecret": "s3-credentials",
            },
            "etcd": {"endpoints": world.etcd_endpoints},
            "leaseTtlSeconds": TTL,
            "tiers": {"hotIdleSeconds": 3},
        },
    }
    t0 = time.monotonic()
    r = apply(world.api, world.discovery, tenant)
    assert r.status_code == 201, r.text
    wait_for(world.ready, 120 * world.patience, "the tenant to be Ready")
    FIGURES["apply_to_ready_seconds"] = round(time.monotonic() - t0, 2)

    t = world.tenant()
    assert world.condition("Ready")["status"] == "True" and world.condition("Stalled")["status"] == "False"
    assert world.condition("Reconciling")["status"] == "False"
    # Each dependency is checked through the nodes' readiness, with the condition's bookkeeping.
    wait_for(lambda: world.condition("ObjectStoreReachable")["status"] == "True", 30, "the store to be reported")
    for kind in ("ObjectStoreReachable", "LeaseStoreReachable"):
        c = world.condition(kind)
        assert c["status"] == "True" and c["reason"] == "Reachable", c
        assert c["observedGeneration"] == t["metadata"]["generation"] and c["lastTransitionTime"]
    wait_for(
        lambda: {("Normal", "Created"), ("Normal", "Ready")} <= world.reasons(TENANT), 30, "Created and Ready Events"
    )
    assert not any(e["reason"] == "Logging" for e in world.events(TENANT))  # no log lines as Events
    assert t["status"]["readyNodes"] == 1
    assert t["status"]["endpoints"]["gateway"] == f"http://{TENANT}-memoturn-gateway.{NS}.svc:7400"
    # Everything it owns points back at it; nothing asks for a persistent volume.
    uid = t["metadata"]["uid"]
    for path in (
        f"/apis/apps/v1/namespaces/{NS}/deployments/{TENANT}-memoturn-node",
        f"/apis/apps/v1/namespaces/{NS}/deployments/{TENANT}-memoturn-gateway",
        f"/api/v1/namespaces/{NS}/services/{TENANT}-memoturn-gateway",
        f"/api/v1/namespaces/{NS}/configmaps/{TENANT}-memoturn",
        f"/api/v1/namespaces/{NS}/serviceaccounts/{TENANT}-memoturn",
        f"/api/v1/namespaces/{NS}/secrets/{TENANT}-memoturn-token",
        f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{TENANT}-memoturn-node",
    ):
        obj = world.api.get(path).json()
        assert [o["uid"] for o in obj["metadata"].get("ownerReferences", [])] == [uid], path
    assert world.api.get(f"/api/v1/namespaces/{NS}/persistentvolumeclaims").json()["items"] == []
    assert len(world.token()) >= 32


def test_a_tenant_with_a_wrong_store_key_says_why_in_its_conditions_and_events(world):
    """Wrong S3 credentials: the node is not ready, and the tenant says so with the store's cause
    (ObjectStoreReachable False, Ready False, Stalled True, a StoreUnreachable Warning); with the
    key fixed and the node pod replaced, it recovers and says that too."""
    name, secret = "broken", "broken-s3-credentials"
    wrong = {"AWS_ACCESS_KEY_ID": "no-such-key", "AWS_SECRET_ACCESS_KEY": "wrong-secret-key"}
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret, "namespace": NS}, "stringData": wrong}
    assert world.api.post(f"/api/v1/namespaces/{NS}/secrets", json=body).status_code == 201
    tenant = {
        "apiVersion": "memoturn.io/v1alpha1",
        "kind": "MemoryTenant",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "image": world.cluster.image,
            "nodes": {"minReplicas": 1, "maxReplicas": 1, "cacheSizeLimit": "1Gi"},
            "gateway": {"replicas": 1},
            "objectStore": {
                "bucket": world.store.bucket,
                "prefix": f"{world.prefix}-broken",
                "endpoint": world.store.endpoint,
                "credentialsSecret": secret,
            },
            "etcd": {"endpoints": world.etcd_endpoints},
            "leaseTtlSeconds": TTL,
        },
    }
    assert apply(world.api, world.discovery, tenant).status_code == 201
    store = wait_for(
        lambda: (lambda c: c if c.get("status") == "False" else None)(world.condition("ObjectStoreReachable", name)),
        120 * world.patience,
        "ObjectStoreReachable=False",
    )
    # The node's cause, in the store client's words (MinIO answered InvalidAccessKeyId, a 403).
    assert store["reason"] == "ObjectStoreUnusable" and "bad credentials" in store["message"], store
    assert f"{name}-memoturn-node-" in store["message"]  # which node, and the store's own words
    ready, stalled = world.condition("Ready", name), world.condition("Stalled", name)
    assert ready["status"] == "False" and ready["reason"] == "ObjectStoreUnreachable"
    assert stalled["status"] == "True" and world.tenant(name)["status"]["phase"] == "Degraded"
    assert world.condition("LeaseStoreReachable", name)["status"] == "True"  # etcd is fine
    since = store["lastTransitionTime"]
    wait_for(lambda: ("Warning", "StoreUnreachable") in world.reasons(name), 30, "a StoreUnreachable Warning")
    warning = next(e for e in world.events(name) if e["reason"] == "StoreUnreachable")
    assert "bad credentials" in warning["message"] and warning["involvedObject"]["kind"] == "MemoryTenant"
    time.sleep(5)  # more resyncs: an unchanged status keeps its transition time
    assert world.condition("ObjectStoreReachable", name)["lastTransitionTime"] == since

    # Fixed: the right key, and the node pod replaced (it reads the Secret when it starts).
    right = {k: world.store.credentials[k] for k in wrong}
    r = world.api.patch(
        f"/api/v1/namespaces/{NS}/secrets/{secret}",
        json={"stringData": right},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    for pod in world.api.get(
        f"/api/v1/namespaces/{NS}/pods", params={"labelSelector": f"app.kubernetes.io/instance={name}"}
    ).json()["items"]:
        world.api.delete(f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}")
    wait_for(
        lambda: (
            world.condition("ObjectStoreReachable", name).get("status") == "True"
            and world.condition("Ready", name).get("status") == "True"
        ),
        120 * world.patience,
        "the store reachable and the tenant Ready again",
    )
    assert world.condition("Stalled", name)["status"] == "False"
    wait_for(lambda: ("Normal", "StoreReachable") in world.reasons(name), 30, "a StoreReachable Event")
    assert world.api.delete(f"{GROUP_PATH}/namespaces/{NS}/memorytenants/{name}").status_code == 200
    wait_for(
        lambda: world.api.get(f"{GROUP_PATH}/namespaces/{NS}/memorytenants/{name}").status_code == 404,
        60 * world.patience,
        "the broken tenant to go",
    )


def test_an_agent_writes_and_reads_through_the_gateway_service(world):
    wait_for(world.gateway_url, 30 * world.patience, "a ready gateway endpoint")
    with world.client() as c:
        c.create_database(f"{TENANT}--alice")
        db = c.database(f"{TENANT}--alice")
        put = db.kv_put("greeting", "hello", durability="durable")
        assert db.kv_get("greeting", min_txid=put.txid).data["value"] == "hello"
        profile = c.profile(TENANT, "bob")
        profile.add("Bob prefers green tea in the morning", type="preference")
        hits = profile.recall("what does bob drink")
        assert "green tea" in hits.data["results"][0]["memory"]["content"]
    with Memoturn(world.gateway_url(), token="wrong", timeout=10, retries=0) as bad:
        with pytest.raises(ProblemError) as err:
            bad.database(f"{TENANT}--alice").kv_get("greeting")
        assert err.value.status == 401


def test_reconciling_is_idempotent_and_repairs_drift(world):
    op = world.operator
    resync = 2.0
    time.sleep(resync * 2)  # let anything in flight settle
    changes, reconciles = op.total("memoturn_operator_object_changes"), op.total("memoturn_operator_reconciles")
    time.sleep(resync * 3)
    assert op.total("memoturn_operator_reconciles") > reconciles  # the resync timer keeps running ...
    assert op.total("memoturn_operator_object_changes") == changes  # ... and changes nothing
    FIGURES["idle_reconciles_per_object_change"] = "no changes over 3 resyncs"

    # A dependent deleted by hand comes back within a moment.
    cm = f"/api/v1/namespaces/{NS}/configmaps/{TENANT}-memoturn"
    assert world.api.delete(cm).status_code == 200
    wait_for(lambda: world.api.get(cm).status_code == 200, 30, "the ConfigMap to be recreated")
    # A field the operator sets, edited by hand, is set back (fields it does not set are left alone).
    dep = f"/apis/apps/v1/namespaces/{NS}/deployments/{TENANT}-memoturn-gateway"
    r = world.api.patch(
        dep,
        json={"spec": {"replicas": 3}},
        headers={"Content-Type": "application/merge-patch+json"},
        params={"fieldManager": "someone"},
    )
    assert r.status_code == 200, r.text
    wait_for(lambda: world.api.get(dep).json()["spec"]["replicas"] == 1, 30, "the gateway Deployment to be repaired")


def _operator_calls(world: World, seconds: float) -> dict[str, int]:
    """The operator's API requests over the next ``seconds``, by verb and resource, from the audit log."""
    user = f"system:serviceaccount:{SYSTEM_NS}:{world.account}"
    start = datetime.now(UTC)
    time.sleep(seconds)
    end = datetime.now(UTC)
    counts: dict[str, int] = {}
    for e in world.cluster.control.audit_events():
        at = datetime.fromisoformat(e["requestReceivedTimestamp"].replace("Z", "+00:00"))
        if e["user"]["username"] == user and start <= at < end:
            ref = e.get("objectRef") or {}
            what = f"{e['verb']} {ref.get('resource', '')}" + (
                f"/{ref['subresource']}" if ref.get("subresource") else ""
            )
            counts[what] = counts.get(what, 0) + 1
    return counts


def _per_minute(counts: dict[str, int], seconds: float) -> float:
    return round(sum(counts.values()) * 60 / seconds, 1)


@pytest.mark.own_cluster("counts the operator's API calls in the suite's own kube-apiserver audit log")
def test_an_idle_tenant_costs_few_api_calls_and_fifty_cost_fifty_times_that(world):
    """With the default resync (10 s), an unchanged tenant is not re-applied: each resync reads
    its two Deployments and lists its node pods. Counted by kube-apiserver's audit log, for the
    one Ready tenant, then with 50 more idle tenants (in a namespace whose ResourceQuota admits
    no pods: the operator's own work per tenant, without 100 more processes on this machine)."""
    window = 60.0
    world.operator.stop()
    world.start_operator(resync="10")
    try:
        wait_for(world.ready, 60 * world.patience, "Ready under the restarted operator")
        time.sleep(15)  # resume handlers and their first applies are done
        one = _operator_calls(world, window)
        FIGURES["operator_api_calls_per_minute_one_idle_tenant"] = _per_minute(one, window)
        FIGURES["operator_api_calls_by_verb_one_idle_tenant"] = one
        # Nothing written for the tenant while it is idle (kopf's peering keep-alive aside).
        writes = [k for k in one if k.split()[0] in ("patch", "update", "create") and "kopfpeerings" not in k]
        assert not writes, one
        # ~3 reads per resync: 18 a minute; allow for kopf's own peering keep-alives and watch restarts.
        assert _per_minute(one, window) <= 40, one

        idle_ns = "idle-tenants"
        assert world.api.post("/api/v1/namespaces", json={"metadata": {"name": idle_ns}}).status_code == 201
        quota = {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
        assert world.api.post(f"/api/v1/namespaces/{idle_ns}/resourcequotas", json=quota).status_code == 201
        for i in range(50):
            body = {
                "apiVersion": "memoturn.io/v1alpha1",
                "kind": "MemoryTenant",
                "metadata": {"name": f"idle-{i}", "namespace": idle_ns},
                "spec": {
                    "image": world.cluster.image,
                    "gateway": {"replicas": 1},
                    "objectStore": {"bucket": world.store.bucket, "prefix": f"{world.prefix}-idle-{i}"},
                    "etcd": {"endpoints": world.etcd_endpoints},
                },
            }
            r = world.api.post(f"{GROUP_PATH}/namespaces/{idle_ns}/memorytenants", json=body)
            assert r.status_code == 201, r.text

        def all_reported() -> bool:
            items = world.api.get(f"{GROUP_PATH}/namespaces/{idle_ns}/memorytenants").json()["items"]
            return len(items) == 50 and all((t.get("status") or {}).get("observedGeneration") for t in items)

        wait_for(all_reported, 240 * world.patience, "a status on each of the 50 idle tenants", interval=1)
        time.sleep(30)  # their Deployments settle (ReplicaSets refused pods by the quota)
        fifty = _operator_calls(world, window)
        FIGURES["operator_api_calls_per_minute_51_idle_tenants"] = _per_minute(fifty, window)
        FIGURES["operator_api_calls_by_verb_51_idle_tenants"] = fifty
        print(f"\noperator API calls/min: 1 idle tenant {one}, 51 idle tenants {fifty}", file=sys.stderr)
        assert _per_minute(fifty, window) <= 51 * 40, fifty
        assert world.api.delete(f"/api/v1/namespaces/{idle_ns}").status_code == 200
    finally:
        world.operator.stop()
        world.start_operator()
    wait_for(world.ready, 60 * world.patience, "Ready")


def test_a_spec_change_rolls_the_node_pods(world):
    before = {p["metadata"]["name"] for p in world.live_pods("node")}
    changes0 = world.operator.total("memoturn_operator_object_changes")
    reconciles0 = world.operator.total("memoturn_operator_reconciles", trigger="update")
    r = world.api.patch(
        f"{GROUP_PATH}/namespaces/{NS}/memorytenants/{TENANT}",
        json={"spec": {"tiers": {"hotIdleSeconds": 2}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200
    generation = r.json()["metadata"]["generation"]
    wait_for(
        lambda: (
            {p["metadata"]["name"] for p in world.ready_pods("node")}.isdisjoint(before)
            and len(world.ready_pods("node")) == 1
        ),
        120 * world.patience,
        "new node pods to replace the old ones",
    )
    wait_for(world.ready, 60 * world.patience, "Ready at the new generation")
    assert world.tenant()["status"]["observedGeneration"] == generation
    cm = world.api.get(f"/api/v1/namespaces/{NS}/configmaps/{TENANT}-memoturn").json()
    assert cm["data"]["MEMOTURN_HOT_IDLE_SECONDS"] == "2"
    FIGURES["reconciles_for_one_spec_change"] = (
        world.operator.total("memoturn_operator_reconciles", trigger="update") - reconciles0
    )
    FIGURES["objects_changed_for_one_spec_change"] = world.operator.total("memoturn_operator_object_changes") - changes0
    with world.client() as c:  # the data survived the roll (object storage is the truth)
        assert c.database(f"{TENANT}--alice").kv_get("greeting").data["value"] == "hello"


def _node_owning(world: World, db: str) -> str:
    with world.client() as c:
        try:
            c.create_database(db)
        except ProblemError as exc:
            if exc.status != 409:
                raise
        c.database(db).kv_put("probe", 1, durability="durable")
    r = httpx.get(f"{world.gateway_url()}/v1/cluster/placement/{db}", timeout=5)
    return r.json()["owner"]


def _lose_node(world: World, how: str) -> float:
    db = f"{TENANT}--failover"
    owner = _node_owning(world, db)
    assert owner in {p["metadata"]["name"] for p in world.live_pods("node")}
    params = {"gracePeriodSeconds": 0} if how == "force" else {}
    node = world.cluster.real_node
    if how == "force" and node is not None:
        # The node agent SIGKILLs a force-deleted pod's processes; the real kubelet still sends
        # SIGTERM first, and the node would hand its leases back. Kill the container as the agent
        # does, so the operator (or, with it down, the lease TTL) has a crashed owner to deal with.
        (pod,) = [p for p in world.live_pods("node") if p["metadata"]["name"] == owner]
        container_id = pod["status"]["containerStatuses"][0]["containerID"].partition("://")[2]
        node.ctr("tasks", "kill", "--signal", "SIGKILL", container_id)
    r = world.api.delete(f"/api/v1/namespaces/{NS}/pods/{owner}", params=params)
    assert r.status_code == 200, r.text
    seconds = world.write_until_ok(f"after-{how}-{time.time()}", timeout=TTL * 4)
    wait_for(lambda: len(world.ready_pods("node")) >= 2, 90 * world.patience, "a replacement node pod")
    return seconds


def _set_nodes(world: World, **nodes: int) -> None:
    r = world.api.patch(
        f"{GROUP_PATH}/namespaces/{NS}/memorytenants/{TENANT}",
        json={"spec": {"nodes": nodes}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text


def test_losing_a_node_pod_moves_its_databases_in_seconds(world):
    # Two nodes, so the survivor can take over while the lost pod is replaced.
    _set_nodes(world, minReplicas=2)
    wait_for(lambda: len(world.ready_pods("node")) == 2 and world.ready(), 90 * world.patience, "two ready nodes")
    FIGURES["failover_graceful_delete_seconds"] = round(_lose_node(world, "graceful"), 2)
    wait_for(world.ready, 90 * world.patience, "Ready again")
    revoked0 = world.operator.total("memoturn_operator_lease_revocations")
    FIGURES["failover_force_delete_operator_up_seconds"] = round(_lose_node(world, "force"), 2)
    assert world.operator.total("memoturn_operator_lease_revocations") > revoked0
    wait_for(lambda: ("Normal", "FailoverAssisted") in world.reasons(TENANT), 30, "a FailoverAssisted Event")
    assert FIGURES["failover_force_delete_operator_up_seconds"] < TTL, "the operator should not wait for the TTL"
    wait_for(world.ready, 90 * world.patience, "Ready again")


def test_with_the_operator_down_the_lease_ttl_still_bounds_failover(world):
    world.operator.stop()
    try:
        seconds = _lose_node(world, "force")
        FIGURES["failover_force_delete_operator_down_seconds"] = round(seconds, 2)
        FIGURES["lease_ttl_seconds"] = TTL
        assert seconds <= TTL + 10
    finally:
        world.start_operator()
    wait_for(world.ready, 90 * world.patience, "Ready again")


def test_the_node_set_follows_the_hot_set(world):
    _set_nodes(world, minReplicas=1)
    wait_for(
        lambda: (
            world.api.get(f"/apis/apps/v1/namespaces/{NS}/deployments/{TENANT}-memoturn-node").json()["spec"][
                "replicas"
            ]
            == 1
            and len(world.live_pods("node")) == 1
        ),
        90 * world.patience,
        "back to one node (nothing hot)",
    )
    with world.client() as c:
        for i in range(16):  # hotPerNodeTarget is 6: 16 hot databases want 3 nodes, max is 2
            c.create_database(f"{TENANT}--hot{i}")
            c.database(f"{TENANT}--hot{i}").kv_put("k", i)
    # Keep them hot (an agent at work) until the node set has grown; then let them idle.
    busy = threading.Event()
    busy.set()

    def agents_at_work() -> None:
        while busy.is_set():
            try:
                with world.client() as c:
                    for i in range(16):
                        c.database(f"{TENANT}--hot{i}").kv_get("k")
            except (ProblemError, KeyError):
                pass  # a node moving under us: the next round goes through
            time.sleep(0.2)

    worker = threading.Thread(target=agents_at_work, daemon=True)
    worker.start()
    try:
        wait_for(
            lambda: (
                world.api.get(f"/apis/apps/v1/namespaces/{NS}/deployments/{TENANT}-memoturn-node").json()["spec"][
                    "replicas"
                ]
                == 2
            ),
            60 * world.patience,
            "a scale-out to maxReplicas",
        )
        wait_for(lambda: len(world.ready_pods("node")) == 2 and world.ready(), 90 * world.patience, "two ready nodes")
    finally:
        busy.clear()
        worker.join()
    # Idle: the hot set drains to warm after hotIdleSeconds, the operator scales back in gracefully.
    wait_for(
        lambda: (
            world.api.get(f"/apis/apps/v1/namespaces/{NS}/deployments/{TENANT}-memoturn-node").json()["spec"][
                "replicas"
            ]
            == 1
        ),
        90 * world.patience,
        "a scale-in to minReplicas",
    )
    wait_for(lambda: len(world.live_pods("node")) == 1 and world.ready(), 90 * world.patience, "one node again")
    with world.client() as c:
        for i in range(16):
            assert c.database(f"{TENANT}--hot{i}").kv_get("k").data["value"] == i  # nothing lost by the drain
    assert world.operator.total("memoturn_operator_scale_events") >= 2  # out, then in
    scaled = [e["message"] for e in world.events(TENANT) if e["reason"] == "Scaled"]
    assert any("1 -> 2" in m for m in scaled) and any("2 -> 1" in m for m in scaled), scaled


def _branch(world: World, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": "memoturn.io/v1alpha1",
        "kind": "MemoryBranch",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"tenant": TENANT, "database": f"{TENANT}--alice", **spec},
    }
    r = apply(world.api, world.discovery, body)
    assert r.status_code == 201, r.text
    path = f"{GROUP_PATH}/namespaces/{NS}/memorybranches/{name}"
    return wait_for(
        lambda: (lambda b: b if (b.get("status") or {}).get("phase") in ("Ready", "Failed", "Expired") else None)(
            world.api.get(path).json()
        ),
        60 * world.patience,
        f"MemoryBranch {name} to settle",
    )


def test_a_memory_branch_forks_and_the_fork_is_readable(world):
    with world.client() as c:
        head = c.database(f"{TENANT}--alice").kv_put("greeting", "hello again", durability="durable").txid
    b = _branch(world, "experiment", {"branch": "experiment", "parent": {"txid": head}})
    assert b["status"]["phase"] == "Ready" and b["status"]["resolvedTxid"] == head
    wait_for(lambda: ("Normal", "BranchForked") in world.reasons("experiment"), 30, "a BranchForked Event")
    with world.client() as c:
        fork = c.database(f"{TENANT}--alice", "experiment")
        assert fork.kv_get("greeting").data["value"] == "hello again"
        fork.kv_put("greeting", "only on the fork")
        assert c.database(f"{TENANT}--alice").kv_get("greeting").data["value"] == "hello again"
    # Deleting the resource deletes the branch (finalizer).
    assert world.api.delete(f"{GROUP_PATH}/namespaces/{NS}/memorybranches/experiment").status_code == 200
    wait_for(
        lambda: world.api.get(f"{GROUP_PATH}/namespaces/{NS}/memorybranches/experiment").status_code == 404,
        60 * world.patience,
        "the MemoryBranch to go",
    )
    with world.client() as c:
        names = [x["branch"] for x in c.database(f"{TENANT}--alice").branches().data["branches"]]
        assert "experiment" not in names
    bad = _branch(world, "from-nowhere", {"branch": "nowhere", "parent": {"checkpoint": "no-such-checkpoint"}})
    assert bad["status"]["phase"] == "Failed" and bad["status"]["conditions"][0]["status"] == "False"


def test_a_burner_branch_expires(world):
    b = _branch(world, "burner", {"branch": "burner", "ttlSeconds": 3})
    assert b["status"]["phase"] == "Ready" and b["status"]["expiryTime"]
    path = f"{GROUP_PATH}/namespaces/{NS}/memorybranches/burner"
    wait_for(
        lambda: world.api.get(path).json()["status"]["phase"] == "Expired",
        60 * world.patience,
        "the burner branch to expire",
    )
    wait_for(lambda: ("Normal", "BranchExpired") in world.reasons("burner"), 30, "a BranchExpired Event")
    with world.client() as c:
        with pytest.raises(ProblemError) as err:
            c.database(f"{TENANT}--alice", "burner").kv_get("greeting")
        assert err.value.status == 404
    assert world.api.delete(path).status_code == 200
    wait_for(lambda: world.api.get(path).status_code == 404, 30, "the expired MemoryBranch to be deletable")


def test_a_standby_operator_acts_only_once_the_active_one_is_gone(world):
    active = world.operator
    # Below the active one's priority: kopf starts it paused, and it stays so while the active
    # one keeps its peering record alive.
    standby = world.start_operator(extra_args=("--priority", "0"), log="operator-standby.log")
    try:
        cm = f"/api/v1/namespaces/{NS}/configmaps/{TENANT}-memoturn"
        assert world.api.delete(cm).status_code == 200
        wait_for(lambda: world.api.get(cm).status_code == 200, 30, "the active operator to repair the ConfigMap")
        time.sleep(3)  # more than a resync: a standby that acted would have counted it by now
        assert standby.total("memoturn_operator_reconciles") == 0, "the paused standby acted"
        assert "Resuming operations" not in standby.log()

        active.stop()  # graceful: it leaves the peering, the standby resumes at once
        wait_for(
            lambda: "Resuming operations after the pause" in standby.log(), 60 * world.patience, "the standby to resume"
        )
        assert world.api.delete(cm).status_code == 200
        wait_for(lambda: world.api.get(cm).status_code == 200, 30, "the former standby to repair the ConfigMap")
        assert standby.total("memoturn_operator_reconciles") > 0
    finally:
        active.stop()
        standby.stop()
        world.start_operator()
    wait_for(world.ready, 60 * world.patience, "Ready")


def test_deleting_the_tenant_cleans_everything_up(world):
    pods = world.live_pods("node") + world.live_pods("gateway")
    r = world.api.delete(f"{GROUP_PATH}/namespaces/{NS}/memorytenants/{TENANT}")
    assert r.status_code == 200
    wait_for(
        lambda: world.api.get(f"{GROUP_PATH}/namespaces/{NS}/memorytenants/{TENANT}").status_code == 404,
        60 * world.patience,
        "the tenant to go",
    )
    for path in (
        f"/apis/apps/v1/namespaces/{NS}/deployments",
        f"/api/v1/namespaces/{NS}/services",
        f"/api/v1/namespaces/{NS}/pods",
        f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets",
    ):
        wait_for(lambda: world.api.get(path).json()["items"] == [], 120 * world.patience, f"{path} to be empty")
    if world.agent is not None:  # the suite's own node agent: its processes are gone too
        for p in pods:
            proc = world.agent.process(NS, p["metadata"]["name"])
            assert proc is None or proc.poll() is not None
    node = world.cluster.real_node
    if node is not None:  # the real kubelet: containerd stopped the pods' containers
        ids = {
            s["containerID"].partition("://")[2]
            for p in pods
            for s in (p.get("status") or {}).get("containerStatuses") or []
            if s.get("containerID")
        }
        assert ids
        wait_for(lambda: not set(node.tasks()) & ids, 60, "containerd to stop the tenant's containers")
    assert world.operator.proc.poll() is None, "the operator kept running"
