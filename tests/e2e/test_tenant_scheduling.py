"""Scheduling and tenancy on a real kube-apiserver: a MemoryTenant with placement, quantities, a
NetworkPolicy and TLS is accepted (nonsense quantities are refused by the CRD schema), and one
reconcile by the operator's own code stores Deployments, PodDisruptionBudgets, NetworkPolicies
and Services carrying them: what the API server validates and keeps, not what a node agent
enforces (the test node agent runs pods as local processes and enforces no NetworkPolicy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.apply import wait_established
from support.kube import KubeAPIServer

ROOT = Path(__file__).resolve().parents[2]
NS = "agents"
TENANTS = f"/apis/memoturn.io/v1alpha1/namespaces/{NS}/memorytenants"

# On an external cluster (MEMOTURN_E2E_KUBECONFIG) these are skipped and listed: support.testcluster.
pytestmark = pytest.mark.own_cluster("needs a fresh kube-apiserver: it creates the CRDs itself")

PLACEMENT = {
    "nodeSelector": {"pool": "memory"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "memory", "effect": "NoSchedule"}],
    "priorityClassName": "memoturn-critical",
}


@pytest.fixture(scope="module")
def server(etcd, tmp_path_factory):
    s = KubeAPIServer(etcd.endpoint)
    api = s.client
    for name in ("memorytenants.yaml", "memorybranches.yaml"):
        doc = yaml.safe_load((ROOT / "crds" / name).read_text())
        r = api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=doc)
        assert r.status_code == 201, r.text
        wait_established(api, doc["metadata"]["name"])
    r = api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    assert r.status_code == 201, r.text
    s.kubeconfig = s.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
    yield s
    s.close()


def _kube(server: KubeAPIServer) -> Any:
    from kubernetes import client, config
    from memoturn_operator.kube import Kube, _bearer_token_fixed

    configuration = client.Configuration()
    config.load_kube_config(config_file=server.kubeconfig, client_configuration=configuration)
    return Kube(client.ApiClient(_bearer_token_fixed(configuration)))


def _tenant(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "memoturn.io/v1alpha1",
        "kind": "MemoryTenant",
        "metadata": {"name": name},
        "spec": {
            "image": "memoturn:0.1.0",
            "objectStore": {"bucket": "mem"},
            "etcd": {"endpoints": ["etcd:2379"]},
            **spec,
        },
    }


def _reconcile(server: KubeAPIServer, name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from memoturn_operator.tenant import Memory, reconcile

    monkeypatch.setenv("MEMOTURN_OPERATOR_NAMESPACE", "memoturn-system")
    body = server.client.get(f"{TENANTS}/{name}").json()
    reconcile(_kube(server), body, Memory())
    return server.client.get(f"{TENANTS}/{name}").json()


def _get(server: KubeAPIServer, path: str) -> dict[str, Any]:
    r = server.client.get(path)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_crd_takes_quantities_as_kubernetes_does_and_refuses_nonsense(server):
    api = server.client
    r = api.post(TENANTS, json=_tenant("defaults"))
    assert r.status_code == 201, r.text
    spec = r.json()["spec"]
    # Defaults filled in by the API server: never BestEffort pods.
    assert spec["nodes"]["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "2Gi"},
    }
    assert spec["gateway"]["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert spec["networkPolicy"]["enabled"] is True

    for bad, field in [
        ({"nodes": {"resources": {"requests": {"cpu": "lots"}}}}, "spec.nodes.resources.requests.cpu"),
        ({"gateway": {"resources": {"limits": {"memory": "2 GB"}}}}, "spec.gateway.resources.limits.memory"),
        ({"nodes": {"tolerations": [{"effect": "Sometimes"}]}}, "spec.nodes.tolerations[0].effect"),
    ]:
        r = api.post(TENANTS, json=_tenant("bad", **bad))
        assert r.status_code == 422 and field in r.text, r.text


def test_placement_and_quantities_reach_the_deployments(server, monkeypatch):
    api = server.client
    tenant = _tenant(
        "placed",
        imagePullSecrets=[{"name": "regcred"}],
        nodes={**PLACEMENT, "resources": {"requests": {"cpu": 1, "memory": "1Gi"}, "limits": {"memory": "4Gi"}}},
        gateway={"nodeSelector": {"pool": "edge"}, "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": 2}}},
        networkPolicy={"nodesFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
    )
    r = api.post(TENANTS, json=tenant)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["nodes"]["resources"]["requests"]["cpu"] == 1  # kept as given: int-or-string
    status = _reconcile(server, "placed", monkeypatch)["status"]
    assert status["endpoints"]["gateway"].startswith("http://placed-memoturn-gateway.agents.svc")

    node = _get(server, f"/apis/apps/v1/namespaces/{NS}/deployments/placed-memoturn-node")["spec"]["template"]["spec"]
    assert node["nodeSelector"] == {"pool": "memory"}
    assert node["tolerations"] == PLACEMENT["tolerations"]
    assert node["priorityClassName"] == "memoturn-critical"
    assert node["imagePullSecrets"] == [{"name": "regcred"}]
    assert node["containers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "4Gi"},
    }
    keys = [c["topologyKey"] for c in node["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]

    gateway = _get(server, f"/apis/apps/v1/namespaces/{NS}/deployments/placed-memoturn-gateway")["spec"]["template"]
    gateway = gateway["spec"]
    assert gateway["nodeSelector"] == {"pool": "edge"} and "priorityClassName" not in gateway
    # Requests given replace the default requests (here: cpu only, within its limit).
    assert gateway["containers"][0]["resources"] == {
        "requests": {"cpu": "500m"},
        "limits": {"cpu": "2"},
    }
    assert "podAntiAffinity" in gateway["affinity"]
    assert gateway["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/v1/gateway/health"

    pdb = _get(server, f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/placed-memoturn-gateway")["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"


def test_each_tenant_gets_network_policies_with_the_right_selectors(server, monkeypatch):
    base = f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies"
    gateway = _get(server, f"{base}/placed-memoturn-gateway")["spec"]
    assert gateway["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    assert gateway["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "placed"
    assert gateway["ingress"] == [{"ports": [{"protocol": "TCP", "port": 7400}]}]  # every client
    nodes = _get(server, f"{base}/placed-memoturn-node")["spec"]
    assert nodes["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "node"
    assert nodes["policyTypes"] == ["Ingress"]
    (rule,) = nodes["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 7411}]
    components = [
        p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") for p in rule["from"]
    ]
    assert components == ["gateway", "node", "operator", None]
    assert rule["from"][2]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "memoturn-system"}}
    assert rule["from"][3] == {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    # Turned off: none (for clusters whose own policies already decide).
    r = server.client.post(TENANTS, json=_tenant("open", networkPolicy={"enabled": False}))
    assert r.status_code == 201, r.text
    _reconcile(server, "open", monkeypatch)
    assert server.client.get(f"{base}/open-memoturn-node").status_code == 404


def test_a_tls_tenant_serves_https_from_its_secret(server, monkeypatch):
    r = server.client.post(TENANTS, json=_tenant("secure", tls={"secretName": "secure-tls"}))
    assert r.status_code == 201, r.text
    status = _reconcile(server, "secure", monkeypatch)["status"]
    assert status["endpoints"]["gateway"] == "https://secure-memoturn-gateway.agents.svc:7400"
    deployments = f"/apis/apps/v1/namespaces/{NS}/deployments"
    for name in ("secure-memoturn-node", "secure-memoturn-gateway"):
        pod = _get(server, f"{deployments}/{name}")["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert {"name": "tls", "secret": {"secretName": "secure-tls", "defaultMode": 420}} in pod["volumes"]
        assert {"name": "tls", "mountPath": "/etc/memoturn/tls", "readOnly": True} in c["volumeMounts"]
        assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    headless = _get(server, f"/api/v1/namespaces/{NS}/services/secure-memoturn-node")["spec"]
    assert headless["publishNotReadyAddresses"] is True
