"""``MemoryBranch``: from a spec to the data plane's fork call, and from its answer to a status.

Pure functions, unit-tested; the handlers do the calls. A fork is idempotent from the
operator's side: if the branch already exists (a retry after a lost answer, or the
operator restarted between the call and the status write), it is adopted, not re-made.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .models import Condition, MemoryBranchSpec, MemoryBranchStatus


def _rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> float:
    """RFC 3339 (``2026-11-22T10:00:00Z``, offsets allowed) to unix seconds; ValueError if not."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return dt.timestamp()


def fork_arguments(spec: MemoryBranchSpec) -> dict[str, Any]:
    """Keyword arguments of :meth:`memoturn.client.Database.fork` for this spec."""
    p = spec.parent
    return {
        "txid": p.txid,
        "checkpoint": p.checkpoint,
        "timestamp": parse_time(p.timestamp) if p.timestamp else None,
        "ttl_seconds": float(spec.ttlSeconds) if spec.ttlSeconds else None,
    }


def find(branches: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((b for b in branches if b.get("branch") == name), None)


def _cond(
    ready: bool, reason: str, message: str, generation: int | None, previous: list[dict[str, Any]] | None, now: str
) -> Condition:
    status = "True" if ready else "False"
    old = next((c for c in previous or [] if c.get("type") == "Ready"), {})
    since = old.get("lastTransitionTime") if old.get("status") == status else None
    return Condition(
        type="Ready",
        status=status,
        reason=reason,
        message=message,
        lastTransitionTime=since or now,
        observedGeneration=generation,
    )


def ready_status(
    described: dict[str, Any],
    generation: int | None,
    previous: list[dict[str, Any]] | None = None,
    now: datetime | None = None,
) -> MemoryBranchStatus:
    """Status of a branch the data plane describes (``branches.describe``)."""
    now_s = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    parent = described.get("parent") or {}
    return MemoryBranchStatus(
        phase="Ready",
        resolvedTxid=parent.get("txid"),
        createdTime=_rfc3339(described.get("created_at")),
        expiryTime=_rfc3339(described.get("expires_at")),
        observedGeneration=generation,
        conditions=[
            _cond(
                True, "Forked", f"forked from {parent.get('branch')}@{parent.get('txid')}", generation, previous, now_s
            )
        ],
    )


def terminal_status(
    phase: str,
    reason: str,
    message: str,
    generation: int | None,
    previous_status: dict[str, Any] | None,
    now: datetime | None = None,
) -> MemoryBranchStatus:
    """Expired (the TTL passed and the branch was deleted) or Failed (the fork was refused)."""
    now_s = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    prev = previous_status or {}
    return MemoryBranchStatus(
        phase=phase,
        resolvedTxid=prev.get("resolvedTxid"),
        createdTime=prev.get("createdTime"),
        expiryTime=prev.get("expiryTime"),
        observedGeneration=generation,
        conditions=[_cond(False, reason, message, generation, prev.get("conditions"), now_s)],
    )


def expired(status: dict[str, Any] | None, now: float) -> bool:
    expiry: str | None = (status or {}).get("expiryTime")
    if not expiry:
        return False
    return parse_time(expiry) <= now
