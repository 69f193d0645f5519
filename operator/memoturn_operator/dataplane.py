"""How the operator talks to a tenant's data plane: node readiness and metrics, the branch API.

Endpoints are the ready pods a tenant's Services select (:meth:`.kube.Kube.ready_endpoints`);
requests carry the tenant's admin token. A data plane that cannot be reached is a
:class:`.kube.Retry`, never a crash of the handler.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from memoturn.client import Memoturn, ProblemError
from prometheus_client.parser import text_string_to_metric_families

from .kube import Retry

SCRAPE_TIMEOUT = 3.0


@dataclass(frozen=True)
class NodeLoad:
    """What the scaler needs from one node's ``/metrics``."""

    pod: str
    hot: int
    warm: int


def parse_load(pod: str, text: str) -> NodeLoad:
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("memoturn_hot_databases", "memoturn_warm_databases"):
                values[sample.name] = sample.value
    return NodeLoad(pod, int(values.get("memoturn_hot_databases", 0)), int(values.get("memoturn_warm_databases", 0)))


def scrape(pod: str, address: str, port: int) -> NodeLoad | None:
    """One node's load, or None if it does not answer (it is then left out of the decision)."""
    try:
        r = httpx.get(f"http://{address}:{port}/metrics", timeout=SCRAPE_TIMEOUT)
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


def probe(pod: str, address: str, port: int) -> NodeReadiness:
    """Ask a node whether it can serve, and if not, why (the cause names the dependency)."""
    try:
        r = httpx.get(f"http://{address}:{port}/v1/ready", timeout=SCRAPE_TIMEOUT)
    except httpx.HTTPError as exc:
        return NodeReadiness(pod, None, f"no answer ({type(exc).__name__})")
    try:
        detail = str(r.json().get("detail") or "")
    except ValueError:
        detail = r.text[:200]
    if r.status_code not in (200, 503):
        return NodeReadiness(pod, None, f"HTTP {r.status_code} {detail}".strip())
    return NodeReadiness(pod, r.status_code == 200, detail or ("ok" if r.status_code == 200 else "not ready"))


def client(endpoints: list[tuple[str, int]], token: str | None) -> Memoturn:
    if not endpoints:
        raise Retry("the tenant's gateway has no ready endpoint yet", delay=3)
    address, port = endpoints[0]
    return Memoturn(f"http://{address}:{port}", token=token, timeout=15, retries=2)


def unreachable(exc: Exception) -> bool:
    """True for failures that say nothing about the request itself (retry later)."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, ProblemError) and (exc.status in (0, 429, 502, 503, 504))
