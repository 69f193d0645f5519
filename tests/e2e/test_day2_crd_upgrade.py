"""Day 2: a CRD upgrade keeps the objects. ``helm upgrade`` never touches a chart's ``crds/``, so
the documented path (docs/kubernetes.md, "Upgrading the CRDs") is a server-side apply of the new
CRDs before the chart upgrade. On a real kube-apiserver: the CRDs of an older release (commit
72c50ac, as fixtures), objects made with them, the current CRDs applied server-side over CRDs
that Helm created, and the objects still there, readable, defaulted by the new schema, in the one
stored version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.apply import wait_established
from support.kube import KubeAPIServer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
GROUP_PATH = "/apis/memoturn.io/v1alpha1/namespaces/default"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
KINDS = ("memorytenants", "memorybranches")

# On an external cluster (MEMOTURN_E2E_KUBECONFIG) these are skipped and listed: support.testcluster.
pytestmark = pytest.mark.own_cluster("needs a fresh kube-apiserver: it installs an older release's CRDs")


@pytest.fixture(scope="module")
def api(etcd):
    server = KubeAPIServer(etcd.endpoint)
    yield server.client
    server.close()


def test_an_upgraded_crd_keeps_existing_objects(api):
    # The older release's CRDs, created the way `helm install` creates them (a POST, manager "helm").
    for kind in KINDS:
        old = yaml.safe_load((FIXTURES / f"{kind}-72c50ac.yaml").read_text())
        r = api.post(CRD_PATH, json=old, params={"fieldManager": "helm"})
        assert r.status_code == 201, r.text
        wait_established(api, old["metadata"]["name"])
    tenant = {
        "apiVersion": "memoturn.io/v1alpha1",
        "kind": "MemoryTenant",
        "metadata": {"name": "acme"},
        "spec": {"image": "memoturn:0.1.0", "objectStore": {"bucket": "mem"}, "etcd": {"endpoints": ["etcd:2379"]}},
    }
    r = api.post(f"{GROUP_PATH}/memorytenants", json=tenant)
    assert r.status_code == 201, r.text
    assert "provider" not in r.json()["spec"]["objectStore"]  # the old schema has no provider field
    status = {"status": {"phase": "Ready", "readyNodes": 1, "observedGeneration": 1}}
    r = api.patch(
        f"{GROUP_PATH}/memorytenants/acme/status", json=status, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert r.status_code == 200, r.text
    branch = {
        "apiVersion": "memoturn.io/v1alpha1",
        "kind": "MemoryBranch",
        "metadata": {"name": "exp", "finalizers": ["memoturn.io/finalizer"]},
        "spec": {"tenant": "acme", "database": "acme--alice", "branch": "exp", "parent": {"checkpoint": "c"}},
    }
    assert api.post(f"{GROUP_PATH}/memorybranches", json=branch).status_code == 201
    before = {k: api.get(f"{GROUP_PATH}/{k}").json()["items"][0]["metadata"]["uid"] for k in KINDS}

    # The documented upgrade: kubectl apply --server-side --force-conflicts -f crds/ (Helm owns the
    # fields it created, so the apply takes them over with --force-conflicts).
    for kind in KINDS:
        new = yaml.safe_load((ROOT / "crds" / f"{kind}.yaml").read_text())
        r = api.patch(
            f"{CRD_PATH}/{new['metadata']['name']}",
            content=json.dumps(new),
            params={"fieldManager": "kubectl", "force": "true"},
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        assert r.status_code == 200, r.text
        wait_established(api, new["metadata"]["name"])
        crd = api.get(f"{CRD_PATH}/{new['metadata']['name']}").json()
        served = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        assert (
            served.keys()
            == new["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"].keys()
        )
        if kind == "memorytenants":  # the new schema is the one served
            assert "provider" in served["objectStore"]["properties"]
        assert crd["status"]["storedVersions"] == ["v1alpha1"]  # one version, nothing to migrate

    # The same objects (same uid), readable; the new schema's defaults apply on read.
    after = {k: api.get(f"{GROUP_PATH}/{k}").json()["items"] for k in KINDS}
    assert {k: [o["metadata"]["uid"] for o in v] for k, v in after.items()} == {k: [u] for k, u in before.items()}
    t = api.get(f"{GROUP_PATH}/memorytenants/acme").json()
    assert t["spec"]["objectStore"]["bucket"] == "mem" and t["spec"]["objectStore"]["provider"] == "s3"
    assert t["status"]["phase"] == "Ready"
    b = api.get(f"{GROUP_PATH}/memorybranches/exp").json()
    assert b["spec"]["parent"]["checkpoint"] == "c" and b["spec"]["database"] == "acme--alice"
    assert b["metadata"]["finalizers"] == ["memoturn.io/finalizer"]
    # ... and writable under the new schema's rules (a field only the new schema knows).
    r = api.patch(
        f"{GROUP_PATH}/memorytenants/acme",
        json={"spec": {"objectStore": {"provider": "gcs"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200 and r.json()["spec"]["objectStore"]["provider"] == "gcs", r.text
    # Clean up the finalizer the test put there (no operator runs here).
    r = api.patch(
        f"{GROUP_PATH}/memorybranches/exp",
        json={"metadata": {"finalizers": None}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
