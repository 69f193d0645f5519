"""Lease-bounded failover, assisted: revoke a dead node's etcd lease so its branches move now.

A node's registration (``{prefix}/nodes/{id}``) and every ownership key it holds
(``{prefix}/owners/...`` whose value is its id) hang off its etcd lease, so revoking that
lease frees all of them at once; the next write to each branch lands on a live node, which
takes ownership with a higher epoch (the fencing manifest CAS makes a late write of the
dead node fail). Without the operator the lease simply expires after its TTL, which stays
the bound.

The operator only revokes when the pod is known to be gone or failed. A pod that is being
deleted *gracefully* is left alone: on SIGTERM the node ships its tail and revokes its own
lease, and revoking first would fence it out before its last segments reach the store.
"""

from __future__ import annotations

from typing import Any

import aetcd
from memoturn.netaddr import parse_host_port


def pod_is_gone(event_type: str | None, pod: dict[str, Any]) -> str | None:
    """Why the node in ``pod`` is certainly not serving any more, or None if it may be.

    * the pod object was deleted (a forced deletion or the end of a graceful one);
    * the pod failed (``phase: Failed``: evicted, or a container that will not restart).
    """
    if event_type == "DELETED":
        return "pod deleted"
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Failed":
        reason = (pod.get("status") or {}).get("reason") or "Failed"
        return f"pod failed ({reason})"
    return None


async def revoke_node(endpoints: list[str], prefix: str, node_id: str, *, timeout: float = 5.0) -> list[int]:
    """Revoke the lease that ``node_id`` registered under; the leases revoked (maybe none).

    One node holds one lease, and its ownership keys are attached to it, so the registration
    names everything there is to free (O(1), however many branches the node owned).
    """
    # The first endpoint, read as memoturn.etcd_client.parse_endpoint reads it.
    host, port = parse_host_port(",".join(endpoints).split(",")[0], what="etcd endpoint", allow_scheme=True)
    prefix = prefix.rstrip("/")
    client = aetcd.Client(host=host, port=port, timeout=max(1, int(timeout)))
    try:
        leases: set[int] = set()
        registration = await client.get(f"{prefix}/nodes/{node_id}".encode())
        if registration is not None and registration.lease:
            leases.add(registration.lease)
        for lease in sorted(leases):
            try:
                await client.revoke_lease(lease)
            except aetcd.exceptions.ClientError:  # expired meanwhile: nothing left to free
                pass
        return sorted(leases)
    finally:
        await client.close()
