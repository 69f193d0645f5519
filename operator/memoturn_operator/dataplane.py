"""How the operator talks to a tenant's data plane: node readiness and metrics, the branch API.

Endpoints are the ready pods a tenant's Services select (:meth:`.kube.Kube.ready_endpoints`);
requests carry the tenant's admin token. A data plane that cannot be reached is a
:class:`.kube.Retry`, never a crash of the handler.
"""

from __future__ import annotations

import hashlib
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from memoturn.client import Memoturn, ProblemError
from prometheus_client.parser import text_string_to_metric_families

from .kube import Retry

SCRAPE_TIMEOUT = 3.0


#: ``verify`` for httpx: True (the system's CAs), or a context trusting a tenant's CA.
Verify = ssl.SSLContext | bool


def tls_context(ca_pem: str | None) -> ssl.SSLContext:
    """Trust for a TLS tenant's node pods: its ``ca.crt`` (or the system's CAs without one).

    The operator reaches node pods by IP, which their certificate does not name: the chain is
    verified, the host name is not."""
    context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    context.check_hostname = False
    return context


@dataclass(frozen=True)
class NodeLoad:
    """What the scaler and the usage report need from one node's ``/metrics``.

    The counters (shipped bytes, reads, writes) count since the node process started; the
    store figures are the node's last listing of the whole bucket (every node sees the same one)."""

    pod: str
    hot: int
    warm: int
    cache_bytes: int = 0
    shipped_bytes: int = 0
    reads: int = 0
    writes: int = 0
    store_bytes: int = 0
    store_objects: int = 0
    store_measured_at: int = 0  # unix seconds of the node's last store listing (0: none yet)


_GAUGES = {
    "memoturn_hot_databases": "hot",
    "memoturn_warm_databases": "warm",
    "memoturn_cache_disk_bytes": "cache_bytes",
    "memoturn_shipped_bytes_total": "shipped_bytes",
    "memoturn_commits_total": "writes",
    "memoturn_store_bytes": "store_bytes",
    "memoturn_store_objects": "store_objects",
    "memoturn_store_usage_timestamp_seconds": "store_measured_at",
}


def is_read(method: str, route: str) -> bool:
    """A data-API request that reads: a GET, or a query or recall POST (probes and metrics are not)."""
    if not route.startswith(("/v1/databases", "/v1/namespaces")):
        return False
    return method == "GET" or (method == "POST" and route.endswith(("/query", "/recall")))


def parse_load(pod: str, text: str) -> NodeLoad:
    values: dict[str, float] = {}
    reads = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in _GAUGES:
                values[_GAUGES[sample.name]] = values.get(_GAUGES[sample.name], 0) + sample.value
            elif sample.name == "memoturn_request_seconds_count" and is_read(
                sample.labels.get("method", ""), sample.labels.get("route", "")
            ):
                reads += sample.value
    hot, warm = int(values.pop("hot", 0)), int(values.pop("warm", 0))
    return NodeLoad(pod, hot, warm, **{k: int(v) for k, v in values.items()}, reads=int(reads))


def scrape(pod: str, address: str, port: int, scheme: str = "http", verify: Verify = True) -> NodeLoad | None:
    """One node's load, or None if it does not answer (it is then left out of the decision)."""
    try:
        r = httpx.get(f"{scheme}://{address}:{port}/metrics", timeout=SCRAPE_TIMEOUT, verify=verify)
        r.raise_for_status()
    except httpx.HTTPError:
        return None
    return parse_load(pod, r.text)


@dataclass(frozen=True)
class NodeReadiness:
    """One node's answer to ``GET /v1/ready``: ``ready`` None when it did not answer at all."""

    pod: str
    ready: bool | None
    detail: str


def probe(pod: str, address: str, port: int, scheme: str = "http", verify: Verify = True) -> NodeReadiness:
    """Ask a node whether it can serve, and if not, why (the cause names the dependency)."""
    try:
        r = httpx.get(f"{scheme}://{address}:{port}/v1/ready", timeout=SCRAPE_TIMEOUT, verify=verify)
    except httpx.HTTPError as exc:
        return NodeReadiness(pod, None, f"no answer ({type(exc).__name__})")
    try:
        detail = str(r.json().get("detail") or "")
    except ValueError:
        detail = r.text[:200]
    if r.status_code not in (200, 503):
        return NodeReadiness(pod, None, f"HTTP {r.status_code} {detail}".strip())
    return NodeReadiness(pod, r.status_code == 200, detail or ("ok" if r.status_code == 200 else "not ready"))


def client(
    endpoints: list[tuple[str, int]], token: str | None, *, tls_host: str | None = None, ca_pem: str | None = None
) -> Memoturn:
    """The tenant's gateway: a ready pod by IP, or with TLS its Service name (what the certificate
    names), verified against the tenant's ``ca.crt`` (the system's CAs without one)."""
    if not endpoints:
        raise Retry("the tenant's gateway has no ready endpoint yet", delay=3)
    address, port = endpoints[0]
    if tls_host is None:
        return Memoturn(f"http://{address}:{port}", token=token, timeout=15, retries=2)
    return Memoturn(f"https://{tls_host}:{port}", token=token, timeout=15, retries=2, verify=ca_file(ca_pem) or True)


def ca_file(ca_pem: str | None) -> str | None:
    """A file holding ``ca_pem`` (the SDK takes a path), one per distinct CA, in the temp directory."""
    if not ca_pem:
        return None
    path = Path(tempfile.gettempdir()) / f"memoturn-ca-{hashlib.sha256(ca_pem.encode()).hexdigest()[:16]}.pem"
    if not path.exists():
        path.write_text(ca_pem)
    return str(path)


def unreachable(exc: Exception) -> bool:
    """True for failures that say nothing about the request itself (retry later)."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, ProblemError) and (exc.status in (0, 429, 502, 503, 504))
