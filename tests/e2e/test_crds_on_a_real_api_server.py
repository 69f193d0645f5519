"""A platform team applies the CRDs: a real kube-apiserver (built from upstream source) accepts
them, fills in the defaults and enforces the CEL rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support.apply import wait_established
from support.kube import KUBE_VERSION, KubeAPIServer

ROOT = Path(__file__).resolve().parents[2]
TENANTS = "/apis/memoturn.io/v1alpha1/namespaces/default/memorytenants"
BRANCHES = "/apis/memoturn.io/v1alpha1/namespaces/default/memorybranches"

# On an external cluster (MEMOTURN_E2E_KUBECONFIG) these are skipped and listed: support.testcluster.
pytestmark = pytest.mark.own_cluster("needs a fresh kube-apiserver: it creates the CRDs itself")


@pytest.fixture(scope="module")
def api(etcd):
    server = KubeAPIServer(etcd.endpoint)
    yield server.client
    server.close()


def test_the_api_server_accepts_the_crds_and_enforces_them(api):
    assert api.get("/version").json()["gitVersion"] == KUBE_VERSION
    for name in ("memorytenants.yaml", "memorybranches.yaml"):
        doc = yaml.safe_load((ROOT / "crds" / name).read_text())
        r = api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=doc)
        assert r.status_code == 201, r.text
        wait_established(api, doc["metadata"]["name"])

    tenant = {
        "apiVersion": "memoturn.io/v1alpha1",
        "kind": "MemoryTenant",
        "metadata": {"name": "acme"},
        "spec": {"image": "memoturn:0.1.0", "objectStore": {"bucket": "mem"}, "etcd": {"endpoints": ["etcd:2379"]}},
    }
    r = api.post(TENANTS, json=tenant)
    assert r.status_code == 201, r.text
    spec = r.json()["spec"]
    assert spec["nodes"]["minReplicas"] == 1 and spec["nodes"]["cacheSizeLimit"] == "10Gi"  # defaults applied
    assert spec["leaseTtlSeconds"] == 15 and spec["durability"] == "standard"

    for patch, needle in [
        ({"nodes": {"minReplicas": 5, "maxReplicas": 2}}, "minReplicas must not exceed maxReplicas"),
        ({"durability": "sometimes"}, "Unsupported value"),
        ({"leaseTtlSeconds": 1}, "should be greater than or equal to 2"),
    ]:
        bad = {**tenant, "metadata": {"name": "bad"}, "spec": {**tenant["spec"], **patch}}
        r = api.post(TENANTS, json=bad)
        assert r.status_code == 422 and needle in r.text, r.text

    branch = {
        "apiVersion": "memoturn.io/v1alpha1",
        "kind": "MemoryBranch",
        "metadata": {"name": "b"},
        "spec": {
            "tenant": "acme",
            "database": "acme--alice",
            "branch": "exp",
            "parent": {"txid": 1, "checkpoint": "c"},
        },
    }
    r = api.post(BRANCHES, json=branch)
    assert r.status_code == 422 and "at most one of txid, checkpoint, timestamp" in r.text
    branch["spec"]["parent"] = {"checkpoint": "c"}
    assert api.post(BRANCHES, json=branch).status_code == 201
    # A fork is made once: its spec cannot be changed afterwards.
    r = api.patch(
        f"{BRANCHES}/b",
        json={"spec": {"parent": {"checkpoint": "other"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 422 and "spec cannot change" in r.text, r.text

    # The status subresource is separate from the spec, as the operator needs.
    status = {"status": {"phase": "Ready", "readyNodes": 2, "observedGeneration": 1}}
    r = api.patch(f"{TENANTS}/acme/status", json=status, headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["status"]["phase"] == "Ready"
