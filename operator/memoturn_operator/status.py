"""Truthful ``MemoryTenant`` status from what the cluster and the nodes report: pure, unit-tested.

Conditions follow the Kubernetes shape (``type``, ``status``, ``reason``, ``message``,
``observedGeneration``, ``lastTransitionTime``) and the ``kstatus`` conventions that Argo CD
and Flux read:

* ``Ready``: every wanted node and gateway replica is available and both dependencies answer;
* ``Reconciling`` (abnormal-true): a rollout is under way, the tenant will get there by itself;
* ``Stalled`` (abnormal-true): it cannot get there without help (a dependency unreachable,
  replicas unavailable after the rollout finished);
* ``ObjectStoreReachable`` and ``LeaseStoreReachable``: whether the nodes reach their object
  store and etcd, from each node's ``/v1/ready`` cause (in the spirit of CloudNativePG's
  ``ContinuousArchiving``); the failing nodes and their causes are in the message.

A condition keeps its ``lastTransitionTime`` until its status changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from .dataplane import NodeReadiness
from .models import Condition, MemoryTenantStatus

Truth = Literal["True", "False", "Unknown"]
STORE, LEASE = "ObjectStoreReachable", "LeaseStoreReachable"
MESSAGE_LIMIT = 1000


@dataclass(frozen=True)
class Verdict:
    """One condition before its bookkeeping fields (time, generation) are added."""

    status: Truth
    reason: str
    message: str


def _available(deployment: dict[str, Any] | None) -> tuple[int, int, bool]:
    """(wanted, available, rolled out) of a Deployment as the API server reports it."""
    if not deployment:
        return 0, 0, False
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    wanted = spec.get("replicas", 1)
    generation = deployment.get("metadata", {}).get("generation")
    rolled = status.get("observedGeneration") == generation and status.get("updatedReplicas", 0) == wanted
    return wanted, status.get("availableReplicas", 0), rolled


def _node_verdicts(node: NodeReadiness) -> tuple[Truth, Truth, str]:
    """(object store, lease store, cause) as one node's readiness answer tells them.

    The node checks its etcd lease first, then its object store: with the lease not held, the
    store is not known; a node that does not answer tells nothing about either.
    """
    detail = node.detail
    if node.ready:
        return "True", "True", detail
    if node.ready is None or detail == "node not started":
        return "Unknown", "Unknown", detail
    if "lease" in detail:
        return "Unknown", "False", detail
    if "object store" in detail:
        return "False", "True", detail
    return "Unknown", "Unknown", detail


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def dependencies(nodes: list[NodeReadiness]) -> dict[str, Verdict]:
    """``ObjectStoreReachable`` and ``LeaseStoreReachable`` over the tenant's nodes.

    False as soon as one node reports the dependency unusable (its cause in the message),
    True when at least one node uses it and none fails, Unknown when no node could tell.
    """
    out: dict[str, Verdict] = {}
    for index, (kind, what, bad_reason) in enumerate(
        ((STORE, "the object store", "ObjectStoreUnusable"), (LEASE, "etcd", "LeaseNotHeld"))
    ):
        verdicts = [(n.pod, _node_verdicts(n)[index], n.detail) for n in nodes]
        failing = [(pod, cause) for pod, v, cause in verdicts if v == "False"]
        working = sum(1 for _, v, _ in verdicts if v == "True")
        if failing:
            causes = "; ".join(f"{pod}: {cause}" for pod, cause in failing)
            out[kind] = Verdict(
                "False", bad_reason, _clip(f"{len(failing)}/{len(nodes)} nodes cannot use {what}: {causes}")
            )
        elif working:
            out[kind] = Verdict("True", "Reachable", f"{working}/{len(nodes)} nodes use {what}")
        elif nodes:
            causes = "; ".join(f"{n.pod}: {n.detail}" for n in nodes)
            out[kind] = Verdict("Unknown", "NodesNotAnswering", _clip(f"no node could tell: {causes}"))
        else:
            out[kind] = Verdict("Unknown", "NoNodes", "no node pod is running yet")
    return out


def _previous_dependencies(previous: list[dict[str, Any]] | None) -> dict[str, Verdict]:
    """The dependency conditions as last written (a status refresh without probing keeps them)."""
    out = {}
    for c in previous or []:
        if c.get("type") in (STORE, LEASE):
            out[c["type"]] = Verdict(c.get("status", "Unknown"), c.get("reason", "Unknown"), c.get("message", ""))
    for kind in (STORE, LEASE):
        out.setdefault(kind, Verdict("Unknown", "NotProbedYet", "the nodes have not been asked yet"))
    return out


def tenant_status(
    generation: int,
    node: dict[str, Any] | None,
    gateway: dict[str, Any] | None,
    previous: list[dict[str, Any]] | None = None,
    *,
    nodes: list[NodeReadiness] | None = None,
    hot: int = 0,
    warm: int = 0,
    endpoints: dict[str, str] | None = None,
    now: datetime | None = None,
) -> MemoryTenantStatus:
    """The status; ``nodes`` are this reconcile's readiness answers (None: keep the last verdicts)."""
    now_s = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    last = _previous_dependencies(previous)
    deps = dependencies(nodes) if nodes is not None else last
    for kind, verdict in deps.items():
        # A failure stays reported until a node says otherwise: no node answering (pods being
        # replaced, say) is not evidence that the store works again.
        if verdict.status == "Unknown" and last[kind].status == "False":
            deps[kind] = last[kind]
    nw, na, nr = _available(node)
    gw, ga, gr = _available(gateway)
    replicas = f"{na}/{nw} nodes and {ga}/{gw} gateways available"
    broken = next(((k, v) for k, v in deps.items() if v.status == "False"), None)
    available = bool(node and gateway) and na >= nw and ga >= gw and nw > 0
    rolling = not (nr and gr)

    ready: Verdict
    reconciling = Verdict("False", "Reconciled", replicas)
    stalled = Verdict("False", "NoBlocker", replicas)
    if not node or not gateway:
        phase = "Pending"
        ready = Verdict("False", "Creating", "the node and gateway Deployments are being created")
        reconciling = Verdict("True", "Creating", ready.message)
    elif broken is not None:
        kind, verdict = broken
        reason = "ObjectStoreUnreachable" if kind == STORE else "LeaseStoreUnreachable"
        phase = "Degraded"
        ready = Verdict("False", reason, f"{replicas}; {verdict.message}")
        stalled = Verdict("True", reason, ready.message)
    elif available:
        phase = "Ready"
        ready = Verdict("True", "AllReplicasAvailable", replicas)
    elif rolling:
        phase = "Progressing"
        ready = Verdict("False", "RollingOut", replicas)
        reconciling = Verdict("True", "RollingOut", replicas)
    else:
        phase = "Degraded"
        ready = Verdict("False", "ReplicasUnavailable", f"only {replicas}")
        stalled = Verdict("True", "ReplicasUnavailable", ready.message)
    old = {c["type"]: c for c in previous or []}

    def cond(type_: str, v: Verdict) -> Condition:
        before = old.get(type_, {})
        since = before.get("lastTransitionTime") if before.get("status") == v.status else None
        return Condition(
            type=type_,
            status=v.status,
            reason=v.reason,
            message=v.message,
            lastTransitionTime=since or now_s,
            observedGeneration=generation,
        )

    return MemoryTenantStatus(
        phase=phase,
        observedGeneration=generation,
        readyNodes=na,
        hotDatabases=hot,
        warmDatabases=warm,
        endpoints=endpoints or {},
        conditions=[
            cond("Ready", ready),
            cond("Reconciling", reconciling),
            cond("Stalled", stalled),
            cond(STORE, deps[STORE]),
            cond(LEASE, deps[LEASE]),
        ],
    )
