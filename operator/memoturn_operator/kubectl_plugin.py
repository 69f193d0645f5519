"""``kubectl memoturn``: day-2 commands for a MemoryTenant, as ``kubectl cnpg`` is for CloudNativePG.

kubectl runs any ``kubectl-memoturn`` on PATH as ``kubectl memoturn``. It reads the Kubernetes API
with the caller's kubeconfig (the same client the operator uses) and talks to the tenant's data
plane with the Memoturn SDK and the tenant's admin token (read from its Secret):

* ``status``: the tenant's phase and conditions, and per node pod what the node itself says
  (``/v1/cluster/status``: ready, branches open per tier, branches owned, replica lag, unshipped);
* ``checkpoint``, ``fork``, ``rewind``: a database branch, through the tenant's gateway;
* ``drain``: evict one node pod (the Eviction API, so the tenant's PodDisruptionBudget holds);
  on SIGTERM the node ships its tail and gives up its lease, its branches move to the other
  nodes, and the Deployment starts a replacement;
* ``report``: a support bundle (``.tar.gz``) of the tenant's objects, Events, pod logs and each
  node's ``/metrics`` and ``/v1/cluster/status`` (Secrets are never included);
* ``release-finalizers``: when the operator was removed before its objects, frees MemoryBranches
  and MemoryTenants stuck Terminating (deleting each branch from the data plane first, as the
  operator would have, when the gateway still answers).

The data plane is reached at a ready gateway (or node) pod's address, which works from inside
the cluster; from a laptop, port-forward the gateway Service and pass ``--url``. A tenant with
``spec.tls`` is reached over HTTPS: the pods' certificates are verified against its Secret's
``ca.crt`` (or ``--ca-file``), for the names the certificate carries rather than the pod IPs
(``<pod>.<tenant>-memoturn-node.<namespace>.svc`` for a node, the gateway Service's
``<tenant>-memoturn-gateway.<namespace>.svc``, also behind a ``--url`` to an IP or localhost). Every failure
is one line on stderr and a non-zero exit (2: bad usage or input, 1: the cluster refused or is
unreachable).
"""

from __future__ import annotations

import argparse
import functools
import io
import ipaddress
import json
import ssl
import sys
import tarfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

import httpx
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from memoturn.client import Memoturn, ProblemError
from urllib3 import disable_warnings
from urllib3.exceptions import HTTPError, InsecureRequestWarning

from . import GROUP, VERSION
from .branch import parse_time
from .dataplane import ca_file
from .kube import Kube, Retry, _bearer_token_fixed
from .models import MemoryTenantSpec
from .resources import NODE_PORT, labels, names, node_host, token_secret_name

FINALIZER = f"{GROUP}/finalizer"
HTTP_TIMEOUT = 10.0


class PluginError(Exception):
    """A failure to report as one line (``code``: the exit status)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- arguments --------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line (exit 2), without the usage block."""

    def error(self, message: str) -> NoReturn:
        raise PluginError(f"{message} (see {self.prog} --help)", code=2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="kubectl memoturn",
        description="Day-2 commands for Memoturn tenants: status, checkpoint, fork, rewind, drain, report, "
        "release-finalizers.",
        epilog="Failures print one line on stderr: exit 2 for bad usage or input, 1 when the cluster "
        "refused or could not be reached.",
    )
    p.add_argument("-n", "--namespace", help="the tenant's namespace (default: the kubeconfig context's)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument(
        "--url",
        help="the tenant's gateway URL, e.g. after `kubectl port-forward svc/TENANT-memoturn-gateway 7400` "
        "(default: a ready gateway pod's address, reachable from inside the cluster)",
    )
    p.add_argument("--token", help="the tenant's admin token (default: read from its Secret)")
    p.add_argument(
        "--ca-file",
        help="CA bundle to verify a TLS tenant's pods (or an https --url) with (default: ca.crt of the "
        "tenant's spec.tls Secret)",
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        c: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
        return c

    c = command("status", "the tenant's conditions and, per node, readiness, owned branches, tiers and lag")
    c.add_argument("tenant", help="MemoryTenant name")
    c.add_argument("-o", "--output", choices=["text", "json"], default="text", help="output format")

    c = command("checkpoint", "name the current head (or --txid) of a database branch")
    c.add_argument("tenant", help="MemoryTenant name")
    c.add_argument("database", help="database name")
    c.add_argument("name", help="checkpoint name")
    c.add_argument("--branch", default="main", help="branch to checkpoint (default %(default)s)")
    c.add_argument("--txid", type=int, help="the txid to name (default: the head)")

    c = command("fork", "fork a database branch at its head, a txid, a checkpoint or a time")
    c.add_argument("tenant", help="MemoryTenant name")
    c.add_argument("database", help="database name")
    c.add_argument("branch", help="the new branch's name")
    c.add_argument("--from", dest="parent", default="main", help="parent branch (default %(default)s)")
    _point_in_time(c)
    c.add_argument("--ttl", type=float, metavar="SECONDS", help="a burner branch: deleted after this many seconds")

    c = command("rewind", "move a branch's head back to a txid, a checkpoint or a time (undoable)")
    c.add_argument("tenant", help="MemoryTenant name")
    c.add_argument("database", help="database name")
    c.add_argument("--branch", default="main", help="branch to rewind (default %(default)s)")
    _point_in_time(c)

    c = command("drain", "evict one node pod: it ships its tail, gives up its branches, and is replaced")
    c.add_argument("tenant", help="MemoryTenant name")
    c.add_argument("node", help="the node pod's name (see `kubectl memoturn status`)")
    c.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the node to leave")

    c = command("report", "write a support bundle: objects, Events, pod logs, node metrics and status")
    c.add_argument("tenant", help="MemoryTenant name")
    c.add_argument("-o", "--output", required=True, help="the bundle to write (.tar.gz)")

    c = command(
        "release-finalizers",
        "free MemoryBranches (and MemoryTenants) stuck Terminating because the operator is gone",
    )
    c.add_argument("tenant", nargs="?", help="only this tenant's objects (default: every one in the namespace)")
    c.add_argument(
        "--keep-data",
        action="store_true",
        help="do not delete the branches from the data plane (default: delete them if the gateway answers)",
    )
    return p


def _point_in_time(c: argparse.ArgumentParser) -> None:
    at = c.add_mutually_exclusive_group()
    at.add_argument("--txid", type=int, help="at this txid")
    at.add_argument("--checkpoint", help="at this checkpoint")
    at.add_argument("--timestamp", help="at this time (RFC 3339, e.g. 2026-11-22T10:00:00Z)")


def _timestamp(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise PluginError(f"--timestamp {value!r} is not an RFC 3339 time with a zone", code=2) from None


# -- where the data plane is, and how to trust it -----------------------------------------------

#: What httpx verifies a server with: a CA bundle's path, True (the system's CAs, or
#: ``MEMOTURN_CA_FILE`` for the SDK) or None (plain HTTP: the SDK's default).
Verify = str | bool | None


@dataclass(frozen=True)
class Target:
    """One pod (or ``--url``) to talk to: the URL, the CA to verify it with, and the name its
    certificate must carry when the URL's host is an address the certificate cannot name."""

    url: str
    verify: Verify = None
    server_name: str | None = None


def select_ca(ca_flag: str | None, tls: bool, secret_ca: Callable[[], str | None]) -> Verify:
    """``--ca-file`` if given; else, for a TLS tenant, its Secret's ``ca.crt`` (in a temp file, the
    SDK takes a path) or the system's CAs when the Secret has none; else None (plain HTTP)."""
    if ca_flag:
        return ca_flag
    if not tls:
        return None
    return ca_file(secret_ca()) or True


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address  # an IPv6 pod IP


def _is_address(host: str) -> bool:
    """An IP or localhost (a port-forward): no certificate of the tenant's names it."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def gateway_target(
    tenant: str,
    namespace: str,
    *,
    tls: bool,
    ca: Verify,
    url: str | None = None,
    endpoint: tuple[str, int] | None = None,
) -> Target:
    """``--url`` as given, else a ready gateway pod (``endpoint``) by IP; with TLS the certificate is
    checked for the gateway Service's DNS name wherever the host is an address."""
    service = f"{names(tenant)['gateway']}.{namespace}.svc"
    if url:
        host = urllib.parse.urlsplit(url).hostname or ""
        return Target(url, ca, service if tls and _is_address(host) else None)
    if endpoint is None:
        raise ValueError("gateway_target needs url or endpoint")
    address, port = endpoint
    if not tls:
        return Target(f"http://{_url_host(address)}:{port}", ca)
    return Target(f"https://{_url_host(address)}:{port}", ca, service)


def node_target(tenant: str, namespace: str, pod: str, ip: str, *, tls: bool, ca: Verify) -> Target:
    """A node pod by IP; with TLS, checked for the name it advertises (``<pod>.<node Service>.<ns>.svc``,
    which the tenant's wildcard certificate covers), as the gateway and its peers check it."""
    if not tls:
        return Target(f"http://{_url_host(ip)}:{NODE_PORT}", ca)
    return Target(f"https://{_url_host(ip)}:{NODE_PORT}", ca, f"{pod}.{node_host(tenant, namespace)}")


@functools.cache
def _context(verify: str | bool | None) -> ssl.SSLContext | bool:
    """httpx's ``verify`` for a Target (one context per CA file, reused across requests)."""
    if not isinstance(verify, str):
        return True if verify is None else verify
    try:
        return ssl.create_default_context(cafile=verify)
    except OSError as exc:  # ssl.SSLError too: no certificate in the file
        reason = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
        raise PluginError(f"cannot use the CA bundle {verify}: {reason or exc}", code=2) from None


def _sni(name: str) -> Callable[[httpx.Request], None]:
    def hook(request: httpx.Request) -> None:
        request.extensions["sni_hostname"] = name  # checked on the certificate instead of the URL's host

    return hook


# -- cluster access ---------------------------------------------------------------------------


@dataclass
class Cluster:
    """The API (as the caller) and the namespace the command works in."""

    kube: Kube
    namespace: str
    url: str | None = None
    token: str | None = None
    ca_flag: str | None = None
    _tls: dict[str, tuple[bool, Verify]] = field(default_factory=dict)

    def tenant(self, name: str) -> dict[str, Any]:
        body = self.kube.tenant(GROUP, VERSION, self.namespace, name)
        if body is None:
            raise PluginError(f"MemoryTenant {self.namespace}/{name} not found")
        return body

    def admin_token(self, tenant: dict[str, Any]) -> str | None:
        if self.token:
            return self.token
        spec = MemoryTenantSpec.model_validate(tenant["spec"])
        name = tenant["metadata"]["name"]
        return self.kube.secret_value(self.namespace, token_secret_name(name, spec), "admin-token")

    def tls(self, tenant: dict[str, Any]) -> tuple[bool, Verify]:
        """Whether the tenant serves HTTPS, and what to verify its pods with (see :func:`select_ca`)."""
        name = tenant["metadata"]["name"]
        if name not in self._tls:  # read once per command: drain polls the nodes
            spec = MemoryTenantSpec.model_validate(tenant["spec"])
            secret = spec.tls.secretName if spec.tls else ""

            def read() -> str | None:
                return self.kube.secret_value(self.namespace, secret, "ca.crt")

            ca = select_ca(self.ca_flag, bool(spec.tls), read)
            if isinstance(ca, str) and not self.ca_flag:
                try:
                    _context(ca)
                except PluginError:
                    raise PluginError(
                        f"the ca.crt of Secret {self.namespace}/{secret} is not a PEM CA bundle"
                    ) from None
            self._tls[name] = (bool(spec.tls), ca)
        return self._tls[name]

    def gateway(self, tenant: dict[str, Any]) -> Memoturn:
        """The SDK on the tenant's gateway: ``--url``, else a ready gateway pod."""
        name = tenant["metadata"]["name"]
        tls, ca = self.tls(tenant)
        endpoint = None
        if not self.url:
            endpoints = self.kube.ready_endpoints(self.namespace, names(name)["gateway"])
            if not endpoints:
                raise PluginError(
                    f"MemoryTenant {self.namespace}/{name} has no ready gateway pod "
                    "(port-forward its gateway Service and pass --url)"
                )
            endpoint = endpoints[0]
        target = gateway_target(name, self.namespace, tls=tls, ca=ca, url=self.url, endpoint=endpoint)
        try:
            mt = Memoturn(
                target.url, token=self.admin_token(tenant), timeout=HTTP_TIMEOUT, retries=2, verify=target.verify
            )
        except ValueError as exc:  # an unusable CA bundle
            raise PluginError(str(exc), code=2) from None
        if target.server_name:
            mt.http.event_hooks = {"request": [_sni(target.server_name)], "response": []}
        return mt

    def node_get(self, tenant: dict[str, Any], pod: dict[str, Any], path: str, token: str | None) -> httpx.Response:
        """GET ``path`` from one node pod, by IP (over HTTPS for a TLS tenant)."""
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            raise httpx.ConnectError("the pod has no IP yet")
        tls, ca = self.tls(tenant)
        target = node_target(tenant["metadata"]["name"], self.namespace, pod["metadata"]["name"], ip, tls=tls, ca=ca)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        extensions = {"sni_hostname": target.server_name} if target.server_name else {}
        with httpx.Client(timeout=HTTP_TIMEOUT, verify=_context(target.verify)) as http:
            return http.get(target.url + path, headers=headers, extensions=extensions)

    def node_pods(self, tenant: str) -> list[dict[str, Any]]:
        return sorted(self.kube.pods(self.namespace, labels(tenant, "node")), key=lambda p: p["metadata"]["name"])

    def custom(self, plural: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kube.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural
        )["items"]
        return items


def connect(args: argparse.Namespace) -> Cluster:
    if args.ca_file:
        _context(args.ca_file)  # an unusable bundle is bad input: say so before any request
    configuration = client.Configuration()
    try:
        if args.kubeconfig or args.context:
            config.load_kube_config(args.kubeconfig, args.context, client_configuration=configuration)
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
    except (config.ConfigException, OSError) as exc:
        raise PluginError(f"no usable kubeconfig: {exc}", code=2) from None
    if not configuration.verify_ssl:  # the kubeconfig says insecure-skip-tls-verify: as kubectl, no warning per request
        disable_warnings(InsecureRequestWarning)
    namespace = args.namespace or _context_namespace(args.kubeconfig, args.context)
    kube = Kube(client.ApiClient(_bearer_token_fixed(configuration)))
    return Cluster(kube, namespace, url=args.url, token=args.token, ca_flag=args.ca_file)


def _context_namespace(kubeconfig: str | None, context: str | None) -> str:
    try:
        contexts, current = config.list_kube_config_contexts(kubeconfig)
    except (config.ConfigException, OSError):
        return "default"
    chosen = next((c for c in contexts if c["name"] == context), None) if context else current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def _pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


# -- status -----------------------------------------------------------------------------------


def node_summary(pod: dict[str, Any], answer: dict[str, Any] | None, error: str | None = None) -> dict[str, Any]:
    """One row of ``status``: the pod as Kubernetes sees it and the node as it sees itself."""
    name = pod["metadata"]["name"]
    row: dict[str, Any] = {
        "pod": name,
        "phase": (pod.get("status") or {}).get("phase"),
        "podReady": _pod_ready(pod),
        "ip": (pod.get("status") or {}).get("podIP"),
        "terminating": bool(pod["metadata"].get("deletionTimestamp")),
    }
    if answer is None:
        row["error"] = error or "no answer"
        return row
    tiers: dict[str, int] = {}
    for b in answer.get("branches") or []:
        tiers[b["tier"]] = tiers.get(b["tier"], 0) + 1
    row.update(
        {
            "nodeId": answer.get("node_id"),
            "ready": answer.get("ready"),
            "detail": answer.get("detail"),
            "owned": sorted(k for k, owner in (answer.get("owners") or {}).items() if owner == answer.get("node_id")),
            "tiers": tiers,
            "replicas": len(answer.get("replicas") or []),
            "replicaLagTxids": answer.get("replica_lag_txids"),
            "unshippedTxids": answer.get("unshipped_txids"),
        }
    )
    if not answer.get("clustered"):  # a node on its own owns what it holds open
        row["owned"] = sorted(b["key"] for b in answer.get("branches") or [])
    return row


def status(cluster: Cluster, name: str) -> dict[str, Any]:
    tenant = cluster.tenant(name)
    token = cluster.admin_token(tenant)
    nodes = []
    for pod in cluster.node_pods(name):
        try:
            r = cluster.node_get(tenant, pod, "/v1/cluster/status", token)
            r.raise_for_status()
            nodes.append(node_summary(pod, r.json()))
        except httpx.HTTPError as exc:
            nodes.append(node_summary(pod, None, f"{type(exc).__name__}: {exc}"))
    s = tenant.get("status") or {}
    return {
        "tenant": f"{cluster.namespace}/{name}",
        "phase": s.get("phase"),
        "readyNodes": s.get("readyNodes"),
        "endpoints": s.get("endpoints") or {},
        "conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "message")} for c in s.get("conditions") or []
        ],
        "nodes": nodes,
    }


def format_status(report: dict[str, Any]) -> str:
    lines = [
        f"MemoryTenant {report['tenant']}: {report['phase'] or 'no status yet'}, {report['readyNodes']} ready node(s)"
    ]
    if report["endpoints"].get("gateway"):
        lines.append(f"  gateway: {report['endpoints']['gateway']}")
    lines.append("Conditions:")
    for c in report["conditions"]:
        lines.append(f"  {c['type']:<22} {c['status']:<6} {c['reason'] or ''}: {c['message'] or ''}".rstrip(": "))
    lines.append("Nodes:")
    for n in report["nodes"]:
        if "error" in n:
            lines.append(f"  {n['pod']}  {n['phase']}  no answer: {n['error']}")
            continue
        tiers = ", ".join(f"{k} {v}" for k, v in sorted(n["tiers"].items())) or "none open"
        lag = "-" if n["replicaLagTxids"] is None else n["replicaLagTxids"]
        state = "ready" if n["ready"] else f"NOT READY ({n['detail']})"
        gone = " (terminating)" if n["terminating"] else ""
        lines.append(
            f"  {n['pod']}{gone}  {state}  owns {len(n['owned'])}  open: {tiers}  "
            f"replicas {n['replicas']} (lag {lag} txids)  unshipped {n['unshippedTxids']}"
        )
        for key in n["owned"]:
            lines.append(f"    owns {key}")
    return "\n".join(lines)


# -- branches ---------------------------------------------------------------------------------


def checkpoint(cluster: Cluster, args: argparse.Namespace) -> str:
    with cluster.gateway(cluster.tenant(args.tenant)) as mt:
        r = mt.database(args.database, args.branch).checkpoint(args.name, txid=args.txid)
    return f"checkpoint {args.name} on {args.database}@{args.branch} at txid {r.data.get('txid')}"


def fork(cluster: Cluster, args: argparse.Namespace) -> str:
    when = _timestamp(args.timestamp)
    with cluster.gateway(cluster.tenant(args.tenant)) as mt:
        r = mt.database(args.database, args.parent).fork(
            args.branch, txid=args.txid, checkpoint=args.checkpoint, timestamp=when, ttl_seconds=args.ttl
        )
    parent = r.data.get("parent") or {}
    return f"forked {args.database}@{args.branch} from {parent.get('branch', args.parent)}@{parent.get('txid')}"


def rewind(cluster: Cluster, args: argparse.Namespace) -> str:
    if args.txid is None and args.checkpoint is None and args.timestamp is None:
        raise PluginError("rewind needs one of --txid, --checkpoint or --timestamp", code=2)
    when = _timestamp(args.timestamp)
    with cluster.gateway(cluster.tenant(args.tenant)) as mt:
        r = mt.database(args.database, args.branch).rewind(txid=args.txid, checkpoint=args.checkpoint, timestamp=when)
    return f"rewound {args.database}@{args.branch}: {json.dumps(r.data, sort_keys=True)}"


# -- drain ------------------------------------------------------------------------------------


def drain(cluster: Cluster, tenant_name: str, pod_name: str, timeout: float) -> str:
    tenant = cluster.tenant(tenant_name)
    pods = {p["metadata"]["name"]: p for p in cluster.node_pods(tenant_name)}
    if pod_name not in pods:
        known = ", ".join(sorted(pods)) or "none"
        raise PluginError(f"{pod_name} is not a node pod of MemoryTenant {cluster.namespace}/{tenant_name} ({known})")
    eviction = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=pod_name, namespace=cluster.namespace),
    )
    try:
        cluster.kube.core.create_namespaced_pod_eviction(pod_name, cluster.namespace, eviction)
    except ApiException as exc:
        if exc.status == 429:
            raise PluginError(
                f"evicting {pod_name} would break the tenant's PodDisruptionBudget (too few ready nodes); try again "
                "when the other nodes are ready"
            ) from None
        raise
    token = cluster.admin_token(tenant)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _left(cluster, tenant, pod_name, token):
            return f"drained {pod_name}: it left the cluster and its branches moved to the other nodes"
        time.sleep(0.5)
    raise PluginError(f"{pod_name} was evicted but still holds its lease after {timeout:g}s")


def _left(cluster: Cluster, tenant: dict[str, Any], pod_name: str, token: str | None) -> bool:
    """The pod is gone, or every other ready node no longer lists it nor sees it own anything."""
    tenant_name = tenant["metadata"]["name"]
    others = []
    pod_present = False
    for pod in cluster.node_pods(tenant_name):
        if pod["metadata"]["name"] == pod_name:
            pod_present = True
        elif _pod_ready(pod) and not pod["metadata"].get("deletionTimestamp"):
            others.append(pod)
    if not pod_present:
        return True
    for pod in others:
        try:
            r = cluster.node_get(tenant, pod, "/v1/cluster/status", token)
            r.raise_for_status()
        except httpx.HTTPError:
            return False
        answer = r.json()
        if any(n.get("id") == pod_name for n in answer.get("nodes") or []):
            return False
        if pod_name in (answer.get("owners") or {}).values():
            return False
    return bool(others)


# -- report -----------------------------------------------------------------------------------


def report(cluster: Cluster, tenant_name: str, output: str) -> str:
    """A .tar.gz of what support asks for first; a part that cannot be read says why inside."""
    tenant = cluster.tenant(tenant_name)
    token = cluster.admin_token(tenant)
    ns = cluster.namespace
    files: dict[str, str] = {}
    sanitize = cluster.kube.api_client.sanitize_for_serialization

    def dump(path: str, read: Callable[[], Any]) -> None:
        try:
            files[path] = yaml.safe_dump(read(), sort_keys=False)
        except (ApiException, HTTPError, OSError, Retry) as exc:
            files[path + ".error"] = f"{type(exc).__name__}: {exc}\n"

    files["memorytenant.yaml"] = yaml.safe_dump(tenant, sort_keys=False)
    dump(
        "memorybranches.yaml",
        lambda: [b for b in cluster.custom("memorybranches") if b["spec"]["tenant"] == tenant_name],
    )
    selector = ",".join(f"{k}={v}" for k, v in labels(tenant_name).items())
    core, apps = cluster.kube.core, client.AppsV1Api(cluster.kube.api_client)
    dump("pods.yaml", lambda: sanitize(core.list_namespaced_pod(ns, label_selector=selector).items))
    dump("deployments.yaml", lambda: sanitize(apps.list_namespaced_deployment(ns, label_selector=selector).items))
    dump("services.yaml", lambda: sanitize(core.list_namespaced_service(ns, label_selector=selector).items))
    dump("configmaps.yaml", lambda: sanitize(core.list_namespaced_config_map(ns, label_selector=selector).items))
    pods = cluster.kube.pods(ns, labels(tenant_name))
    involved = {tenant_name, *(p["metadata"]["name"] for p in pods), *names(tenant_name).values()}
    try:
        involved |= {
            b["metadata"]["name"] for b in cluster.custom("memorybranches") if b["spec"]["tenant"] == tenant_name
        }
    except ApiException:
        pass
    dump(
        "events.yaml",
        lambda: [
            e
            for e in sanitize(core.list_namespaced_event(ns).items)
            if (e.get("involvedObject") or {}).get("name") in involved
        ],
    )
    for pod in pods:
        name = pod["metadata"]["name"]
        for container in pod["spec"]["containers"]:
            path = f"logs/{name}/{container['name']}.log"
            try:
                files[path] = core.read_namespaced_pod_log(name, ns, container=container["name"], tail_lines=2000)
            except (ApiException, HTTPError, OSError) as exc:
                files[path + ".error"] = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}\n"
        if (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/component") != "node":
            continue
        for what, path in (("metrics.txt", "/metrics"), ("cluster-status.json", "/v1/cluster/status")):
            target = f"nodes/{name}/{what}"
            try:
                r = cluster.node_get(tenant, pod, path, token)
                r.raise_for_status()
                files[target] = r.text
            except httpx.HTTPError as exc:
                files[target + ".error"] = f"{type(exc).__name__}: {exc}\n"
    files["README.txt"] = (
        f"kubectl memoturn report {tenant_name} -n {ns}, {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        "Secrets are not included. A file ending in .error says why that part could not be read.\n"
    )
    write_bundle(output, f"memoturn-report-{ns}-{tenant_name}", files)
    return f"wrote {output} ({len(files)} files)"


def write_bundle(output: str, root: str, files: dict[str, str]) -> None:
    try:
        with tarfile.open(output, "w:gz") as tar:
            for path, text in sorted(files.items()):
                data = text.encode()
                info = tarfile.TarInfo(f"{root}/{path}")
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
                tar.addfile(info, io.BytesIO(data))
    except OSError as exc:
        raise PluginError(f"cannot write {output}: {exc.strerror or exc}", code=2) from None


# -- finalizers -------------------------------------------------------------------------------


def release_finalizers(cluster: Cluster, tenant_name: str | None, keep_data: bool) -> list[str]:
    """Remove the operator's finalizer from objects being deleted (what it would do, done by hand).

    A MemoryBranch's branch is deleted from the data plane first unless ``keep_data`` (a 404 is
    fine: already gone); if the gateway does not answer, the branch is left in object storage
    and the line says so. Objects not being deleted are never touched."""
    out: list[str] = []
    for b in cluster.custom("memorybranches"):
        meta, spec = b["metadata"], b["spec"]
        if tenant_name and spec["tenant"] != tenant_name:
            continue
        if not meta.get("deletionTimestamp") or FINALIZER not in (meta.get("finalizers") or []):
            continue
        note = ""
        phase = (b.get("status") or {}).get("phase")
        if not keep_data and phase in ("Ready", "Pending", None):
            note = _delete_branch_data(cluster, spec)
        _drop_finalizer(cluster, "memorybranches", b)
        out.append(f"released MemoryBranch {cluster.namespace}/{meta['name']}{note}")
    for t in cluster.custom("memorytenants"):
        meta = t["metadata"]
        if tenant_name and meta["name"] != tenant_name:
            continue
        if meta.get("deletionTimestamp") and FINALIZER in (meta.get("finalizers") or []):
            _drop_finalizer(cluster, "memorytenants", t)
            out.append(f"released MemoryTenant {cluster.namespace}/{meta['name']}")
    return out


def _delete_branch_data(cluster: Cluster, spec: dict[str, Any]) -> str:
    tenant = cluster.kube.tenant(GROUP, VERSION, cluster.namespace, spec["tenant"])
    if tenant is None:
        return f" (MemoryTenant {spec['tenant']} is gone: nothing to delete the branch through)"
    try:
        with cluster.gateway(tenant) as mt:
            mt.database(spec["database"], spec["branch"]).delete_branch()
    except ProblemError as exc:
        if exc.status == 404:
            return " (its branch was already gone)"
        return f" (branch {spec['database']}@{spec['branch']} NOT deleted: {exc})"
    except PluginError as exc:
        return f" (branch {spec['database']}@{spec['branch']} NOT deleted: {exc})"
    return f" (deleted branch {spec['database']}@{spec['branch']})"


def _drop_finalizer(cluster: Cluster, plural: str, obj: dict[str, Any]) -> None:
    """A JSON patch guarded by ``test``: it fails rather than drop a finalizer someone else added meanwhile."""
    finalizers = list(obj["metadata"].get("finalizers") or [])
    patch = [
        {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
        {"op": "replace", "path": "/metadata/finalizers", "value": [f for f in finalizers if f != FINALIZER]},
    ]
    kind = {"memorybranches": "MemoryBranch", "memorytenants": "MemoryTenant"}[plural]
    resource = cluster.kube.dynamic.resources.get(api_version=f"{GROUP}/{VERSION}", kind=kind)
    path = resource.path(name=obj["metadata"]["name"], namespace=cluster.namespace)
    cluster.kube.dynamic.request("patch", path, body=patch, content_type="application/json-patch+json")


# -- main -------------------------------------------------------------------------------------


def run(args: argparse.Namespace, cluster: Cluster) -> str:
    if args.cmd == "status":
        s = status(cluster, args.tenant)
        return json.dumps(s, indent=2) if args.output == "json" else format_status(s)
    if args.cmd == "checkpoint":
        return checkpoint(cluster, args)
    if args.cmd == "fork":
        return fork(cluster, args)
    if args.cmd == "rewind":
        return rewind(cluster, args)
    if args.cmd == "drain":
        return drain(cluster, args.tenant, args.node, args.timeout)
    if args.cmd == "report":
        return report(cluster, args.tenant, args.output)
    released = release_finalizers(cluster, args.tenant, args.keep_data)
    return "\n".join(released) or "nothing is stuck Terminating with the memoturn.io/finalizer"


def _api_error(exc: ApiException) -> str:
    try:
        message = json.loads(exc.body or "{}").get("message")
    except ValueError:
        message = None
    return f"the API server answered {exc.status}: {message or exc.reason}"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        print(run(args, connect(args)))
        return 0
    except PluginError as exc:
        print(f"kubectl memoturn: {exc}", file=sys.stderr)
        return exc.code
    except ApiException as exc:
        print(f"kubectl memoturn: {_api_error(exc)}", file=sys.stderr)
        return 1
    except ProblemError as exc:
        print(f"kubectl memoturn: the data plane refused: {exc}", file=sys.stderr)
        return 1
    except (Retry, HTTPError, OSError) as exc:
        print(f"kubectl memoturn: the cluster could not be reached: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
