"""Operator metrics (Prometheus): how often it reconciles and how much each reconcile changes.

``memoturn_operator_object_changes_total`` staying flat while reconciles keep running is
the evidence that reconciling is idempotent (no hot loop): an unchanged tenant produces no
writes. ``memoturn_operator_tenant_condition`` and ``memoturn_operator_node_ready`` mirror
what each tenant's status and each node's ``/v1/ready`` say, for the chart's alerts;
``memoturn_operator_tenant_usage`` mirrors each tenant's ``status.usage``.
"""

from __future__ import annotations

from typing import Any

from memoturn.netaddr import parse_host_port
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

registry = CollectorRegistry()
reconciles = Counter("memoturn_operator_reconciles", "Reconciles run", ["kind", "trigger"], registry=registry)
changes = Counter(
    "memoturn_operator_object_changes", "Objects a reconcile created or changed", ["kind"], registry=registry
)
status_writes = Counter("memoturn_operator_status_writes", "Status patches written", ["kind"], registry=registry)
lease_revocations = Counter(
    "memoturn_operator_lease_revocations", "etcd leases revoked for dead node pods", registry=registry
)
scale_events = Counter(
    "memoturn_operator_scale_events", "Node Deployment replica changes", ["direction"], registry=registry
)
applies_skipped = Counter(
    "memoturn_operator_applies_skipped",
    "Resyncs of an unchanged tenant that read its Deployments instead of re-applying its objects",
    registry=registry,
)
status_conditions = Gauge(
    "memoturn_operator_tenant_condition",
    "1 when the tenant's condition has this status (Ready, Stalled, ObjectStoreReachable, ...)",
    ["namespace", "tenant", "type", "status"],
    registry=registry,
)
node_ready = Gauge(
    "memoturn_operator_node_ready",
    "1 when the node pod answered /v1/ready with 200 at the last resync, 0 otherwise",
    ["namespace", "tenant", "pod"],
    registry=registry,
)
_node_pods: dict[tuple[str, str], set[str]] = {}
tenant_usage = Gauge(
    "memoturn_operator_tenant_usage",
    "A tenant's status.usage: databases, cacheBytes, shippedBytes, reads, writes (counters since the node pods "
    "started), storeBytes, storeObjects (the bucket as last listed)",
    ["namespace", "tenant", "kind"],
    registry=registry,
)
retries = Counter(
    "memoturn_operator_retries", "Reconciles postponed (API server or data plane away)", ["kind"], registry=registry
)


def record_conditions(namespace: str, tenant: str, conditions: list[dict[str, Any]]) -> None:
    """Mirror a tenant's conditions into ``memoturn_operator_tenant_condition`` (what the alerts read)."""
    for c in conditions:
        for value in ("True", "False", "Unknown"):
            status_conditions.labels(namespace, tenant, c["type"], value).set(1 if c.get("status") == value else 0)


def record_nodes(namespace: str, tenant: str, ready: dict[str, bool]) -> None:
    """One gauge per running node pod of the tenant; pods gone since the last resync are dropped."""
    for pod in _node_pods.get((namespace, tenant), set()) - set(ready):
        node_ready.remove(namespace, tenant, pod)
    for pod, ok in ready.items():
        node_ready.labels(namespace, tenant, pod).set(1 if ok else 0)
    _node_pods[(namespace, tenant)] = set(ready)


def record_usage(namespace: str, tenant: str, usage: dict[str, int]) -> None:
    """Mirror a tenant's ``status.usage`` into ``memoturn_operator_tenant_usage``."""
    for kind, value in usage.items():
        tenant_usage.labels(namespace, tenant, kind).set(value)


def forget_tenant(namespace: str, tenant: str, types: tuple[str, ...]) -> None:
    record_nodes(namespace, tenant, {})
    for kind in ("databases", "cacheBytes", "shippedBytes", "reads", "writes", "storeBytes", "storeObjects"):
        try:
            tenant_usage.remove(namespace, tenant, kind)
        except KeyError:
            pass
    for type_ in types:
        for value in ("True", "False", "Unknown"):
            try:
                status_conditions.remove(namespace, tenant, type_, value)
            except KeyError:
                pass


def serve(address: str) -> None:
    """Expose the metrics on ``HOST:PORT`` (``:PORT``: every interface) from a daemon thread."""
    text = address.strip()
    host, port = parse_host_port(
        "0.0.0.0" + text if text.startswith(":") else text, what="MEMOTURN_OPERATOR_METRICS_LISTEN"
    )
    start_http_server(port, addr=host, registry=registry)
