"""Settings of ``memoturnd`` and ``memoturn-gateway``, read from ``MEMOTURN_*`` environment variables.

One declaration per setting (name, type, default, check, description): pydantic-settings reads
the environment from it, and ``docs/configuration.md`` is generated from it
(``python -m memoturn.config_docs``). With no configuration at all, ``memoturnd`` is the
embedded default: one node, a ``file://`` object store under the data directory and an
in-process lease table.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Literal, Self

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from .cors import parse_origins
from .netaddr import parse_host_port
from .tls import pair_error

Durability = Literal["standard", "durable"]
ENV_PREFIX = "MEMOTURN_"

# The mapping ``from_env(env)`` reads instead of ``os.environ`` (None: ``os.environ``).
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("memoturn_settings_environ", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """The environment source of pydantic-settings, over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class EnvSettings(BaseSettings):
    """Keyword arguments, then ``MEMOTURN_*`` variables (empty ones count as unset), then defaults."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", validate_by_name=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        return (init_settings, env_settings if environ is None else _MappingEnvSource(settings_cls, environ))

    @classmethod
    def env_names(cls, field: str) -> list[str]:
        """The variables ``field`` is read from, preferred first."""
        alias = cls.model_fields[field].validation_alias
        if isinstance(alias, AliasChoices):
            return [str(choice) for choice in alias.choices]
        if isinstance(alias, str):
            return [alias]
        return [ENV_PREFIX + field.upper()]

    @classmethod
    def field_extra(cls, field: str, key: str) -> str | None:
        """A documentation attribute of ``field`` (``shown_default``, ``flag``), if it has one."""
        extra = cls.model_fields[field].json_schema_extra
        value = extra.get(key) if isinstance(extra, dict) else None
        return None if value is None else str(value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Settings from ``env`` (default ``os.environ``); ``overrides`` that are not None win."""
        values = {k: v for k, v in overrides.items() if v is not None}
        token = _ENVIRON.set(dict(env) if env is not None else None)
        try:
            return cls(**values)
        finally:
            _ENVIRON.reset(token)


_ETCD_CA = "PEM file of the CA that signed etcd's server certificates; set (or an `https://` endpoint): TLS"
_ETCD_CERT = "PEM client certificate presented to etcd (etcd's `--client-cert-auth`); needs `MEMOTURN_ETCD_KEY_FILE`"
_ETCD_KEY = "PEM private key of `MEMOTURN_ETCD_CERT_FILE`"
_ETCD_USERNAME = "etcd user (etcd's `auth enable`); needs `MEMOTURN_ETCD_PASSWORD`"
_ETCD_PASSWORD = "password of `MEMOTURN_ETCD_USERNAME`"
_TLS_CERT = (
    "PEM certificate (chain) served on the listen address; with `MEMOTURN_TLS_KEY_FILE`: HTTPS "
    "(both or neither; re-read when the files change; docs/security.md)"
)
_TLS_KEY = "PEM private key of `MEMOTURN_TLS_CERT_FILE`"
_NODE_CA = (
    "PEM CA bundle the nodes' certificates are verified against when one Memoturn process calls a node "
    "over https (unset: the system's CAs)"
)
_NODE_SERVER_NAME = (
    "the name a node's certificate must carry, checked instead of the host in its URL "
    "(nodes advertised by pod IP, one certificate for all; unset: the URL's host)"
)


def _tls_pair(cert_file: str | None, key_file: str | None) -> None:
    if bool(cert_file) != bool(key_file):
        raise ValueError(pair_error(cert_file, key_file))


class EtcdAccessSettings(EnvSettings):
    """How to reach a secured etcd: the ``MEMOTURN_ETCD_*`` TLS and auth variables alone.

    ``memoturnd`` and ``memoturn-gateway`` both read them (``EtcdClient`` does, from the
    environment, when it is given no :class:`~memoturn.cluster.etcd_client.EtcdSecurity`);
    they are listed with the node's settings.
    """

    etcd_ca_file: str | None = Field(None, description=_ETCD_CA)
    etcd_cert_file: str | None = Field(None, description=_ETCD_CERT)
    etcd_key_file: str | None = Field(None, description=_ETCD_KEY)
    etcd_username: str | None = Field(None, description=_ETCD_USERNAME)
    etcd_password: str | None = Field(None, description=_ETCD_PASSWORD)


class Settings(EnvSettings):
    """One ``memoturnd`` node."""

    data_dir: str = Field("./memoturn-data", description="data directory (cache and, by default, the file store)")
    store_url: str | None = Field(
        None,
        validation_alias=AliasChoices("MEMOTURN_STORE_URL", "MEMOTURN_STORE"),
        description="object store: `file:///path`, `s3://bucket/prefix?endpoint=URL&region=R`, "
        "`gs://bucket/prefix` or `az://container/prefix?account=A` (credentials from each cloud's "
        "standard chain: environment, profile, workload identity; docs/storage.md)",
        json_schema_extra={"shown_default": "file://{data_dir}/store"},
    )
    listen: str = Field("127.0.0.1:7411", description="HOST:PORT of the HTTP API")
    http_server: Literal["uvicorn", "granian"] = Field(
        "uvicorn",
        description="the HTTP server in front of the API: `uvicorn` (uvloop + httptools) or `granian` "
        "(Rust, in-process; docs/benchmarks.md compares them)",
    )
    hot_routes: bool = Field(
        True,
        description="serve the common shape of KV GET and PUT of one key, and of adding one memory, by plain "
        "Starlette routes ahead of FastAPI's (same answers, less CPU; off for A/B measurements)",
    )
    node_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="this node's name (default: hostname-pid)",
        json_schema_extra={"shown_default": "(computed)"},
    )
    durability: Durability = Field(
        "standard", description="`standard` (ack on local commit) or `durable` (ack once in object storage)"
    )
    hot_idle_seconds: float = Field(60.0, description="close a handle idle this long (hot -> warm)")
    warm_idle_seconds: float = Field(3600.0, description="delete a local file idle this long (warm -> cold)")
    max_hot: int = Field(1000, description="open handles at most")
    max_disk_bytes: int = Field(10 * 1024**3, description="bytes of warm files at most")
    cache_kib_per_db: int = Field(128, description="SQLite page cache per open handle, KiB")
    snapshot_every_txids: int = Field(1000, description="write a snapshot after this many txids")
    snapshot_every_bytes: int = Field(64 * 1024**2, description="... or after this many bytes of shipped pages")
    keep_snapshots: int = Field(2, description="snapshots kept in the manifest (bounds point-in-time restore)")
    retention_seconds: float = Field(
        0.0,
        ge=0,
        description="point-in-time window: every snapshot younger than this is kept "
        "(besides the newest `KEEP_SNAPSHOTS`)",
    )
    merge_segments_over: int = Field(
        32,
        ge=2,
        description="once a branch has more segments than this, its oldest run of small segments "
        "is merged into one object",
    )
    wal_checkpoint_bytes: int = Field(4 * 1024**2, description="checkpoint the WAL once it is this large")
    max_value_bytes: int = Field(1024**2, description="largest KV value (JSON), else 413")
    max_body_bytes: int = Field(16 * 1024**2, description="largest request body, else 413")
    durable_timeout_seconds: float = Field(30.0, description="longest wait for a durable ack before 503")
    statement_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="deadline of one user SQL batch; past it the batch's worker process is killed, "
        "nothing of it is applied, 400 `statement-timeout`",
    )
    sql_workers: int = Field(
        2,
        ge=1,
        le=64,
        description="worker processes that run user SQL (the node itself never runs it, "
        "so a runaway statement cannot stop it)",
    )
    max_txn_bytes: int = Field(
        32 * 1024**2,
        ge=1,
        description="bytes one user SQL transaction may write (WAL growth, page cache counted); "
        "past it it rolls back, 413 `transaction-too-large`",
    )
    min_txid_wait_seconds: float = Field(1.0, description="longest wait for `Memoturn-Min-Txid` before 412")
    ship_workers: int = Field(4, description="shipper threads")
    ship_interval_seconds: float = Field(
        0.1,
        ge=0,
        le=60,
        description="a database starts a ship at most this often: commits in between travel in one segment "
        "(one PUT and one manifest CAS for all of them); adds up to this much to the standard-mode loss "
        "window; durable writes ship at once; `0` ships every commit as soon as a worker is free",
    )
    tier_interval_seconds: float = Field(1.0, description="how often tier transitions run")
    etcd_endpoints: str | None = Field(
        None,
        description="etcd members, comma-separated `HOST:PORT` (`https://HOST:PORT`: TLS); every one is used, "
        "a failed call moves to the next; unset: the in-process lease table of the embedded default",
    )
    etcd_prefix: str = Field("/memoturn", description="key prefix in etcd (nodes, owners)")
    etcd_ca_file: str | None = Field(None, description=_ETCD_CA)
    etcd_cert_file: str | None = Field(None, description=_ETCD_CERT)
    etcd_key_file: str | None = Field(None, description=_ETCD_KEY)
    etcd_username: str | None = Field(None, description=_ETCD_USERNAME)
    etcd_password: str | None = Field(None, description=_ETCD_PASSWORD)
    lease_ttl_seconds: int = Field(
        15,
        ge=2,
        description="etcd lease TTL: the bound on failover after a node dies; writes stop `TTL/3` "
        "before it could expire",
    )
    replicas: int = Field(
        1,
        ge=0,
        description="read replicas per branch: the nodes ranked after the owner receive every shipped segment",
    )
    replica_max_staleness_seconds: float = Field(
        5.0, description="a replica copy that heard nothing for this long re-checks the manifest before answering"
    )
    embedder: str = Field(
        "default",
        description="`default`: all-MiniLM-L6-v2 computed locally (384 dimensions); "
        "`openai:MODEL`: an OpenAI-compatible endpoint",
    )
    embedder_runtime: Literal["onnx", "numpy"] = Field(
        "onnx",
        description="what runs the `default` embedder: `onnx` (onnxruntime, 3-8× numpy's texts per second on 2 cores; "
        "the graph is written from the same weights on first use and cached under `~/.cache/memoturn/embedder`) "
        "or `numpy`; same vectors either way (`docs/benchmarks.md`)",
    )
    embedding_url: str | None = Field(None, description="base URL of the OpenAI-compatible endpoint (`…/v1`)")
    embedding_api_key: str | None = Field(None, description="bearer token for it")
    admin_token: str | None = Field(
        None, description="turns auth on; this bearer token may do anything (see `docs/api.md`)"
    )
    tokens: str | None = Field(
        None,
        description="namespace tokens `ns:token,ns2:token2`; each reaches only its namespace and never expires "
        "(minted tokens may: `docs/api.md`)",
    )
    gc_interval_seconds: float = Field(
        600.0,
        description="how often a node garbage-collects the databases it owns (expired burner branches, "
        "unreferenced objects); 0 turns it off",
    )
    store_usage_interval_seconds: float = Field(
        3600.0,
        ge=0,
        description="how often a node (in a cluster, one node: the first in rendezvous order) lists the whole object store to measure what it holds "
        "(`memoturn_store_objects`, `memoturn_store_bytes`); the first measurement runs shortly after start; "
        "0 turns it off",
    )
    gc_grace_seconds: float = Field(
        600.0, ge=0, description="how long an object must stay unreferenced before GC deletes it"
    )
    advertise_url: str | None = Field(
        None,
        description="the URL gateways and other nodes use to reach this node (with TLS on, an `http://` "
        "URL is advertised as `https://`)",
        json_schema_extra={"shown_default": "http(s)://{listen}"},
    )
    cors_origins: str | None = Field(
        None,
        description="browser origins allowed to call this server directly (CORS), comma-separated "
        "`scheme://host[:port]` or `*`; unset: none (same-origin pages only)",
    )
    tls_cert_file: str | None = Field(None, description=_TLS_CERT)
    tls_key_file: str | None = Field(None, description=_TLS_KEY)
    node_ca_file: str | None = Field(None, description=_NODE_CA)
    node_tls_server_name: str | None = Field(None, description=_NODE_SERVER_NAME)

    @field_validator("cors_origins")
    @classmethod
    def _cors(cls, v: str | None) -> str | None:
        parse_origins(v)
        return v

    @model_validator(mode="after")
    def _tls(self) -> Self:
        _tls_pair(self.tls_cert_file, self.tls_key_file)
        return self

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_host_port(v, what="listen")
        return v

    @property
    def listen_address(self) -> tuple[str, int]:
        """``(host, port)`` of :attr:`listen`."""
        return parse_host_port(self.listen, what="listen")

    @property
    def tls(self) -> bool:
        """Whether the API is served over HTTPS."""
        return bool(self.tls_cert_file and self.tls_key_file)

    @property
    def resolved_advertise_url(self) -> str:
        """The URL registered in etcd; its scheme follows :attr:`tls` (the node serves nothing else)."""
        scheme = "https" if self.tls else "http"
        url = self.advertise_url or f"{scheme}://{self.listen}"
        if self.tls and url.startswith("http://"):
            url = "https://" + url.removeprefix("http://")
        return url

    @property
    def cache_dir(self) -> str:
        return os.path.join(self.data_dir, "cache")

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or "file://" + os.path.abspath(os.path.join(self.data_dir, "store"))


class GatewaySettings(EnvSettings):
    """One ``memoturn-gateway``; its command-line flag (``flag``) overrides each."""

    gateway_listen: str = Field(
        "127.0.0.1:7400", description="HOST:PORT the gateway listens on", json_schema_extra={"flag": "--listen"}
    )
    etcd_endpoints: str | None = Field(
        None,
        description="etcd members where the nodes register, comma-separated `HOST:PORT` or `https://HOST:PORT` "
        "(required; TLS and auth: the MEMOTURN_ETCD_* variables of memoturnd, read from the environment)",
        json_schema_extra={"flag": "--etcd"},
    )
    etcd_prefix: str = Field(
        "/memoturn", description="key prefix in etcd, the nodes' own", json_schema_extra={"flag": "--prefix"}
    )
    gateway_attempts: int = Field(
        8,
        ge=1,
        description="tries per request (a retry goes only where the request provably did not run) "
        "before `503 no-route`",
        json_schema_extra={"flag": "--attempts"},
    )
    http_server: Literal["uvicorn", "granian"] = Field(
        "uvicorn",
        description="the HTTP server in front of the gateway: `uvicorn` or `granian` (as memoturnd's)",
        json_schema_extra={"flag": "--http-server"},
    )
    cors_origins: str | None = Field(
        None,
        description="browser origins allowed to call the gateway directly (CORS), comma-separated "
        "`scheme://host[:port]` or `*`; unset: none (same-origin pages only)",
        json_schema_extra={"flag": "--cors-origins"},
    )
    tls_cert_file: str | None = Field(None, description=_TLS_CERT, json_schema_extra={"flag": "--tls-cert-file"})
    tls_key_file: str | None = Field(None, description=_TLS_KEY, json_schema_extra={"flag": "--tls-key-file"})
    node_ca_file: str | None = Field(None, description=_NODE_CA, json_schema_extra={"flag": "--node-ca-file"})
    node_tls_server_name: str | None = Field(
        None, description=_NODE_SERVER_NAME, json_schema_extra={"flag": "--node-tls-server-name"}
    )

    @field_validator("cors_origins")
    @classmethod
    def _cors(cls, v: str | None) -> str | None:
        parse_origins(v)
        return v

    @model_validator(mode="after")
    def _tls(self) -> Self:
        _tls_pair(self.tls_cert_file, self.tls_key_file)
        return self

    @field_validator("gateway_listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_host_port(v, what="listen")
        return v

    @property
    def listen_address(self) -> tuple[str, int]:
        """``(host, port)`` of :attr:`gateway_listen`."""
        return parse_host_port(self.gateway_listen, what="listen")


def settings_error(exc: ValidationError, settings_cls: type[EnvSettings] = Settings) -> str:
    """One line naming each bad setting by its variable, for the command line."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if not field:  # a check across settings names them itself
            parts.append(msg)
            continue
        if field in settings_cls.model_fields:
            name = settings_cls.env_names(field)[0]
            flag = settings_cls.field_extra(field, "flag")
            name = f"{flag} / {name}" if flag else name
        elif field.upper().startswith(ENV_PREFIX):
            name = field.upper()  # a field read through its alias
        else:
            name = ENV_PREFIX + field.upper()
        parts.append(f"{name}: {msg}")
    return "; ".join(parts)
