"""The operator's pure side: CRDs match the models, and a MemoryTenant maps to the right objects."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest
import yaml
from memoturn_operator.crd import all_crds, render
from memoturn_operator.models import MemoryBranchSpec, MemoryTenantSpec
from memoturn_operator.resources import desired, scale_decision, store_url, token_secret
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[1]
SPEC = MemoryTenantSpec.model_validate(
    {
        "image": "memoturn:0.1.0",
        "objectStore": {
            "bucket": "mem",
            "prefix": "tenants/acme",
            "endpoint": "http://minio:9000",
            "credentialsSecret": "s3-creds",
        },
        "etcd": {"endpoints": ["etcd-0:2379", "etcd-1:2379"]},
        "nodes": {"minReplicas": 2, "maxReplicas": 5, "cacheSizeLimit": "20Gi"},
    }
)


def test_crd_files_are_generated_from_the_models():
    """Both copies: crds/ for kubectl users, charts/memoturn/crds/ because Helm installs CRDs only from the chart."""
    for where in ("crds", "charts/memoturn/crds"):
        for name, doc in all_crds().items():
            assert (ROOT / where / name).read_text() == render(doc), (
                f"{where}/{name} is stale: run python -m memoturn_operator.crd"
            )


def test_crd_schemas_are_structural_with_defaults_cel_and_status():
    tenant = all_crds()["memorytenants.yaml"]
    version = tenant["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert version["subresources"] == {"status": {}}
    assert tenant["spec"]["names"]["shortNames"] == ["mt"]
    assert set(schema["required"]) == {"image", "objectStore", "etcd"}
    nodes = schema["properties"]["nodes"]
    assert nodes["properties"]["minReplicas"]["default"] == 1 and nodes["properties"]["minReplicas"]["minimum"] == 1
    assert nodes["x-kubernetes-validations"][0]["rule"] == "self.minReplicas <= self.maxReplicas"
    assert schema["properties"]["durability"]["enum"] == ["standard", "durable"]

    def walk(node):
        assert "$ref" not in node and "title" not in node
        # anyOf only as Kubernetes writes a quantity: integer or string, marked int-or-string.
        assert "anyOf" not in node or node.get("x-kubernetes-int-or-string") is True, node
        assert node.get("additionalProperties") is not True  # free-form objects preserve unknown fields
        if "properties" in node:
            assert "additionalProperties" not in node
        for value in node.get("properties", {}).values():
            walk(value)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key])

    for doc in all_crds().values():
        walk(doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    yaml.safe_load(render(tenant))  # valid YAML


def test_models_reject_bad_specs():
    with pytest.raises(ValidationError):
        MemoryTenantSpec.model_validate({"image": "x", "objectStore": {"bucket": "b"}, "etcd": {"endpoints": []}})
    with pytest.raises(ValidationError):
        MemoryTenantSpec.model_validate({**SPEC.model_dump(), "leaseTtlSeconds": 1})
    with pytest.raises(ValidationError):
        MemoryBranchSpec.model_validate({"tenant": "t", "database": "d", "branch": "b", "unknown": 1})


def by_kind(objs):
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def test_a_tenant_maps_to_owned_objects_without_persistent_volumes():
    objs = by_kind(desired("acme", "team", "uid-1", SPEC))
    assert set(objs) == {
        ("ServiceAccount", "acme-memoturn"),
        ("ConfigMap", "acme-memoturn"),
        ("Deployment", "acme-memoturn-node"),
        ("Deployment", "acme-memoturn-gateway"),
        ("Service", "acme-memoturn-gateway"),
        ("Service", "acme-memoturn-node"),
        ("PodDisruptionBudget", "acme-memoturn-node"),
        ("PodDisruptionBudget", "acme-memoturn-gateway"),
        ("NetworkPolicy", "acme-memoturn-node"),
        ("NetworkPolicy", "acme-memoturn-gateway"),
    }
    for o in objs.values():
        ref = o["metadata"]["ownerReferences"][0]
        assert ref["kind"] == "MemoryTenant" and ref["uid"] == "uid-1" and ref["controller"] is True
        assert o["metadata"]["namespace"] == "team"
    node = objs[("Deployment", "acme-memoturn-node")]
    pod = node["spec"]["template"]["spec"]
    assert node["spec"]["replicas"] == 2
    assert "PersistentVolumeClaim" not in str(objs) and "persistentVolumeClaim" not in str(pod)
    assert pod["volumes"][0] == {"name": "cache", "emptyDir": {"sizeLimit": "20Gi"}}
    assert pod["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "s3-creds"
    assert env["MEMOTURN_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "acme-memoturn-token"
    config = objs[("ConfigMap", "acme-memoturn")]["data"]
    assert (
        config["MEMOTURN_STORE_URL"]
        == store_url(SPEC)
        == "s3://mem/tenants/acme?region=us-east-1&endpoint=http%3A%2F%2Fminio%3A9000"
    )
    assert config["MEMOTURN_ETCD_PREFIX"] == "/memoturn/team/acme"
    assert objs[("Service", "acme-memoturn-node")]["spec"]["clusterIP"] == "None"
    secret = token_secret("acme", "team", "uid-1", "tok")
    assert secret["stringData"] == {"admin-token": "tok"}


def test_reconciling_twice_gives_the_same_objects_and_a_spec_change_rolls_pods():
    assert desired("acme", "team", "u", SPEC) == desired("acme", "team", "u", SPEC)
    changed = SPEC.model_copy(update={"durability": "durable"})
    a = by_kind(desired("acme", "team", "u", SPEC))[("Deployment", "acme-memoturn-node")]
    b = by_kind(desired("acme", "team", "u", changed))[("Deployment", "acme-memoturn-node")]
    key = "memoturn.io/config-hash"
    assert (
        a["spec"]["template"]["metadata"]["annotations"][key] != b["spec"]["template"]["metadata"]["annotations"][key]
    )
    # Replica bounds are not configuration the pods read: changing them rolls nothing.
    wider = SPEC.model_copy(update={"nodes": SPEC.nodes.model_copy(update={"maxReplicas": 9})})
    c = by_kind(desired("acme", "team", "u", wider))[("Deployment", "acme-memoturn-node")]
    assert c["spec"]["template"] == a["spec"]["template"]


def test_scaling_follows_the_hot_set_with_hysteresis_inside_the_bounds():
    spec = SPEC.model_copy(update={"nodes": SPEC.nodes.model_copy(update={"hotPerNodeTarget": 100})})
    assert scale_decision(2, [150, 150], spec) == 3  # above target: grow
    assert scale_decision(3, [90, 90, 90], spec) == 3  # just under target: hold
    assert scale_decision(3, [20, 20, 10], spec) == 2  # far under: shrink one
    assert scale_decision(2, [0, 0], spec) == 2  # never below minReplicas
    assert scale_decision(5, [900] * 5, spec) == 5  # never above maxReplicas


def _deploy(replicas, available, generation=2, observed=2, updated=None):
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "availableReplicas": available,
            "updatedReplicas": replicas if updated is None else updated,
        },
    }


def test_status_conditions_are_truthful_and_keep_transition_times():
    from datetime import datetime

    from memoturn_operator.status import tenant_status

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t1 = datetime(2026, 1, 2, tzinfo=UTC)
    pending = tenant_status(1, None, None, now=t0)
    assert pending.phase == "Pending" and pending.conditions[0].reason == "Creating"
    rolling = tenant_status(2, _deploy(3, 1, observed=1), _deploy(2, 2), now=t0)
    assert rolling.phase == "Progressing" and rolling.readyNodes == 1
    ready = tenant_status(2, _deploy(3, 3), _deploy(2, 2), now=t0)
    assert ready.phase == "Ready" and {c.type: c.status for c in ready.conditions} == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "ObjectStoreReachable": "Unknown",  # not probed in this test
        "LeaseStoreReachable": "Unknown",
    }
    assert rolling.conditions[1].type == "Reconciling" and rolling.conditions[1].status == "True"
    again = tenant_status(2, _deploy(3, 3), _deploy(2, 2), [c.model_dump() for c in ready.conditions], now=t1)
    assert again.conditions[0].lastTransitionTime == "2026-01-01T00:00:00Z"  # unchanged status keeps its time
    degraded = tenant_status(2, _deploy(3, 2), _deploy(2, 2), [c.model_dump() for c in ready.conditions], now=t1)
    assert degraded.phase == "Degraded" and degraded.conditions[0].reason == "ReplicasUnavailable"
    assert degraded.conditions[2].type == "Stalled" and degraded.conditions[2].status == "True"
    assert degraded.conditions[0].lastTransitionTime == "2026-01-02T00:00:00Z"
    assert all(c.observedGeneration == 2 for c in degraded.conditions)


def test_every_pod_the_operator_creates_meets_the_restricted_pod_security_profile():
    """What Kubernetes' `restricted` profile checks (the e2e enforces it on a real API server)."""
    for obj in desired("acme", "team", "uid-1", SPEC):
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            ctx = c["securityContext"]
            seccomp = ctx.get("seccompProfile") or pod["securityContext"].get("seccompProfile")
            assert seccomp == {"type": "RuntimeDefault"}, obj["metadata"]["name"]
            assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"] == {"drop": ["ALL"]}
            assert ctx["readOnlyRootFilesystem"] is True


def _tenant_on(store: dict) -> MemoryTenantSpec:
    return MemoryTenantSpec.model_validate({**SPEC.model_dump(), "objectStore": store})


def _node_pod(spec: MemoryTenantSpec) -> dict:
    objs = desired("acme", "ns", "uid-1", spec, node_replicas=2)
    return next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-node"))["spec"][
        "template"
    ]


def _account(spec: MemoryTenantSpec) -> dict:
    objs = desired("acme", "ns", "uid-1", spec, node_replicas=2)
    return next(o for o in objs if o["kind"] == "ServiceAccount")


def test_each_cloud_gets_its_url_and_credentials_the_way_its_workload_identity_expects():
    # EKS: IRSA through the ServiceAccount annotation, no key anywhere.
    eks = _tenant_on(
        {"bucket": "mem", "prefix": "t/acme", "serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:x"}}
    )
    assert store_url(eks) == "s3://mem/t/acme?region=us-east-1"
    assert _account(eks)["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:x"}
    env = {e["name"] for e in _node_pod(eks)["spec"]["containers"][0]["env"]}
    assert not env & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    # GKE: a gs:// URL; with a key, the service-account file is mounted and named.
    gke = _tenant_on({"provider": "gcs", "bucket": "mem", "prefix": "p", "credentialsSecret": "gcs-key"})
    assert store_url(gke) == "gs://mem/p"
    pod = _node_pod(gke)
    c = pod["spec"]["containers"][0]
    assert {
        "name": "GOOGLE_APPLICATION_CREDENTIALS",
        "value": "/var/run/secrets/memoturn/gcs/service-account.json",
    } in c["env"]
    assert any(v.get("secret", {}).get("secretName") == "gcs-key" for v in pod["spec"]["volumes"])
    assert any(m["mountPath"] == "/var/run/secrets/memoturn/gcs" and m["readOnly"] for m in c["volumeMounts"])
    # AKS: az:// with the account; workload identity needs the pod label, a key needs none.
    aks = _tenant_on(
        {
            "provider": "azure",
            "bucket": "memories",
            "account": "acmestore",
            "serviceAccountAnnotations": {"azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000000"},
        }
    )
    assert store_url(aks) == "az://memories/?account=acmestore"
    assert _node_pod(aks)["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    keyed = _tenant_on({"provider": "azure", "bucket": "memories", "account": "a", "credentialsSecret": "az-key"})
    assert "azure.workload.identity/use" not in _node_pod(keyed)["metadata"]["labels"]
    assert any(e["name"] == "AZURE_STORAGE_ACCOUNT_KEY" for e in _node_pod(keyed)["spec"]["containers"][0]["env"])
    with pytest.raises(ValidationError, match="account is required"):
        _tenant_on({"provider": "azure", "bucket": "memories"})
    with pytest.raises(ValidationError):
        _tenant_on({"provider": "minio", "bucket": "mem"})


# ---- scheduling and tenancy -----------------------------------------------------------------------


def _deployments(spec: MemoryTenantSpec, **kw) -> tuple[dict, dict]:
    objs = by_kind(desired("acme", "team", "uid-1", spec, **kw))
    return (
        objs[("Deployment", "acme-memoturn-node")]["spec"]["template"]["spec"],
        objs[("Deployment", "acme-memoturn-gateway")]["spec"]["template"]["spec"],
    )


def _with(**update) -> MemoryTenantSpec:
    return MemoryTenantSpec.model_validate({**SPEC.model_dump(exclude_none=True), **update})


def test_pods_get_default_requests_and_limits_never_best_effort():
    node, gateway = _deployments(SPEC)
    assert node["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "2Gi"},
    }
    assert gateway["containers"][0]["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    # Giving only limits keeps the default requests (and vice versa).
    spec = _with(nodes={"resources": {"limits": {"memory": "8Gi", "cpu": 4}}})
    node, _ = _deployments(spec)
    assert node["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "8Gi", "cpu": "4"},
    }


@pytest.mark.parametrize("value", [1, "1", "500m", "2Gi", "1.5", "0.5", "1e3", "128974848", "129M", 0])
def test_resources_accept_kubernetes_quantities(value):
    spec = _with(gateway={"resources": {"requests": {"cpu": value}, "limits": {}}})
    assert spec.gateway.resources.requests["cpu"] == str(value)


@pytest.mark.parametrize("value", ["lots", "1 Gi", "2GB", "-1", "", "1.2.3", "Gi", True, [1]])
def test_resources_refuse_nonsense_with_a_clear_message(value):
    with pytest.raises(ValidationError) as info:
        _with(nodes={"resources": {"requests": {"memory": value}}})
    text = str(info.value)
    assert "nodes.resources.requests.memory" in text and "is not a Kubernetes quantity (e.g. 500m, 1, 2Gi)" in text


def test_a_request_above_its_limit_is_refused():
    with pytest.raises(ValidationError, match=r"the memory request \(4Gi\) exceeds its limit \(2Gi\)"):
        _with(nodes={"resources": {"requests": {"memory": "4Gi"}, "limits": {"memory": "2Gi"}}})
    with pytest.raises(ValidationError, match="exceeds its limit"):
        _with(gateway={"resources": {"requests": {"cpu": "1500m"}, "limits": {"cpu": 1}}})
    _with(gateway={"resources": {"requests": {"cpu": "1000m"}, "limits": {"cpu": 1}}})  # equal is fine


def test_quantities_parse_to_base_units():
    from decimal import Decimal

    from memoturn_operator.quantity import parse

    assert parse("500m") == Decimal("0.5") and parse("2Gi") == 2 * 1024**3 and parse("1e3") == 1000
    assert parse("1k") == 1000 and parse("1.5") == Decimal("1.5") and parse("128Mi") > parse("128M")


def test_nodes_spread_over_zones_and_hosts_and_gateways_prefer_distinct_hosts_by_default():
    node, gateway = _deployments(SPEC)
    own = {"app.kubernetes.io/name": "memoturn", "app.kubernetes.io/instance": "acme"}
    spread = node["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    for c in spread:
        assert c["whenUnsatisfiable"] == "ScheduleAnyway" and c["maxSkew"] == 1
        assert c["labelSelector"]["matchLabels"] == {
            **own,
            "app.kubernetes.io/managed-by": "memoturn-operator",
            "app.kubernetes.io/component": "node",
        }
    assert "affinity" not in node and "topologySpreadConstraints" not in gateway
    (term,) = gateway["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    for pod in (node, gateway):
        assert not {"nodeSelector", "tolerations", "priorityClassName", "imagePullSecrets"} & set(pod)


def test_placement_fields_reach_the_pods():
    placement = {
        "nodeSelector": {"pool": "memory"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "memory", "effect": "NoSchedule"}],
        "priorityClassName": "memoturn-critical",
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
        "topologySpreadConstraints": [{"topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}],
    }
    spec = _with(
        nodes={**placement, "minReplicas": 2, "maxReplicas": 5},
        gateway={"nodeSelector": {"pool": "edge"}, "topologySpreadConstraints": []},
        imagePullSecrets=[{"name": "regcred"}],
    )
    node, gateway = _deployments(spec)
    assert node["nodeSelector"] == {"pool": "memory"} and gateway["nodeSelector"] == {"pool": "edge"}
    assert node["tolerations"] == placement["tolerations"] and "tolerations" not in gateway
    assert node["priorityClassName"] == "memoturn-critical" and "priorityClassName" not in gateway
    assert node["affinity"] == placement["affinity"]
    (c,) = node["topologySpreadConstraints"]
    assert c["whenUnsatisfiable"] == "DoNotSchedule"
    assert c["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "node"  # filled in
    assert "topologySpreadConstraints" not in gateway  # [] turns the default off
    assert "podAntiAffinity" in gateway["affinity"]  # gateway's default kept
    assert node["imagePullSecrets"] == gateway["imagePullSecrets"] == [{"name": "regcred"}]
    with pytest.raises(ValidationError):
        _with(nodes={"tolerations": [{"key": "k", "effect": "Sometimes"}]})


def test_the_gateway_has_a_disruption_budget_and_a_liveness_probe():
    objs = by_kind(desired("acme", "team", "uid-1", SPEC))
    pdb = objs[("PodDisruptionBudget", "acme-memoturn-gateway")]["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": by_kind_labels("gateway")}}
    _, gateway = _deployments(SPEC)
    probe = gateway["containers"][0]["livenessProbe"]
    assert probe["httpGet"] == {"path": "/v1/gateway/health", "port": "http"} and probe["failureThreshold"] == 3


def by_kind_labels(component: str) -> dict[str, str]:
    from memoturn_operator.resources import labels

    return labels("acme", component)


def test_network_policies_open_the_gateway_and_close_the_nodes():
    objs = by_kind(desired("acme", "team", "uid-1", SPEC, operator_namespace="memoturn-system"))
    gateway = objs[("NetworkPolicy", "acme-memoturn-gateway")]["spec"]
    assert gateway["podSelector"]["matchLabels"] == by_kind_labels("gateway")
    assert gateway["policyTypes"] == ["Ingress"]
    assert gateway["ingress"] == [{"ports": [{"protocol": "TCP", "port": 7400}]}]  # no `from`: every client
    nodes = objs[("NetworkPolicy", "acme-memoturn-node")]["spec"]
    assert nodes["podSelector"]["matchLabels"] == by_kind_labels("node")
    (rule,) = nodes["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 7411}]
    operator = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "memoturn-system"}},
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/name": "memoturn", "app.kubernetes.io/component": "operator"}
        },
    }
    assert rule["from"] == [
        {"podSelector": {"matchLabels": by_kind_labels("gateway")}},
        {"podSelector": {"matchLabels": by_kind_labels("node")}},
        operator,
    ]
    # Extra peers (Prometheus), a closed gateway, or no policies at all.
    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    clients = {"podSelector": {"matchLabels": {"role": "agent"}}}
    spec = _with(networkPolicy={"nodesFrom": [prometheus], "gatewayFrom": [clients]})
    objs = by_kind(desired("acme", "team", "uid-1", spec))
    assert objs[("NetworkPolicy", "acme-memoturn-node")]["spec"]["ingress"][0]["from"][-1] == prometheus
    gw_from = objs[("NetworkPolicy", "acme-memoturn-gateway")]["spec"]["ingress"][0]["from"]
    assert gw_from[0] == clients and gw_from[1]["namespaceSelector"] == {}  # operator: any namespace when unknown
    off = _with(networkPolicy={"enabled": False})
    assert not any(o["kind"] == "NetworkPolicy" for o in desired("acme", "team", "uid-1", off))


def test_tls_mounts_the_secret_and_switches_probes_and_urls_to_https():
    plain_node, plain_gateway = _deployments(SPEC)
    assert not any(e["name"].startswith("MEMOTURN_TLS") for e in plain_node["containers"][0]["env"])
    spec = _with(tls={"secretName": "acme-tls"})
    objs = by_kind(desired("acme", "team", "uid-1", spec))
    node, gateway = _deployments(spec)
    for pod in (node, gateway):
        c = pod["containers"][0]
        assert {"name": "tls", "secret": {"secretName": "acme-tls"}} in pod["volumes"]
        assert {"name": "tls", "mountPath": "/etc/memoturn/tls", "readOnly": True} in c["volumeMounts"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["MEMOTURN_TLS_CERT_FILE"] == "/etc/memoturn/tls/tls.crt"
        assert env["MEMOTURN_TLS_KEY_FILE"] == "/etc/memoturn/tls/tls.key"
        assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
        assert c["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
        # The gateway proxies to nodes, nodes replicate to their peers: both verify nodes against the CA.
        assert env["MEMOTURN_NODE_CA_FILE"] == "/etc/memoturn/tls/ca.crt"
    node_env = {e["name"]: e.get("value") for e in node["containers"][0]["env"]}
    # Nodes advertise a DNS name a wildcard certificate covers: <pod>.<headless service>.<namespace>.svc.
    assert node_env["MEMOTURN_ADVERTISE_URL"] == "https://$(POD_NAME).acme-memoturn-node.team.svc:7411"
    assert node["subdomain"] == "acme-memoturn-node"
    assert objs[("Service", "acme-memoturn-node")]["spec"]["publishNotReadyAddresses"] is True
    plain_env = {e["name"]: e.get("value") for e in plain_node["containers"][0]["env"]}
    assert plain_env["MEMOTURN_ADVERTISE_URL"] == "http://$(POD_IP):7411" and "subdomain" not in plain_node


def test_usage_comes_from_the_nodes_metrics():
    from memoturn.metrics import NodeMetrics
    from memoturn_operator.dataplane import parse_load
    from memoturn_operator.tenant import tenant_usage
    from prometheus_client import generate_latest

    m = NodeMetrics()
    m.hot.set(3)
    m.warm.set(4)
    m.disk_bytes.set(4096)
    m.bytes_shipped.inc(1000)
    m.commits.inc(7)
    for method, route in [
        ("GET", "/v1/databases/{db}/kv/{key}"),
        ("POST", "/v1/databases/{db}/vectors/{collection}/query"),
        ("POST", "/v1/namespaces/{namespace}/profiles/{profile}/recall"),
        ("POST", "/v1/databases/{db}/kv/{key}"),  # a write: counted by commits, not here
        ("GET", "/v1/ready"),  # a probe
        ("GET", "/metrics"),
    ]:
        m.requests.labels(method, route, "200").observe(0.01)
    load = parse_load("pod-a", generate_latest(m.registry).decode())
    assert (load.hot, load.warm, load.cache_bytes, load.shipped_bytes, load.reads, load.writes) == (
        3,
        4,
        4096,
        1000,
        3,
        7,
    )
    assert tenant_usage([load, load]) == {
        "databases": 14,
        "cacheBytes": 8192,
        "shippedBytes": 2000,
        "reads": 6,
        "writes": 14,
        "storeBytes": 0,
        "storeObjects": 0,
    }


def test_store_usage_is_the_newest_node_measurement_not_the_sum():
    """Every node lists the same bucket: the tenant holds the newest measurement one node made
    (smaller than an older one after GC shrank the store), not the nodes' figures added up."""
    from memoturn.metrics import NodeMetrics
    from memoturn_operator.dataplane import parse_load
    from memoturn_operator.tenant import tenant_usage
    from prometheus_client import generate_latest

    loads = []
    for pod, (objects, size, at) in {"a": (50, 12000, 1000), "b": (42, 9500, 2000), "c": (0, 0, 0)}.items():
        m = NodeMetrics()
        m.store_objects.set(objects)
        m.store_bytes.set(size)
        m.store_usage_timestamp.set(at)  # "c" has not measured yet
        loads.append(parse_load(pod, generate_latest(m.registry).decode()))
    assert [(x.store_objects, x.store_bytes, x.store_measured_at) for x in loads] == [
        (50, 12000, 1000),
        (42, 9500, 2000),
        (0, 0, 0),
    ]
    usage = tenant_usage(loads)
    assert (usage["storeObjects"], usage["storeBytes"]) == (42, 9500)
    assert tenant_usage([])["storeBytes"] == 0


def test_gateway_cors_origins_reach_its_environment_and_bad_ones_are_refused():
    _, gateway = _deployments(SPEC)
    assert "MEMOTURN_CORS_ORIGINS" not in {e["name"] for e in gateway["containers"][0].get("env", [])}
    spec = SPEC.model_copy(deep=True)
    spec.gateway = spec.gateway.model_validate({"corsOrigins": ["https://app.example", "http://localhost:5173"]})
    _, gateway = _deployments(spec)
    env = {e["name"]: e.get("value") for e in gateway["containers"][0]["env"]}
    assert env["MEMOTURN_CORS_ORIGINS"] == "https://app.example,http://localhost:5173"
    for bad in (["app.example"], ["https://app.example/x"], ["*", "https://a.b"]):
        with pytest.raises(ValidationError, match="CORS origin|stands alone"):
            MemoryTenantSpec.model_validate({**SPEC.model_dump(exclude_none=True), "gateway": {"corsOrigins": bad}})
