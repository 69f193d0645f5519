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
        assert "$ref" not in node and "anyOf" not in node and "title" not in node
        if "properties" in node:
            assert "additionalProperties" not in node
        for value in node.get("properties", {}).values():
            walk(value)
        if isinstance(node.get("items"), dict):
            walk(node["items"])

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
