"""Prometheus metrics of one node, in a registry of its own (several nodes may share a process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class NodeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.commits = Counter("memoturn_commits", "Transactions committed and captured", registry=r)
        self.unshipped_txids = Gauge(
            "memoturn_unshipped_txids",
            "Committed txids not yet in object storage (the standard-mode loss window)",
            registry=r,
        )
        self.ship_seconds = Histogram(
            "memoturn_ship_seconds", "Segment put plus manifest CAS", buckets=_LATENCY, registry=r
        )
        self.segments_shipped = Counter("memoturn_segments_shipped", "Segments landed in a manifest", registry=r)
        self.bytes_shipped = Counter("memoturn_shipped_bytes", "Segment bytes written to object storage", registry=r)
        self.ship_errors = Counter(
            "memoturn_ship_errors", "Failed shipping attempts (retried with backoff)", registry=r
        )
        self.snapshots_written = Counter("memoturn_snapshots_written", "Snapshots written by compaction", registry=r)
        self.restores = Counter("memoturn_restores", "Databases restored from object storage", registry=r)
        self.restore_seconds = Histogram("memoturn_restore_seconds", "Restore time", buckets=_LATENCY, registry=r)
        self.ownership_changes = Counter(
            "memoturn_ownership_acquired", "Branches whose writer lease this node took", registry=r
        )
        self.capture_bypassed = Counter(
            "memoturn_capture_bypassed",
            "Writes refused because the database file changed outside WAL capture (the local copy was rebuilt)",
            registry=r,
        )
        self.statement_timeouts = Counter(
            "memoturn_statement_timeouts",
            "SQL batches stopped at their deadline (MEMOTURN_STATEMENT_TIMEOUT_SECONDS)",
            registry=r,
        )
        self.fencing_events = Counter(
            "memoturn_fencing_events", "Branches this node stopped serving because a newer epoch owns them", registry=r
        )
        self.lease_renewals = Counter("memoturn_lease_renewals", "Successful etcd lease renewals", registry=r)
        self.lease_renewal_failures = Counter(
            "memoturn_lease_renewal_failures", "Failed etcd lease renewals", registry=r
        )
        self.lease_lost = Counter(
            "memoturn_lease_lost", "Times this node's etcd lease expired and was re-granted", registry=r
        )
        self.failovers = Counter("memoturn_failovers", "Branches taken over from another node", registry=r)
        self.replication_sent = Counter(
            "memoturn_replication_segments_sent", "Segments streamed to replicas", registry=r
        )
        self.replication_dropped = Counter(
            "memoturn_replication_segments_dropped",
            "Segments not streamed (replicas catch up from the store)",
            registry=r,
        )
        self.replica_restores = Counter(
            "memoturn_replica_restores", "Replica copies restored from object storage", registry=r
        )
        self.replica_gaps = Counter(
            "memoturn_replica_gaps", "Streamed segments refused because they left a txid gap", registry=r
        )
        self.replica_lag_txids = Gauge(
            "memoturn_replica_lag_txids", "Owner head minus replica head at the last apply", registry=r
        )
        self.replica_lag_seconds = Histogram(
            "memoturn_replica_lag_seconds", "Commit to replica apply", buckets=_LATENCY, registry=r
        )
        self.ship_lag_seconds = Histogram(
            "memoturn_ship_lag_seconds", "Commit to manifest CAS", buckets=_LATENCY, registry=r
        )
        self.kv_cache_hits = Counter("memoturn_kv_cache_hits", "KV reads answered from the read cache", registry=r)
        self.segments_merged = Counter("memoturn_segments_merged", "Small segments merged into larger ones", registry=r)
        self.merge_segment_reads = Counter(
            "memoturn_merge_segment_reads", "Segments a merge had to GET (not among the recently shipped)", registry=r
        )
        self.hot = Gauge("memoturn_hot_databases", "Open database handles", registry=r)
        self.warm = Gauge("memoturn_warm_databases", "Closed database files on local disk", registry=r)
        self.disk_bytes = Gauge("memoturn_cache_disk_bytes", "Bytes of warm database files on local disk", registry=r)
        self.store_objects = Gauge(
            "memoturn_store_objects", "Objects in the object store (all tenants), at the last measurement", registry=r
        )
        self.store_bytes = Gauge(
            "memoturn_store_bytes", "Bytes in the object store (all tenants), at the last measurement", registry=r
        )
        self.store_usage_timestamp = Gauge(
            "memoturn_store_usage_timestamp_seconds",
            "Unix time of the last successful object-store measurement",
            registry=r,
        )
        self.evictions = Counter("memoturn_tier_transitions", "Tier transitions", ["to"], registry=r)
        self.requests = Histogram(
            "memoturn_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            buckets=_LATENCY,
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class GatewayMetrics:
    """What a gateway does with requests: answers by status, latency, retries, routable nodes."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Histogram(
            "memoturn_gateway_request_seconds",
            "Requests through the gateway, by method and answer status (retries included in the time)",
            ["method", "status"],
            buckets=_LATENCY,
            registry=r,
        )
        self.retries = Counter(
            "memoturn_gateway_retries", "Requests sent again to a node after a retryable answer or failure", registry=r
        )
        self.no_route = Counter(
            "memoturn_gateway_no_route", "Requests answered 503 no-route after every attempt", registry=r
        )
        self.live_nodes = Gauge("memoturn_gateway_live_nodes", "Nodes the gateway can route to", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def sample(metric: Any) -> float:
    """The current value of an unlabelled counter or gauge, through the public collect() API."""
    for family in metric.collect():
        for s in family.samples:
            if s.name in (family.name, family.name + "_total") and not s.labels:
                return float(s.value)
    raise KeyError(f"{metric!r} has no unlabelled sample")
