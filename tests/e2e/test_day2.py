"""Day 2 on a real control plane: ``helm install`` and ``helm test``, ``kubectl memoturn`` (status,
checkpoint, fork, rewind, report, drain, release-finalizers), and MemoryBranch finalizers when the
operator is removed before its objects.

kube-apiserver, kube-controller-manager and kube-scheduler built from upstream source; a node
agent that runs every pod as local processes (``support.kubelet``); real etcd and MinIO. The
chart is installed by ``helm install`` (its CRDs too) with the operator Deployment at 0 replicas:
the operator runs as a local process with the chart's ServiceAccount token, as in
``test_a_platform_team_runs_memoturn``. ``helm test`` runs the chart's hook Pod for real: the node
agent runs its ``sh -c`` with the venv's ``memoturn`` CLI, and the tenant namespace enforces the
restricted Pod Security profile, so admission checks the Pod's security context. The one
difference from a cluster: the test reaches the gateway by a pod address (``test.url``), since
there is no cluster DNS for the Service name. The cluster comes from ``support.testcluster`` (an
existing one with ``MEMOTURN_E2E_KUBECONFIG``), the shared set-up from ``support.tenantworld``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from support.apply import apply
from support.helm import CHART, helm
from support.tenantworld import RESTRICTED, TenantWorld
from support.testcluster import TestCluster, open_cluster, wait_for

NS, SYSTEM_NS, TENANT, RELEASE = "agents", "memoturn-system", "acme", "memoturn"
GROUP_PATH = "/apis/memoturn.io/v1alpha1"
BIN = os.path.dirname(sys.executable)
PLUGIN = os.path.join(BIN, "kubectl-memoturn")


class Day2(TenantWorld):
    client_timeout, client_retries = 15, 2

    def __init__(self, cluster: TestCluster, tmp: Path) -> None:
        super().__init__(cluster, tmp, namespace=NS, system_namespace=SYSTEM_NS, tenant=TENANT, prefix="day2")

    def start_operator(self) -> None:
        self.operator = self.run_operator(
            RELEASE,
            env={"MEMOTURN_OPERATOR_RESYNC_SECONDS": "2", "MEMOTURN_OPERATOR_BRANCH_CHECK_SECONDS": "1"},
            log="operator.log",
        )

    def stop_operator(self) -> None:
        assert self.operator is not None
        self.operator.stop()
        self.operator = None

    def ready(self, nodes: int) -> bool:
        t = self.tenant()
        s = t.get("status") or {}
        return (
            s.get("phase") == "Ready"
            and s.get("readyNodes") == nodes
            and s.get("observedGeneration") == t["metadata"]["generation"]
        )

    def plugin(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``kubectl memoturn ARGS`` as kubectl runs it: the executable, the caller's kubeconfig in the env."""
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        return subprocess.run([PLUGIN, "-n", NS, *args], env=env, capture_output=True, text=True, timeout=300)

    def node_pods(self) -> list[dict[str, Any]]:
        return self.pods("node")

    def branch_names(self, database: str) -> list[str]:
        with self.client() as c:
            return [b["branch"] for b in c.database(database).branches().data["branches"]]


@pytest.fixture(scope="module")
def day2(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("day2")
    cluster = open_cluster(
        request,
        tmp,
        # The venv's console scripts (memoturn, memoturnd, ...) first on PATH: the helm test's `sh -c` finds them.
        agent_env={"PATH": f"{BIN}:{os.environ.get('PATH', os.defpath)}"},
        # Its own loopback range: another suite's node agent running at the same time (the
        # default pool is 127.0.20.x) would otherwise hand out the same pod addresses.
        ip_pool=[f"127.0.23.{i}" for i in range(1, 255)],
    )
    w = Day2(cluster, tmp)
    yield w
    w.close()


def test_helm_installs_the_chart_and_a_tenant_becomes_ready(day2):
    for name in (SYSTEM_NS, NS):
        r = day2.cluster.create_namespace(name, RESTRICTED)
        assert r.status_code == 201, r.text
    out = helm(
        "install", RELEASE, str(CHART), "-n", SYSTEM_NS, "--set", "operator.replicas=0", kubeconfig=day2.kubeconfig
    )
    assert out.returncode == 0, out.stderr
    crd = day2.api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/memorybranches.memoturn.io")
    assert crd.status_code == 200  # helm installed the chart's crds/
    day2.start_operator()
    secret = day2.s3_secret("s3-credentials")
    assert day2.api.post(f"/api/v1/namespaces/{NS}/secrets", json=secret).status_code == 201
    tenant = {
        "apiVersion": "memoturn.io/v1alpha1",
        "kind": "MemoryTenant",
        "metadata": {"name": TENANT, "namespace": NS},
        "spec": {
            "image": day2.cluster.image,
            "nodes": {"minReplicas": 2, "maxReplicas": 2, "cacheSizeLimit": "1Gi"},
            "gateway": {"replicas": 1},
            "objectStore": {
                "bucket": day2.store.bucket,
                "prefix": day2.prefix,
                "endpoint": day2.store.endpoint,
                "credentialsSecret": "s3-credentials",
            },
            "etcd": {"endpoints": day2.etcd_endpoints},
            "leaseTtlSeconds": 6,
        },
    }
    assert apply(day2.api, day2.discovery, tenant).status_code == 201
    wait_for(lambda: day2.ready(2), 180, "the tenant to be Ready with 2 nodes")
    wait_for(day2.gateway_url, 60, "a ready gateway endpoint")


def test_helm_test_writes_and_reads_through_the_tenants_gateway(day2):
    url = day2.gateway_url()
    out = helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        SYSTEM_NS,
        "--reuse-values",
        "--set",
        f"test.tenant={TENANT},test.namespace={NS},test.url={url}",
        kubeconfig=day2.kubeconfig,
    )
    assert out.returncode == 0, out.stderr
    # No --logs: Helm reads a test Pod's logs in the release namespace only, and this one runs in
    # the tenant's (kubectl logs -n agents memoturn-test-gateway on a cluster).
    out = helm("test", RELEASE, "-n", SYSTEM_NS, "--timeout", "3m", kubeconfig=day2.kubeconfig)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"TEST SUITE:     {RELEASE}-test-gateway" in out.stdout and "Succeeded" in out.stdout, out.stdout
    pod = day2.api.get(f"/api/v1/namespaces/{NS}/pods/{RELEASE}-test-gateway").json()
    assert pod["status"]["phase"] == "Succeeded"
    with day2.client() as c:  # the value the Pod wrote is its own uid
        assert c.database("helm-test").kv_get("helm-test").data["value"] == pod["metadata"]["uid"]
    # A gateway that does not answer fails the test (the hook is no rubber stamp).
    out = helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        SYSTEM_NS,
        "--reuse-values",
        "--set",
        "test.url=http://127.0.0.1:9",
        kubeconfig=day2.kubeconfig,
    )
    assert out.returncode == 0, out.stderr
    out = helm("test", RELEASE, "-n", SYSTEM_NS, "--timeout", "3m", kubeconfig=day2.kubeconfig)
    assert out.returncode != 0 and "failed" in (out.stdout + out.stderr).lower(), out.stdout + out.stderr
    assert day2.api.get(f"/api/v1/namespaces/{NS}/pods/{RELEASE}-test-gateway").json()["status"]["phase"] == "Failed"


def test_kubectl_memoturn_status_shows_nodes_owners_tiers_and_conditions(day2):
    with day2.client() as c:
        c.create_database("acme--alice")
        c.database("acme--alice").kv_put("greeting", "hello", durability="durable")
    out = day2.plugin("status", TENANT, "-o", "json")
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["phase"] == "Ready" and s["readyNodes"] == 2
    assert {c["type"] for c in s["conditions"]} >= {"Ready", "ObjectStoreReachable", "LeaseStoreReachable"}
    assert len(s["nodes"]) == 2 and all(n["ready"] is True and n["podReady"] for n in s["nodes"]), s["nodes"]
    assert {n["nodeId"] for n in s["nodes"]} == {p["metadata"]["name"] for p in day2.node_pods()}
    owned = [k for n in s["nodes"] for k in n["owned"]]
    assert "acme--alice/main" in owned and owned.count("acme--alice/main") == 1  # one owner
    owner = next(n for n in s["nodes"] if "acme--alice/main" in n["owned"])
    assert owner["tiers"].get("hot", 0) >= 1
    text = day2.plugin("status", TENANT)
    assert text.returncode == 0 and "owns acme--alice/main" in text.stdout and "Ready" in text.stdout, text.stdout
    # Bad input: one line, non-zero.
    missing = day2.plugin("status", "nobody")
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0
    assert "MemoryTenant agents/nobody not found" in missing.stderr


def test_kubectl_memoturn_checkpoint_fork_and_rewind(day2):
    with day2.client() as c:
        db = c.database("acme--alice")
        db.kv_put("greeting", "before", durability="durable")
    out = day2.plugin("checkpoint", TENANT, "acme--alice", "before-change")
    assert out.returncode == 0 and "checkpoint before-change" in out.stdout, out.stderr
    with day2.client() as c:
        c.database("acme--alice").kv_put("greeting", "after", durability="durable")
    out = day2.plugin("fork", TENANT, "acme--alice", "what-if", "--checkpoint", "before-change")
    assert out.returncode == 0 and "forked acme--alice@what-if" in out.stdout, out.stderr
    with day2.client() as c:
        assert c.database("acme--alice", "what-if").kv_get("greeting").data["value"] == "before"
        assert c.database("acme--alice").kv_get("greeting").data["value"] == "after"
    out = day2.plugin("rewind", TENANT, "acme--alice", "--checkpoint", "before-change")
    assert out.returncode == 0 and "rewound acme--alice@main" in out.stdout, out.stderr
    with day2.client() as c:
        assert c.database("acme--alice").kv_get("greeting").data["value"] == "before"
    refused = day2.plugin("fork", TENANT, "acme--alice", "x", "--checkpoint", "no-such-checkpoint")
    assert refused.returncode == 1 and refused.stderr.startswith("kubectl memoturn: the data plane refused"), refused
    bad = day2.plugin("fork", TENANT, "acme--alice", "x", "--timestamp", "yesterday")
    assert bad.returncode == 2 and "--timestamp" in bad.stderr and bad.stderr.count("\n") == 1


def test_kubectl_memoturn_report_bundles_objects_events_and_node_metrics(day2):
    bundle = day2.tmp / "report.tar.gz"
    out = day2.plugin("report", TENANT, "-o", str(bundle))
    assert out.returncode == 0, out.stderr
    with tarfile.open(bundle) as tar:
        files = {m.name.split("/", 1)[1]: m for m in tar.getmembers()}
        read = {name: tar.extractfile(m).read().decode() for name, m in files.items()}  # type: ignore[union-attr]
    assert {"memorytenant.yaml", "memorybranches.yaml", "pods.yaml", "deployments.yaml", "events.yaml"} <= files.keys()
    assert "kind: MemoryTenant" in read["memorytenant.yaml"]
    assert "reason: Created" in read["events.yaml"] or "reason: Ready" in read["events.yaml"]
    for pod in day2.node_pods():
        name = pod["metadata"]["name"]
        assert "memoturn_hot_databases" in read[f"nodes/{name}/metrics.txt"]
        assert json.loads(read[f"nodes/{name}/cluster-status.json"])["node_id"] == name
        # No kubelet log endpoint here: the bundle says why rather than failing.
        assert f"logs/{name}/memoturnd.log" in files or f"logs/{name}/memoturnd.log.error" in files
    assert not any("secret" in n.lower() for n in files) and day2.token() not in "".join(read.values())
    unwritable = day2.plugin("report", TENANT, "-o", "/nonexistent-dir/x.tar.gz")
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr


def test_kubectl_memoturn_drain_moves_a_nodes_branches_elsewhere(day2):
    # Hot (so owned) again: on a loaded machine the steps before can outlast hotIdleSeconds (60 s).
    with day2.client() as c:
        c.database("acme--alice").kv_get("greeting")
    status = json.loads(day2.plugin("status", TENANT, "-o", "json").stdout)
    owner = next(n["pod"] for n in status["nodes"] if "acme--alice/main" in n["owned"])
    out = day2.plugin("drain", TENANT, owner)
    assert out.returncode == 0 and f"drained {owner}" in out.stdout, out.stdout + out.stderr
    assert owner not in [p["metadata"]["name"] for p in day2.node_pods() if not p["metadata"].get("deletionTimestamp")]
    with day2.client() as c:  # nothing lost; the branch is served (and written) elsewhere
        db = c.database("acme--alice")
        assert db.kv_get("greeting").data["value"] == "before"
        db.kv_put("after-drain", 1, durability="durable")
    wait_for(lambda: day2.ready(2), 180, "the Deployment's replacement node to be Ready")
    status = json.loads(day2.plugin("status", TENANT, "-o", "json").stdout)
    assert owner not in {n["pod"] for n in status["nodes"]}
    unknown = day2.plugin("drain", TENANT, "no-such-pod")
    assert unknown.returncode == 1 and "is not a node pod" in unknown.stderr


def test_finalizers_with_the_operator_removed_first_and_release_finalizers(day2):
    path = f"{GROUP_PATH}/namespaces/{NS}/memorybranches/stuck"
    body = {
        "apiVersion": "memoturn.io/v1alpha1",
        "kind": "MemoryBranch",
        "metadata": {"name": "stuck", "namespace": NS},
        "spec": {"tenant": TENANT, "database": "acme--alice", "branch": "stuck"},
    }
    assert apply(day2.api, day2.discovery, body).status_code == 201
    wait_for(lambda: (day2.api.get(path).json().get("status") or {}).get("phase") == "Ready", 60, "the branch Ready")
    assert "memoturn.io/finalizer" in day2.api.get(path).json()["metadata"]["finalizers"]
    assert "stuck" in day2.branch_names("acme--alice")

    day2.stop_operator()  # the wrong order: the operator goes first
    assert day2.api.delete(path).status_code == 200
    time.sleep(5)
    stuck = day2.api.get(path)
    assert stuck.status_code == 200 and stuck.json()["metadata"].get("deletionTimestamp"), "not Terminating"
    assert "stuck" in day2.branch_names("acme--alice")  # nobody deleted the branch's data

    out = day2.plugin("release-finalizers", TENANT)
    assert out.returncode == 0, out.stderr
    assert f"released MemoryBranch {NS}/stuck (deleted branch acme--alice@stuck)" in out.stdout, out.stdout
    wait_for(lambda: day2.api.get(path).status_code == 404, 30, "the MemoryBranch to go")
    assert "stuck" not in day2.branch_names("acme--alice")  # and nothing stranded in the data plane
    again = day2.plugin("release-finalizers")
    assert again.returncode == 0 and "nothing is stuck" in again.stdout
