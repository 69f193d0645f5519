"""Reconcile one ``MemoryTenant``: apply what it should own, size the node set, report status.

The steps, each safe to repeat:

1. the token Secret, created once when the tenant names none (never overwritten: clients
   hold that token);
2. every object from :func:`.resources.desired`, by server-side apply (idempotent, repairs
   drift, recreates deleted dependents);
3. the nodes: each node pod's ``/v1/ready`` says whether it can use its object store and etcd
   (and why not: the dependency conditions of the status); each ready node's ``/metrics``
   gives its hot and warm counts and its usage (databases, bytes, reads, writes). With
   ``spec.tls`` these go over HTTPS, trusting the tenant Secret's ``ca.crt``. Tier scaling:
   :func:`.resources.scale_decision` picks the node count (hysteresis, and at most one step
   per cooldown). Before a scale-down every node pod is annotated with its hot count as its
   ``pod-deletion-cost``, so the ReplicaSet removes the least-loaded one; that pod gets
   SIGTERM and drains (ships its tail, releases its branches) within its grace period;
4. status from what the API server and the nodes report (:func:`.status.tenant_status`),
   written only when it changed; a changed condition becomes an Event (:mod:`.events`).

A periodic resync (``scale=True``) of a tenant whose desired objects are the ones it last
applied skips step 2 (watch events on the owned objects already repair drift at once) and
reads the two Deployments instead: three API calls, plus a status patch when something
changed. Every ``MEMOTURN_OPERATOR_REAPPLY_SECONDS`` it applies anyway, as a safety net.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import GROUP, VERSION, events, metrics
from .dataplane import NodeLoad, NodeReadiness, Verify, probe, scrape, tls_context
from .kube import Kube
from .models import MemoryTenantSpec, TenantUsage
from .resources import GATEWAY_PORT, NODE_PORT, desired, labels, names, scale_decision, scheme, token_secret
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
    # digest of the desired objects last applied, and when (the idle resync skips re-applying them)
    applied_digest: str = ""
    applied_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Outcome:
    changed: list[str]
    status: dict[str, Any]
    status_written: bool
    replicas: int
    events: list[events.Event] = field(default_factory=list)
    applied: bool = True


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def node_trust(kube: Kube, namespace: str, spec: MemoryTenantSpec) -> Verify:
    """How to verify a tenant's nodes: the CA of its tls Secret (plain HTTP: nothing to verify)."""
    if not spec.tls:
        return True
    return tls_context(kube.secret_value(namespace, spec.tls.secretName, "ca.crt"))


def survey_nodes(
    kube: Kube, namespace: str, tenant: str, spec: MemoryTenantSpec | None = None
) -> tuple[list[NodeLoad], list[NodeReadiness]]:
    """Every running node pod's readiness answer, and the load of those that are ready."""
    loads, answers = [], []
    how = scheme(spec) if spec else "http"
    verify = node_trust(kube, namespace, spec) if spec else True
    for pod in kube.pods(namespace, labels(tenant, "node")):
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or pod["metadata"].get("deletionTimestamp"):
            continue
        name = pod["metadata"]["name"]
        answers.append(probe(name, ip, NODE_PORT, how, verify))
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
        if ready:
            load = scrape(name, ip, NODE_PORT, how, verify)
            if load is not None:
                loads.append(load)
    return loads, answers


def digest(objects: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()


def _replicas(
    kube: Kube,
    namespace: str,
    tenant: str,
    spec: MemoryTenantSpec,
    loads: list[NodeLoad],
    memory: Memory,
    current: dict[str, Any] | None,
    *,
    scale: bool,
) -> tuple[int, events.Event | None]:
    have = (current or {}).get("spec", {}).get("replicas") or spec.nodes.minReplicas
    have = min(max(have, spec.nodes.minReplicas), spec.nodes.maxReplicas)
    if not scale or current is None:
        return have, None
    want = scale_decision(have, [load.hot for load in loads], spec)
    if want == have or time.monotonic() - memory.last_scale < load_settings().scale_cooldown_seconds:
        return have, None
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
    return want, events.scaled(have, want, [load.hot for load in loads], spec.nodes.hotPerNodeTarget)


def reconcile(kube: Kube, body: dict[str, Any], memory: Memory, *, scale: bool = False) -> Outcome:
    """Apply, scale and report; ``scale=True`` is the periodic resync (which may skip applying)."""
    meta = body["metadata"]
    tenant, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    spec = MemoryTenantSpec.model_validate(body["spec"])
    n = names(tenant)
    with memory.lock:
        changed: list[str] = []
        idle = scale and bool(memory.applied_digest)
        if not spec.auth.tokenSecret and not idle:
            if kube.create_if_absent(token_secret(tenant, namespace, uid, secrets.token_urlsafe(32))):
                changed.append(f"Secret/{n['token']}")
        loads, answers = survey_nodes(kube, namespace, tenant, spec)
        metrics.record_nodes(namespace, tenant, {a.pod: bool(a.ready) for a in answers})
        current = kube.get("apps/v1", "Deployment", namespace, n["node"])
        replicas, scaled = _replicas(kube, namespace, tenant, spec, loads, memory, current, scale=scale)
        wanted = desired(
            tenant, namespace, uid, spec, node_replicas=replicas, operator_namespace=load_settings().operator_namespace
        )
        wanted_digest = digest(wanted)
        reapply_after = load_settings().reapply_seconds
        skip = (
            idle
            and current is not None
            and wanted_digest == memory.applied_digest
            and time.monotonic() - memory.applied_at < reapply_after
        )
        applied: dict[str, dict[str, Any]] = {}
        gateway = kube.get("apps/v1", "Deployment", namespace, n["gateway"]) if skip else None
        skip = skip and gateway is not None  # a missing gateway Deployment: re-apply now
        if skip and current is not None and gateway is not None:
            applied[f"Deployment/{n['node']}"] = current
            applied[f"Deployment/{n['gateway']}"] = gateway
        else:
            for obj in wanted:
                stored = kube.apply(obj)
                key = _key(obj)
                version = str(stored["metadata"].get("generation") or stored["metadata"]["resourceVersion"])
                if memory.versions.get(key) != version:
                    changed.append(key)
                    memory.versions[key] = version
                applied[key] = stored
            memory.applied_digest, memory.applied_at = wanted_digest, time.monotonic()
        status, written, moved = write_status(
            kube,
            body,
            applied.get(f"Deployment/{n['node']}"),
            applied.get(f"Deployment/{n['gateway']}"),
            loads,
            answers,
        )
        happened = ([scaled] if scaled else []) + moved
        return Outcome(changed, status, written, replicas, happened, applied=not skip)


def write_status(
    kube: Kube,
    body: dict[str, Any],
    node: dict[str, Any] | None,
    gateway: dict[str, Any] | None,
    loads: list[NodeLoad] | None,
    answers: list[NodeReadiness] | None = None,
) -> tuple[dict[str, Any], bool, list[events.Event]]:
    """Compute the status from the Deployments as stored and the nodes' answers; patch it if it
    differs. Also the Events for the conditions that changed."""
    meta = body["metadata"]
    tenant, namespace = meta["name"], meta["namespace"]
    previous = body.get("status") or {}
    n = names(tenant)
    hot = sum(load.hot for load in loads) if loads is not None else previous.get("hotDatabases", 0)
    warm = sum(load.warm for load in loads) if loads is not None else previous.get("warmDatabases", 0)
    usage = tenant_usage(loads) if loads is not None else previous.get("usage")
    if usage is not None:
        metrics.record_usage(namespace, tenant, usage)
    try:
        web = scheme(MemoryTenantSpec.model_validate(body["spec"]))
    except ValueError:
        web = "http"
    computed = tenant_status(
        meta.get("generation", 1),
        node,
        gateway,
        previous.get("conditions"),
        nodes=answers,
        hot=hot,
        warm=warm,
        endpoints={"gateway": f"{web}://{n['gateway']}.{namespace}.svc:{GATEWAY_PORT}"},
    )
    computed.usage = TenantUsage.model_validate(usage) if usage is not None else None
    status = computed.model_dump(mode="json", exclude_none=True)
    comparable = {k: v for k, v in previous.items() if k in status}
    if comparable == status:
        return status, False, []
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
    return status, True, events.transitions(previous.get("conditions"), status.get("conditions") or [])


def tenant_usage(loads: list[NodeLoad]) -> dict[str, int]:
    """``status.usage``: the ready nodes' figures added up (counters since each pod started).

    The store figures are not added up either: every node lists the same bucket, so they are
    the newest measurement any node made (a store that shrank after GC shows its new size)."""
    newest = max((x for x in loads if x.store_measured_at), key=lambda x: x.store_measured_at, default=None)
    return TenantUsage(
        databases=sum(x.hot + x.warm for x in loads),
        cacheBytes=sum(x.cache_bytes for x in loads),
        shippedBytes=sum(x.shipped_bytes for x in loads),
        reads=sum(x.reads for x in loads),
        writes=sum(x.writes for x in loads),
        storeBytes=newest.store_bytes if newest else 0,
        storeObjects=newest.store_objects if newest else 0,
    ).model_dump()


def refresh_status(kube: Kube, namespace: str, tenant: str) -> tuple[dict[str, Any] | None, list[events.Event]]:
    """Re-derive a tenant's status after one of its Deployments changed (no applies, no scrapes).

    The tenant's body (None: not there, or nothing written) and the Events of what changed."""
    body = kube.tenant(GROUP, VERSION, namespace, tenant)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None, []
    n = names(tenant)
    node = kube.get("apps/v1", "Deployment", namespace, n["node"])
    gateway = kube.get("apps/v1", "Deployment", namespace, n["gateway"])
    _, written, moved = write_status(kube, body, node, gateway, None)
    return (body if written else None), moved
