"""Pure functions from a ``MemoryTenant`` to the Kubernetes objects it should own.

No I/O here: the handlers apply what these return (server-side apply, so re-running a
reconcile changes nothing and drift is repaired), and the unit tests check them directly.

The data plane needs no access to the Kubernetes API, so its ServiceAccount gets no role and
mounts no token. Nodes keep their cache in an ``emptyDir`` with a size limit: there are no
PersistentVolumeClaims. A hash of the ConfigMap's content in the pod templates rolls the pods when it changes.

Scheduling: every pod has requests and limits (defaults in :mod:`.models`: never BestEffort),
node pods spread across zones and hosts and gateway pods prefer distinct hosts unless the
tenant says otherwise; both components have a PodDisruptionBudget. A NetworkPolicy per
component opens the gateway to clients and the nodes only to the gateway, their peers, the
operator and whatever ``spec.networkPolicy.nodesFrom`` adds. With ``spec.tls`` both serve
HTTPS from the tenant's certificate Secret and the gateway verifies the nodes against its CA.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from typing import Any

from . import GROUP, VERSION
from .models import MemoryTenantSpec, Placement

NODE_PORT = 7411
GATEWAY_PORT = 7400
DATA_DIR = "/var/lib/memoturn"


def names(tenant: str) -> dict[str, str]:
    base = f"{tenant}-memoturn"
    return {
        "base": base,
        "node": f"{base}-node",
        "gateway": f"{base}-gateway",
        "config": base,
        "account": base,
        "token": f"{base}-token",
        "pdb": f"{base}-node",
        "gateway_pdb": f"{base}-gateway",
        "node_policy": f"{base}-node",
        "gateway_policy": f"{base}-gateway",
    }


def labels(tenant: str, component: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": "memoturn",
        "app.kubernetes.io/instance": tenant,
        "app.kubernetes.io/managed-by": "memoturn-operator",
    }
    if component:
        out["app.kubernetes.io/component"] = component
    return out


def owner_reference(tenant: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MemoryTenant",
        "name": tenant,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(name: str, namespace: str, tenant: str, uid: str, component: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels(tenant, component),
        "ownerReferences": [owner_reference(tenant, uid)],
    }


def config_hash(tenant: str, namespace: str, spec: MemoryTenantSpec) -> str:
    """A hash of what the pods read from the ConfigMap: changing it rolls the pods.

    A Deployment rolls by itself when its pod template changes; the ConfigMap's content is
    not part of the template, so its hash is put there. Spec fields that touch neither (the
    replica bounds, say) roll nothing.
    """
    data = config_map(tenant, namespace, "", spec)["data"]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


#: Where a gcs credentialsSecret's service-account.json is mounted.
GCS_CREDENTIALS_DIR = "/var/run/secrets/memoturn/gcs"
#: The keys a credentialsSecret holds, by provider (each becomes the variable of the same name,
#: except gcs's file, which is mounted and named by GOOGLE_APPLICATION_CREDENTIALS).
CREDENTIAL_KEYS = {
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    "gcs": ("service-account.json",),
    "azure": ("AZURE_STORAGE_ACCOUNT_KEY",),
}


def store_url(spec: MemoryTenantSpec) -> str:
    """``MEMOTURN_STORE_URL`` for the tenant: ``s3://``, ``gs://`` or ``az://`` bucket/prefix?options."""
    s = spec.objectStore
    scheme = {"s3": "s3", "gcs": "gs", "azure": "az"}[s.provider]
    query: dict[str, str] = {}
    if s.provider == "s3":
        query["region"] = s.region
    if s.provider == "azure" and s.account:
        query["account"] = s.account
    if s.endpoint:
        query["endpoint"] = s.endpoint
    url = f"{scheme}://{s.bucket}/{s.prefix.strip('/')}"
    return f"{url}?{urllib.parse.urlencode(query)}" if query else url


def etcd_prefix(namespace: str, tenant: str) -> str:
    return f"/memoturn/{namespace}/{tenant}"


#: Where an etcd tlsSecret (ca.crt, tls.crt, tls.key) is mounted in node and gateway pods.
ETCD_TLS_DIR = "/var/run/secrets/memoturn/etcd"
#: The keys of an etcd tlsSecret and the variable naming each file.
ETCD_TLS_FILES = {
    "ca.crt": "MEMOTURN_ETCD_CA_FILE",
    "tls.crt": "MEMOTURN_ETCD_CERT_FILE",
    "tls.key": "MEMOTURN_ETCD_KEY_FILE",
}
#: The keys of an etcd credentialsSecret and the variable each becomes.
ETCD_CREDENTIAL_KEYS = {"username": "MEMOTURN_ETCD_USERNAME", "password": "MEMOTURN_ETCD_PASSWORD"}


def _etcd_env(spec: MemoryTenantSpec) -> list[dict[str, Any]]:
    """How node and gateway pods reach a secured etcd: file paths of the tlsSecret, credentials from
    the credentialsSecret (never in the ConfigMap)."""
    etcd = spec.etcd
    env: list[dict[str, Any]] = []
    if etcd.tlsSecret:
        env += [{"name": var, "value": f"{ETCD_TLS_DIR}/{key}"} for key, var in ETCD_TLS_FILES.items()]
    if etcd.credentialsSecret:
        env += [
            {"name": var, "valueFrom": {"secretKeyRef": {"name": etcd.credentialsSecret, "key": key}}}
            for key, var in ETCD_CREDENTIAL_KEYS.items()
        ]
    return env


def _etcd_volumes(spec: MemoryTenantSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts) for the etcd tlsSecret, read-only; none without one."""
    secret = spec.etcd.tlsSecret
    if not secret:
        return [], []
    volume = {
        "name": "etcd-tls",
        "secret": {"secretName": secret, "items": [{"key": key, "path": key} for key in ETCD_TLS_FILES]},
    }
    return [volume], [{"name": "etcd-tls", "mountPath": ETCD_TLS_DIR, "readOnly": True}]


#: Where a tenant's tls Secret (tls.crt, tls.key, ca.crt) is mounted in node and gateway pods.
TLS_DIR = "/etc/memoturn/tls"
#: The variables naming its files: node and gateway serve HTTPS with the first two; the gateway
#: (proxying) and the nodes (replicating to their peers) verify nodes against the CA.
TLS_SERVER_ENV = {"MEMOTURN_TLS_CERT_FILE": "tls.crt", "MEMOTURN_TLS_KEY_FILE": "tls.key"}
TLS_NODE_CA_ENV = "MEMOTURN_NODE_CA_FILE"


def scheme(spec: MemoryTenantSpec) -> str:
    return "https" if spec.tls else "http"


def _tls_env(spec: MemoryTenantSpec) -> list[dict[str, Any]]:
    if not spec.tls:
        return []
    env = [{"name": var, "value": f"{TLS_DIR}/{key}"} for var, key in TLS_SERVER_ENV.items()]
    return [*env, {"name": TLS_NODE_CA_ENV, "value": f"{TLS_DIR}/ca.crt"}]


def _tls_volumes(spec: MemoryTenantSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts) for the tls Secret, read-only (every key: ca.crt when it has one)."""
    if not spec.tls:
        return [], []
    volume = {"name": "tls", "secret": {"secretName": spec.tls.secretName}}
    return [volume], [{"name": "tls", "mountPath": TLS_DIR, "readOnly": True}]


def node_host(tenant: str, namespace: str) -> str:
    """The DNS suffix of node pods (``<pod>.<this>``): a certificate for ``*.<this>`` covers every node."""
    return f"{names(tenant)['node']}.{namespace}.svc"


def _http_get(path: str, spec: MemoryTenantSpec) -> dict[str, Any]:
    probe: dict[str, Any] = {"path": path, "port": "http"}
    if spec.tls:
        probe["scheme"] = "HTTPS"  # the kubelet does not verify the certificate
    return probe


def _spread(p: Placement, own: dict[str, str], default: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tenant's topologySpreadConstraints (a missing labelSelector selects the component's own
    pods), or the default when it gives none."""
    if p.topologySpreadConstraints is None:
        return default
    out = []
    for c in p.topologySpreadConstraints:
        item = c.model_dump(exclude_none=True)
        item.setdefault("labelSelector", {"matchLabels": own})
        out.append(item)
    return out


def _scheduling(
    spec: MemoryTenantSpec, p: Placement, own: dict[str, str], *, spread: list[dict[str, Any]], affinity: dict[str, Any]
) -> dict[str, Any]:
    """The pod spec fields that place a component's pods (only those with something to say)."""
    out: dict[str, Any] = {}
    if p.nodeSelector:
        out["nodeSelector"] = dict(p.nodeSelector)
    if p.tolerations:
        out["tolerations"] = [t.model_dump(exclude_none=True) for t in p.tolerations]
    chosen = p.affinity if p.affinity is not None else affinity
    if chosen:
        out["affinity"] = chosen
    if constraints := _spread(p, own, spread):
        out["topologySpreadConstraints"] = constraints
    if p.priorityClassName:
        out["priorityClassName"] = p.priorityClassName
    if spec.imagePullSecrets:
        out["imagePullSecrets"] = [r.model_dump() for r in spec.imagePullSecrets]
    return out


def _default_node_spread(own: dict[str, str]) -> list[dict[str, Any]]:
    """Nodes across zones, then hosts; ScheduleAnyway: a single-zone or single-host cluster still runs them."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": own},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def _default_gateway_affinity(own: dict[str, str]) -> dict[str, Any]:
    """Gateways prefer distinct hosts: one host going away leaves the others serving."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": own},
                    },
                }
            ]
        }
    }


def config_map(tenant: str, namespace: str, uid: str, spec: MemoryTenantSpec) -> dict[str, Any]:
    data = {
        "MEMOTURN_STORE_URL": store_url(spec),
        "MEMOTURN_ETCD_ENDPOINTS": ",".join(spec.etcd.endpoints),
        "MEMOTURN_ETCD_PREFIX": etcd_prefix(namespace, tenant),
        "MEMOTURN_LEASE_TTL_SECONDS": str(spec.leaseTtlSeconds),
        "MEMOTURN_DURABILITY": spec.durability,
        "MEMOTURN_REPLICAS": str(spec.replicasPerDatabase),
        "MEMOTURN_HOT_IDLE_SECONDS": str(spec.tiers.hotIdleSeconds),
        "MEMOTURN_WARM_IDLE_SECONDS": str(spec.tiers.warmIdleSeconds),
        "MEMOTURN_MAX_HOT": str(spec.tiers.maxHot),
        "MEMOTURN_MAX_DISK_BYTES": str(spec.tiers.maxDiskBytes),
        "MEMOTURN_DATA_DIR": DATA_DIR,
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(names(tenant)["config"], namespace, tenant, uid),
        "data": data,
    }


def service_account(tenant: str, namespace: str, uid: str, spec: MemoryTenantSpec) -> dict[str, Any]:
    """The data plane's ServiceAccount: no role; annotated for the cloud's workload identity."""
    meta = _meta(names(tenant)["account"], namespace, tenant, uid)
    if spec.objectStore.serviceAccountAnnotations:
        meta["annotations"] = dict(spec.objectStore.serviceAccountAnnotations)
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False}


def token_secret(tenant: str, namespace: str, uid: str, token: str) -> dict[str, Any]:
    """The generated admin token (only created when the tenant names none; never rotated here)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(names(tenant)["token"], namespace, tenant, uid),
        "stringData": {"admin-token": token},
    }


def token_secret_name(tenant: str, spec: MemoryTenantSpec) -> str:
    return spec.auth.tokenSecret or names(tenant)["token"]


def _env(tenant: str, spec: MemoryTenantSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {
            "name": "MEMOTURN_ADMIN_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": token_secret_name(tenant, spec), "key": "admin-token"}},
        },
    ]
    store = spec.objectStore
    if store.credentialsSecret and store.provider == "gcs":
        env.append({"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": f"{GCS_CREDENTIALS_DIR}/service-account.json"})
    elif store.credentialsSecret:
        for key in CREDENTIAL_KEYS[store.provider]:
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": store.credentialsSecret, "key": key}}})
    return env


def _store_volumes(spec: MemoryTenantSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts) for a gcs service-account file; none otherwise."""
    store = spec.objectStore
    if store.provider != "gcs" or not store.credentialsSecret:
        return [], []
    volume = {
        "name": "gcs-credentials",
        "secret": {
            "secretName": store.credentialsSecret,
            "items": [{"key": "service-account.json", "path": "service-account.json"}],
        },
    }
    return [volume], [{"name": "gcs-credentials", "mountPath": GCS_CREDENTIALS_DIR, "readOnly": True}]


def _workload_identity_labels(spec: MemoryTenantSpec) -> dict[str, str]:
    """AKS injects the federated token only into pods that ask for it (EKS and GKE need no label)."""
    store = spec.objectStore
    if store.provider == "azure" and not store.credentialsSecret:
        return {"azure.workload.identity/use": "true"}
    return {}


def _security() -> dict[str, Any]:
    """Container securityContext that the ``restricted`` Pod Security profile admits."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(requests: dict[str, str], limits: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = dict(requests)
    if limits:
        out["limits"] = dict(limits)
    return out


def _pod_security(fs_group: bool = False) -> dict[str, Any]:
    """Pod securityContext: the image's uid 10001 and the runtime's seccomp profile (``restricted``)."""
    ctx: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if fs_group:
        ctx["fsGroup"] = 10001
    return ctx


def node_deployment(tenant: str, namespace: str, uid: str, spec: MemoryTenantSpec, replicas: int) -> dict[str, Any]:
    n = names(tenant)
    sel = labels(tenant, "node")
    store_volumes, store_mounts = _store_volumes(spec)
    etcd_volumes, etcd_mounts = _etcd_volumes(spec)
    tls_volumes, tls_mounts = _tls_volumes(spec)
    # With TLS a node advertises its DNS name (the pod's hostname under the headless Service,
    # which a wildcard certificate covers); without, its IP.
    host = f"$(POD_NAME).{node_host(tenant, namespace)}" if spec.tls else "$(POD_IP)"
    container = {
        "name": "memoturnd",
        "image": spec.image,
        "command": ["memoturnd"],
        "args": ["--listen", f"0.0.0.0:{NODE_PORT}"],
        "ports": [{"name": "http", "containerPort": NODE_PORT}],
        "envFrom": [{"configMapRef": {"name": n["config"]}}],
        "env": _env(tenant, spec)
        + [
            {"name": "MEMOTURN_NODE_ID", "value": "$(POD_NAME)"},
            {"name": "MEMOTURN_ADVERTISE_URL", "value": f"{scheme(spec)}://{host}:{NODE_PORT}"},
        ]
        + _etcd_env(spec)
        + _tls_env(spec),
        "readinessProbe": {"httpGet": _http_get("/v1/ready", spec), "periodSeconds": 2, "failureThreshold": 2},
        "livenessProbe": {
            "httpGet": _http_get("/v1/health", spec),
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "volumeMounts": [
            {"name": "cache", "mountPath": DATA_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            *store_mounts,
            *etcd_mounts,
            *tls_mounts,
        ],
        "resources": _resources(spec.nodes.resources.requests, spec.nodes.resources.limits),
        "securityContext": _security(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(n["node"], namespace, tenant, uid, "node"),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": sel},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": {**sel, **_workload_identity_labels(spec)},
                    "annotations": {f"{GROUP}/config-hash": config_hash(tenant, namespace, spec)},
                },
                "spec": {
                    "serviceAccountName": n["account"],
                    "automountServiceAccountToken": False,
                    # SIGTERM ships the tail and revokes the lease; give it time to.
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": _pod_security(fs_group=True),
                    **({"subdomain": n["node"]} if spec.tls else {}),
                    **_scheduling(spec, spec.nodes, sel, spread=_default_node_spread(sel), affinity={}),
                    "containers": [container],
                    "volumes": [
                        {"name": "cache", "emptyDir": {"sizeLimit": spec.nodes.cacheSizeLimit}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                        *store_volumes,
                        *etcd_volumes,
                        *tls_volumes,
                    ],
                },
            },
        },
    }


def gateway_deployment(tenant: str, namespace: str, uid: str, spec: MemoryTenantSpec) -> dict[str, Any]:
    n = names(tenant)
    sel = labels(tenant, "gateway")
    etcd_volumes, etcd_mounts = _etcd_volumes(spec)
    tls_volumes, tls_mounts = _tls_volumes(spec)
    volumes, mounts = etcd_volumes + tls_volumes, etcd_mounts + tls_mounts
    container: dict[str, Any] = {
        "name": "gateway",
        "image": spec.image,
        "command": ["memoturn-gateway"],
        "args": [
            "--listen",
            f"0.0.0.0:{GATEWAY_PORT}",
            "--etcd",
            ",".join(spec.etcd.endpoints),
            "--prefix",
            etcd_prefix(namespace, tenant),
        ],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT}],
        "readinessProbe": {"httpGet": _http_get("/v1/gateway/health", spec), "periodSeconds": 2},
        # The health endpoint answers while the process serves (it does not depend on etcd):
        # failing it means a hung gateway, which a restart cures.
        "livenessProbe": {"httpGet": _http_get("/v1/gateway/health", spec), "periodSeconds": 10, "failureThreshold": 3},
        "resources": _resources(spec.gateway.resources.requests, spec.gateway.resources.limits),
        "securityContext": _security(),
    }
    cors = [{"name": "MEMOTURN_CORS_ORIGINS", "value": ",".join(spec.gateway.corsOrigins)}]
    if env := _etcd_env(spec) + _tls_env(spec) + (cors if spec.gateway.corsOrigins else []):
        container["env"] = env
    if mounts:
        container["volumeMounts"] = mounts
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(n["gateway"], namespace, tenant, uid, "gateway"),
        "spec": {
            "replicas": spec.gateway.replicas,
            "selector": {"matchLabels": sel},
            "template": {
                "metadata": {
                    "labels": sel,
                    "annotations": {f"{GROUP}/config-hash": config_hash(tenant, namespace, spec)},
                },
                "spec": {
                    "serviceAccountName": n["account"],
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security(),
                    **_scheduling(spec, spec.gateway, sel, spread=[], affinity=_default_gateway_affinity(sel)),
                    "containers": [container],
                    **({"volumes": volumes} if volumes else {}),
                },
            },
        },
    }


def services(tenant: str, namespace: str, uid: str, spec: MemoryTenantSpec | None = None) -> list[dict[str, Any]]:
    n = names(tenant)
    tls = bool(spec and spec.tls)
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(n["gateway"], namespace, tenant, uid, "gateway"),
            "spec": {
                "selector": labels(tenant, "gateway"),
                "ports": [{"name": "http", "port": GATEWAY_PORT, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(n["node"], namespace, tenant, uid, "node"),
            "spec": {
                "clusterIP": "None",
                # With TLS, nodes are reached by DNS name: each has one from its start, as it has an IP.
                **({"publishNotReadyAddresses": True} if tls else {}),
                "selector": labels(tenant, "node"),
                "ports": [{"name": "http", "port": NODE_PORT, "targetPort": "http"}],
            },
        },
    ]


def disruption_budget(tenant: str, namespace: str, uid: str, component: str = "node") -> dict[str, Any]:
    """At most one pod of the component down at a time during voluntary disruptions (a drain).

    ``maxUnavailable: 1`` rather than ``minAvailable: 1``: with a single replica a drain can still
    evict it (``minAvailable`` would block the drain for good)."""
    name = names(tenant)["pdb" if component == "node" else "gateway_pdb"]
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(name, namespace, tenant, uid, component),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(tenant, component)}},
    }


#: The operator's pod labels (the chart's selector labels): the nodes let it in.
OPERATOR_LABELS = {"app.kubernetes.io/name": "memoturn", "app.kubernetes.io/component": "operator"}


def _operator_peer(operator_namespace: str | None) -> dict[str, Any]:
    namespaces: dict[str, Any] = (
        {"matchLabels": {"kubernetes.io/metadata.name": operator_namespace}} if operator_namespace else {}
    )
    return {"namespaceSelector": namespaces, "podSelector": {"matchLabels": dict(OPERATOR_LABELS)}}


def network_policies(
    tenant: str, namespace: str, uid: str, spec: MemoryTenantSpec, operator_namespace: str | None = None
) -> list[dict[str, Any]]:
    """Ingress rules (egress stays open: nodes reach the object store and etcd wherever they are).

    The gateway: every client, or only ``gatewayFrom`` (plus the operator, which calls the branch
    API). The nodes: the gateway, their peers (replication), the operator (readiness, metrics)
    and ``nodesFrom`` (Prometheus, say). The operator is found by its labels in its namespace
    (``MEMOTURN_OPERATOR_NAMESPACE``; unset: in any namespace)."""
    n, policy = names(tenant), spec.networkPolicy
    if not policy.enabled:
        return []
    operator = _operator_peer(operator_namespace)
    gateway_rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": GATEWAY_PORT}]}
    if policy.gatewayFrom:
        gateway_rule["from"] = [*policy.gatewayFrom, operator]
    node_from = [
        {"podSelector": {"matchLabels": labels(tenant, "gateway")}},
        {"podSelector": {"matchLabels": labels(tenant, "node")}},
        operator,
        *policy.nodesFrom,
    ]
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(n["gateway_policy"], namespace, tenant, uid, "gateway"),
            "spec": {
                "podSelector": {"matchLabels": labels(tenant, "gateway")},
                "policyTypes": ["Ingress"],
                "ingress": [gateway_rule],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(n["node_policy"], namespace, tenant, uid, "node"),
            "spec": {
                "podSelector": {"matchLabels": labels(tenant, "node")},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"protocol": "TCP", "port": NODE_PORT}], "from": node_from}],
            },
        },
    ]


def desired(
    tenant: str,
    namespace: str,
    uid: str,
    spec: MemoryTenantSpec,
    node_replicas: int | None = None,
    operator_namespace: str | None = None,
) -> list[dict[str, Any]]:
    """Every object the tenant owns except the token Secret (created once, see :func:`token_secret`)."""
    replicas = min(max(node_replicas or spec.nodes.minReplicas, spec.nodes.minReplicas), spec.nodes.maxReplicas)
    return [
        service_account(tenant, namespace, uid, spec),
        config_map(tenant, namespace, uid, spec),
        node_deployment(tenant, namespace, uid, spec, replicas),
        gateway_deployment(tenant, namespace, uid, spec),
        *services(tenant, namespace, uid, spec),
        disruption_budget(tenant, namespace, uid),
        disruption_budget(tenant, namespace, uid, "gateway"),
        *network_policies(tenant, namespace, uid, spec, operator_namespace),
    ]


def scale_decision(current: int, hot_per_node: list[int], spec: MemoryTenantSpec, *, low_water: float = 0.5) -> int:
    """Node count for the hot set, with hysteresis: grow above the target, shrink below half of it."""
    if not hot_per_node:
        return max(current, spec.nodes.minReplicas)
    total = sum(hot_per_node)
    target = spec.nodes.hotPerNodeTarget
    want = current
    if total / len(hot_per_node) > target:
        want = -(-total // target)
    elif current > 1 and total / (current - 1) < target * low_water:
        want = current - 1
    return min(max(want, spec.nodes.minReplicas), spec.nodes.maxReplicas)
