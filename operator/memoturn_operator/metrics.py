"""Operator metrics (Prometheus): how often it reconciles and how much each reconcile changes.

``memoturn_operator_object_changes_total`` staying flat while reconciles keep running is
the evidence that reconciling is idempotent (no hot loop): an unchanged tenant produces no
writes.
"""

from __future__ import annotations

from memoturn.netaddr import parse_host_port
from prometheus_client import CollectorRegistry, Counter, start_http_server

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
retries = Counter(
    "memoturn_operator_retries", "Reconciles postponed (API server or data plane away)", ["kind"], registry=registry
)


def serve(address: str) -> None:
    """Expose the metrics on ``HOST:PORT`` (``:PORT``: every interface) from a daemon thread."""
    text = address.strip()
    host, port = parse_host_port(
        "0.0.0.0" + text if text.startswith(":") else text, what="MEMOTURN_OPERATOR_METRICS_LISTEN"
    )
    start_http_server(port, addr=host, registry=registry)
