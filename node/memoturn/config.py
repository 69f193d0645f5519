"""Node settings, read from ``MEMOTURN_*`` environment variables with embedded defaults.

With no configuration at all, ``memoturnd`` is the embedded default: one node, a
``file://`` object store under the data directory and an in-process lease table.
"""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

Durability = Literal["standard", "durable"]


class Settings(BaseModel):
    data_dir: str = "./memoturn-data"
    store_url: str | None = Field(
        None, description="file:///path or s3://bucket/prefix; default file://{data_dir}/store"
    )
    listen: str = "127.0.0.1:7411"
    node_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    durability: Durability = "standard"
    hot_idle_seconds: float = 60.0
    warm_idle_seconds: float = 3600.0
    max_hot: int = 1000
    max_disk_bytes: int = 10 * 1024**3
    cache_kib_per_db: int = 128
    snapshot_every_txids: int = 1000
    snapshot_every_bytes: int = 64 * 1024**2
    keep_snapshots: int = 2
    retention_seconds: float = Field(0.0, ge=0, description="keep every snapshot younger than this (PITR window)")
    merge_segments_over: int = Field(32, ge=2, description="merge a branch's small segments once it has more")
    wal_checkpoint_bytes: int = 4 * 1024**2
    max_value_bytes: int = 1024**2
    max_body_bytes: int = 16 * 1024**2
    durable_timeout_seconds: float = 30.0
    statement_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="deadline of one user SQL batch; past it the batch is stopped (400 statement-timeout)",
    )
    sql_workers: int = Field(2, ge=1, le=64, description="worker processes that run user SQL (per node)")
    max_txn_bytes: int = Field(32 * 1024**2, ge=1, description="bytes one user SQL transaction may write")
    min_txid_wait_seconds: float = 1.0
    ship_workers: int = 4
    ship_interval_seconds: float = Field(
        0.1,
        ge=0,
        le=60,
        description="a database starts a ship at most this often; commits in between travel in one segment "
        "(one PUT and one manifest CAS for all of them). Durable writes ship at once.",
    )
    tier_interval_seconds: float = 1.0
    etcd_endpoints: str | None = Field(None, description="HOST:PORT of etcd; unset = in-process lease table")
    etcd_prefix: str = "/memoturn"
    lease_ttl_seconds: int = Field(15, ge=2)
    replicas: int = Field(1, ge=0, description="read replicas per branch (nodes that receive streamed segments)")
    replica_max_staleness_seconds: float = 5.0
    embedder: str = Field("default", description="'default' (all-MiniLM-L6-v2, local) or 'openai:MODEL'")
    embedding_url: str | None = None
    embedding_api_key: str | None = None
    admin_token: str | None = Field(None, description="enables auth; may do anything")
    tokens: str | None = Field(None, description="namespace tokens: 'ns:token,ns2:token2'")
    gc_interval_seconds: float = Field(
        600.0, description="how often each node garbage-collects the databases it owns (0: never)"
    )
    gc_grace_seconds: float = Field(600.0, ge=0, description="objects must stay unreferenced this long before deletion")
    advertise_url: str | None = Field(None, description="URL other nodes and gateways use; default http://{listen}")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("listen must be HOST:PORT")
        return v

    @property
    def resolved_advertise_url(self) -> str:
        return self.advertise_url or f"http://{self.listen}"

    @property
    def cache_dir(self) -> str:
        return os.path.join(self.data_dir, "cache")

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or "file://" + os.path.abspath(os.path.join(self.data_dir, "store"))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``MEMOTURN_<FIELD>`` variables; ``overrides`` win."""
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for name in cls.model_fields:
            key = "MEMOTURN_" + name.upper()
            if key in env and env[key] != "":
                values[name] = env[key]
        if "MEMOTURN_STORE" in env and "store_url" not in values:
            values["store_url"] = env["MEMOTURN_STORE"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)


def settings_error(exc: ValidationError) -> str:
    """One line naming each bad setting, for the command line."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(x) for x in err["loc"])
        parts.append(f"MEMOTURN_{field.upper()}: {err['msg']}")
    return "; ".join(parts)
