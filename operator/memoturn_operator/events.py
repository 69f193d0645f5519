"""The Kubernetes Events the operator posts: which reason, which type, which message. Pure.

Each Event says what the operator did or saw, with a reason a person can filter on
(``kubectl get events --field-selector reason=StoreUnreachable``) and a type, ``Normal``
or ``Warning``. The handlers post them through kopf (:func:`post`); kopf's own habit of
turning every log line into an Event (reason ``Logging``) is switched off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .status import LEASE, STORE

NORMAL: Literal["Normal"] = "Normal"
WARNING: Literal["Warning"] = "Warning"


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def created(objects: Iterable[str]) -> Event:
    return Event(NORMAL, "Created", f"created {', '.join(objects)}")


def updated(objects: Iterable[str]) -> Event:
    return Event(NORMAL, "Updated", f"applied the new spec to {', '.join(objects)}")


def repaired(what: str, objects: Iterable[str]) -> Event:
    return Event(NORMAL, "DriftRepaired", f"{what}: re-applied {', '.join(objects)}")


def scaled(have: int, want: int, hot: list[int], target: int) -> Event:
    return Event(NORMAL, "Scaled", f"node replicas {have} -> {want} (hot databases per node {hot}, target {target})")


def failover_assisted(pod: str, reason: str, leases: list[int], millis: float) -> Event:
    held = ", ".join(f"{x:x}" for x in leases)
    return Event(
        NORMAL, "FailoverAssisted", f"node {pod} is gone ({reason}): revoked etcd lease {held} in {millis:.0f} ms"
    )


def failover_skipped(pod: str, reason: str, cause: str, ttl: int) -> Event:
    return Event(
        WARNING,
        "FailoverNotAssisted",
        f"node {pod} is gone ({reason}); revoking its lease failed ({cause}): {ttl}s TTL",
    )


def branch_forked(database: str, branch: str, txid: Any, adopted: bool) -> Event:
    how = "adopted the existing branch" if adopted else "forked"
    return Event(NORMAL, "BranchForked", f"{how} {database}@{branch} at txid {txid}")


def branch_refused(database: str, branch: str, kind: str, detail: str) -> Event:
    return Event(WARNING, "BranchForkFailed", f"fork {database}@{branch} refused: {kind}: {detail}")


def branch_expired(database: str, branch: str, ttl: int | None) -> Event:
    return Event(NORMAL, "BranchExpired", f"burner branch {database}@{branch} deleted after its {ttl}s TTL")


def branch_deleted(database: str, branch: str) -> Event:
    return Event(NORMAL, "BranchDeleted", f"branch {database}@{branch} deleted from the data plane")


def retrying(what: str, cause: str) -> Event:
    return Event(WARNING, "ReconcileRetrying", f"{what} postponed: {cause}")


def _by_type(conditions: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conditions or [] if "type" in c}


# condition type -> (reason when it turns False, reason when it turns True again)
_DEPENDENCY_REASONS = {
    STORE: ("StoreUnreachable", "StoreReachable"),
    LEASE: ("LeaseStoreUnreachable", "LeaseStoreReachable"),
}


def transitions(previous: list[dict[str, Any]] | None, current: list[dict[str, Any]]) -> list[Event]:
    """Events for the conditions whose status changed between two statuses.

    A dependency turning False is a Warning with the nodes' causes; turning True again after
    a failure is Normal. ``Ready`` turning True is Normal; ``Stalled`` turning True a Warning.
    """
    before, after = _by_type(previous), _by_type(current)
    out: list[Event] = []
    for kind, (bad, good) in _DEPENDENCY_REASONS.items():
        old, new = before.get(kind, {}).get("status"), after.get(kind, {}).get("status")
        if new == old or new is None:
            continue
        message = after[kind].get("message", "")
        if new == "False":
            out.append(Event(WARNING, bad, message))
        elif new == "True" and old == "False":
            out.append(Event(NORMAL, good, message))
    ready_old, ready_new = before.get("Ready", {}).get("status"), after.get("Ready", {}).get("status")
    if ready_new == "True" and ready_old != "True":
        out.append(Event(NORMAL, "Ready", after["Ready"].get("message", "")))
    stalled_old, stalled_new = before.get("Stalled", {}).get("status"), after.get("Stalled", {}).get("status")
    if stalled_new == "True" and stalled_old != "True":
        stalled = after["Stalled"]
        out.append(Event(WARNING, "Stalled", f"{stalled.get('reason')}: {stalled.get('message', '')}"))
    return out


def post(body: Any, events: Iterable[Event]) -> None:
    """Post through kopf's queue (safe from handler threads); kopf writes them in the background."""
    import kopf

    for e in events:
        kopf.event(body, type=e.type, reason=e.reason, message=e.message[:1024])
