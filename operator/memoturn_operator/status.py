"""Truthful ``MemoryTenant`` status from what the cluster reports: pure, unit-tested.

Conditions follow the usual Kubernetes shape (``type``, ``status``, ``reason``, ``message``,
``observedGeneration``): ``Ready`` when every wanted node and gateway replica is available,
``Progressing`` while a rollout is under way, ``Degraded`` when something is unavailable
after the rollout finished. A condition keeps its ``lastTransitionTime`` until its status
changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .models import Condition, MemoryTenantStatus


def _available(deployment: dict[str, Any] | None) -> tuple[int, int, bool]:
    """(wanted, available, rolled out) of a Deployment as the API server reports it."""
    if not deployment:
        return 0, 0, False
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    wanted = spec.get("replicas", 1)
    generation = deployment.get("metadata", {}).get("generation")
    rolled = status.get("observedGeneration") == generation and status.get("updatedReplicas", 0) == wanted
    return wanted, status.get("availableReplicas", 0), rolled


def tenant_status(
    generation: int,
    node: dict[str, Any] | None,
    gateway: dict[str, Any] | None,
    previous: list[dict[str, Any]] | None = None,
    *,
    hot: int = 0,
    warm: int = 0,
    endpoints: dict[str, str] | None = None,
    now: datetime | None = None,
) -> MemoryTenantStatus:
    now_s = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    nw, na, nr = _available(node)
    gw, ga, gr = _available(gateway)
    ready = bool(node and gateway) and na >= nw and ga >= gw and nw > 0
    progressing = not (nr and gr)
    degraded = not ready and not progressing
    if not node or not gateway:
        reason, message = "Creating", "the node and gateway Deployments are being created"
    elif ready:
        reason, message = "AllReplicasAvailable", f"{na}/{nw} nodes and {ga}/{gw} gateways available"
    elif progressing:
        reason, message = "RollingOut", f"{na}/{nw} nodes and {ga}/{gw} gateways available"
    else:
        reason, message = "ReplicasUnavailable", f"only {na}/{nw} nodes and {ga}/{gw} gateways available"
    old = {c["type"]: c for c in previous or []}

    def cond(type_: str, value: bool, why: str) -> Condition:
        status = "True" if value else "False"
        since = old.get(type_, {}).get("lastTransitionTime") if old.get(type_, {}).get("status") == status else None
        return Condition(
            type=type_,
            status=status,
            reason=why,
            message=message,
            lastTransitionTime=since or now_s,
            observedGeneration=generation,
        )

    phase = "Ready" if ready else ("Progressing" if progressing else "Degraded")
    if not node or not gateway:
        phase = "Pending"
    return MemoryTenantStatus(
        phase=phase,
        observedGeneration=generation,
        readyNodes=na,
        hotDatabases=hot,
        warmDatabases=warm,
        endpoints=endpoints or {},
        conditions=[
            cond("Ready", ready, reason),
            cond("Progressing", progressing, reason if progressing else "RolledOut"),
            cond("Degraded", degraded, reason if degraded else "NoFailures"),
        ],
    )
