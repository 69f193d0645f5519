"""The cluster as one node sees it, for the dashboard's cluster view and for operators.

``GET /v1/cluster/status`` (admin): the live nodes (from etcd, or this node alone), the owner of
every branch this node knows of, the branches this node holds open (their tier, head, shipped
txid and unshipped count), its replica copies with their lag, and its readiness. Read from
memory only (no store or etcd round trip), so the dashboard can poll it every few seconds.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .models import ClusterStatus
from .params import NodeDep
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["ops"])


@router.get("/v1/cluster/status", response_model=ClusterStatus)
def cluster_status(node: NodeDep) -> Any:
    """Nodes, owners, this node's open branches and replica copies, and its unshipped txids."""
    me = node.settings.node_id
    ready, detail = node.ready()
    placement = node.placement
    if placement is not None:
        nodes = sorted(placement.live_nodes().values(), key=lambda n: str(n.get("id")))
        owners = dict(sorted(placement.owners.copy().items()))  # copy(): atomic, the watch writes it
    else:  # one node on its own: it owns whatever it opens
        nodes = [{"id": me, "url": node.settings.resolved_advertise_url}]
        owners = {}
    branches = []
    for key, db in sorted(node.hot_items()):
        head, shipped = db.head_txid, db.shipped_txid
        branches.append(
            {
                "key": key,
                "tier": "hot",
                "owner": owners.get(key, me),
                "head_txid": head,
                "shipped_txid": shipped,
                "unshipped_txids": max(0, head - shipped),
            }
        )
    replicas = []
    for key, owner in owners.items():
        name, _, branch = key.partition("/")
        if owner == me or not branch:
            continue
        copy = node.replicas.describe(name, branch)
        if copy is not None:
            replicas.append({"key": key, "owner": owner, **copy})
    lag = node.metrics.registry.get_sample_value("memoturn_replica_lag_txids")
    return {
        "node_id": me,
        "ready": ready,
        "detail": detail,
        "clustered": placement is not None,
        "nodes": nodes,
        "owners": owners,
        "branches": branches,
        "replicas": replicas,
        "replica_lag_txids": int(lag) if lag is not None else None,
        "unshipped_txids": node.shipper.unshipped_txids,
    }
