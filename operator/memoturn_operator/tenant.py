"""Reconcile one ``MemoryTenant``: apply what it should own, size the node set, report status.

The steps, each safe to repeat:

1. the token Secret, created once when the tenant names none (never overwritten: clients
   hold that token);
2. every object from :func:`.resources.desired`, by server-side apply (idempotent, repairs
   drift, recreates deleted dependents);
3. tier scaling: each ready node's ``/metrics`` gives its hot and warm counts;
   :func:`.resources.scale_decision` picks the node count (hysteresis, and at most one step
   per cooldown). Before a scale-down every node pod is annotated with its hot count as its
   ``pod-deletion-cost``, so the ReplicaSet removes the least-loaded one; that pod gets
   SIGTERM and drains (ships its tail, releases its branches) within its grace period;
4. status from what the API server reports (:func:`.status.tenant_status`), written only
   when it changed.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import GROUP, VERSION, metrics
from .dataplane import NodeLoad, scrape
from .kube import Kube
from .models import MemoryTenantSpec
from .resources import GATEWAY_PORT, NODE_PORT, desired, labels, names, scale_decision, token_secret
from .settings import load as load_settings
from .status import tenant_status

log = logging.getLogger("memoturn.operator")

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


@dataclass
class Memory:
    """What the operator remembers between reconciles of one tenant (lost on restart: harmless)."""

    # object -> its generation (or resourceVersion, for kinds without one) after our last apply:
    # a status update by a controller moves neither, so only our own changes count as changes.
    versions: dict[str, str] = field(default_factory=dict)
    last_scale: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Outcome:
    changed: list[str]
    status: dict[str, Any]
    status_written: bool
    replicas: int


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def node_loads(kube: Kube, namespace: str, tenant: str) -> list[NodeLoad]:
    loads = []
    for pod in kube.pods(namespace, labels(tenant, "node")):
        ip = (pod.get("status") or {}).get("podIP")
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
        if ip and ready and not pod["metadata"].get("deletionTimestamp"):
            load = scrape(pod["metadata"]["name"], ip, NODE_PORT)
            if load is not None:
                loads.append(load)
    return loads


def _replicas(
    kube: Kube,
    namespace: str,
    tenant: str,
    spec: MemoryTenantSpec,
    loads: list[NodeLoad],
    memory: Memory,
    *,
    scale: bool,
) -> int:
    current = kube.get("apps/v1", "Deployment", namespace, names(tenant)["node"])
    have = (current or {}).get("spec", {}).get("replicas") or spec.nodes.minReplicas
    have = min(max(have, spec.nodes.minReplicas), spec.nodes.maxReplicas)
    if not scale or current is None:
        return have
    want = scale_decision(have, [load.hot for load in loads], spec)
    if want == have or time.monotonic() - memory.last_scale < load_settings().scale_cooldown_seconds:
        return have
    if want < have:
        for load in loads:  # the ReplicaSet removes the pod with the lowest cost first
            kube.annotate_pod(namespace, load.pod, {DELETION_COST: str(load.hot)})
    memory.last_scale = time.monotonic()
    metrics.scale_events.labels("out" if want > have else "in").inc()
    log.info(
        "tenant %s/%s: scaling nodes %d -> %d (hot per node %s, target %d)",
        namespace,
        tenant,
        have,
        want,
        [load.hot for load in loads],
        spec.nodes.hotPerNodeTarget,
    )
    return want


def reconcile(kube: Kube, body: dict[str, Any], memory: Memory, *, scale: bool = False) -> Outcome:
    meta = body["metadata"]
    tenant, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    spec = MemoryTenantSpec.model_validate(body["spec"])
    with memory.lock:
        changed: list[str] = []
        if not spec.auth.tokenSecret:
            if kube.create_if_absent(token_secret(tenant, namespace, uid, secrets.token_urlsafe(32))):
                changed.append(f"Secret/{names(tenant)['token']}")
        loads = node_loads(kube, namespace, tenant)
        replicas = _replicas(kube, namespace, tenant, spec, loads, memory, scale=scale)
        applied: dict[str, dict[str, Any]] = {}
        for obj in desired(tenant, namespace, uid, spec, node_replicas=replicas):
            stored = kube.apply(obj)
            key = _key(obj)
            version = str(stored["metadata"].get("generation") or stored["metadata"]["resourceVersion"])
            if memory.versions.get(key) != version:
                changed.append(key)
                memory.versions[key] = version
            applied[key] = stored
        status, written = write_status(
            kube,
            body,
            applied.get(f"Deployment/{names(tenant)['node']}"),
            applied.get(f"Deployment/{names(tenant)['gateway']}"),
            loads,
        )
        return Outcome(changed, status, written, replicas)


def write_status(
    kube: Kube,
    body: dict[str, Any],
    node: dict[str, Any] | None,
    gateway: dict[str, Any] | None,
    loads: list[NodeLoad] | None,
) -> tuple[dict[str, Any], bool]:
    """Compute the status from the Deployments as stored; patch it if it differs."""
    meta = body["metadata"]
    tenant, namespace = meta["name"], meta["namespace"]
    previous = body.get("status") or {}
    n = names(tenant)
    hot = sum(load.hot for load in loads) if loads is not None else previous.get("hotDatabases", 0)
    warm = sum(load.warm for load in loads) if loads is not None else previous.get("warmDatabases", 0)
    status = tenant_status(
        meta.get("generation", 1),
        node,
        gateway,
        previous.get("conditions"),
        hot=hot,
        warm=warm,
        endpoints={"gateway": f"http://{n['gateway']}.{namespace}.svc:{GATEWAY_PORT}"},
    ).model_dump(mode="json", exclude_none=True)
    comparable = {k: v for k, v in previous.items() if k in status}
    if comparable == status:
        return status, False
    kube._call(
        f"patch MemoryTenant {namespace}/{tenant} status",
        kube.custom.patch_namespaced_custom_object_status,
        GROUP,
        VERSION,
        namespace,
        "memorytenants",
        tenant,
        {"status": status},
    )
    return status, True


def refresh_status(kube: Kube, namespace: str, tenant: str) -> bool:
    """Re-derive a tenant's status after one of its Deployments changed (no applies, no scrapes)."""
    body = kube.tenant(GROUP, VERSION, namespace, tenant)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return False
    n = names(tenant)
    node = kube.get("apps/v1", "Deployment", namespace, n["node"])
    gateway = kube.get("apps/v1", "Deployment", namespace, n["gateway"])
    return write_status(kube, body, node, gateway, None)[1]
