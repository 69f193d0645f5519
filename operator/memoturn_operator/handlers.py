"""The kopf handlers: thin translations from events to the functions that do the work.

* ``MemoryTenant``: created, changed or resumed → :func:`.tenant.reconcile`; a timer re-runs
  it every ``MEMOTURN_OPERATOR_RESYNC_SECONDS`` (tier scaling, the nodes' readiness, status;
  re-applying only what changed, or every ``MEMOTURN_OPERATOR_REAPPLY_SECONDS``).
* Objects a tenant owns: deleted, or their spec changed by someone else → reconcile the
  owner at once; a Deployment's status moved → refresh the owner's status.
* Node pods: deleted or failed → revoke the node's etcd lease (:mod:`.failover`).
* ``MemoryBranch``: created → fork through the gateway; a timer deletes it at its TTL; a
  finalizer deletes the branch from the data plane when the resource goes.

What the operator does and sees is posted as Kubernetes Events with their own reasons
(:mod:`.events`); kopf's posting of log lines as Events (reason ``Logging``) is off.

Progress and the last-handled spec are kept in annotations (not in ``status``, whose
schema is ours). Two operator replicas never act together: kopf peering (``--peering``)
pauses every replica but the one with the highest priority.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import kopf
from memoturn.client import Memoturn, ProblemError

from . import GROUP, VERSION, branch, dataplane, events, failover, metrics, tenant
from .kube import Kube, Retry
from .models import MemoryBranchSpec, MemoryTenantSpec
from .resources import etcd_prefix, names, token_secret_name
from .settings import load as load_settings
from .status import LEASE, STORE

TENANTS = (GROUP, VERSION, "memorytenants")
BRANCHES = (GROUP, VERSION, "memorybranches")
MANAGED = {"app.kubernetes.io/managed-by": "memoturn-operator"}
NODE_PODS = {**MANAGED, "app.kubernetes.io/component": "node"}

log = logging.getLogger("memoturn.operator")
CONDITION_TYPES = ("Ready", "Reconciling", "Stalled", STORE, LEASE)
_kube: Kube | None = None
_kube_lock = threading.Lock()
_memories: dict[str, tenant.Memory] = {}


def kube() -> Kube:
    global _kube
    with _kube_lock:
        if _kube is None:
            _kube = Kube()
        return _kube


def plain(value: Any) -> Any:
    """kopf's body views → plain dicts and lists (for pydantic and the resource builders)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _memory(uid: str) -> tenant.Memory:
    return _memories.setdefault(uid, tenant.Memory())


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    # Events are posted explicitly, with specific reasons and Normal/Warning types; log lines
    # stay in the log (kopf would post each as an Event of reason "Logging", type "Error").
    settings.posting.loggers = False
    settings.watching.server_timeout = 300
    listen = load_settings().metrics_listen
    if listen:
        metrics.serve(listen)


# -- MemoryTenant ---------------------------------------------------------------------------


def _reconcile_tenant(body: Any, trigger: str, *, scale: bool, logger: Any) -> None:
    raw = plain(body)
    metrics.reconciles.labels("MemoryTenant", trigger).inc()
    try:
        outcome = tenant.reconcile(kube(), raw, _memory(raw["metadata"]["uid"]), scale=scale)
    except Retry as exc:
        metrics.retries.labels("MemoryTenant").inc()
        events.post(raw, [events.retrying(f"{trigger} reconcile", str(exc))])
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc
    if not outcome.applied:
        metrics.applies_skipped.inc()
    happened = list(outcome.events)
    if outcome.changed:
        metrics.changes.labels("MemoryTenant").inc(len(outcome.changed))
        logger.info(f"{trigger}: applied changes to {', '.join(outcome.changed)}")
        if trigger == "create":
            happened.insert(0, events.created(outcome.changed))
        elif trigger == "update":
            happened.insert(0, events.updated(outcome.changed))
        elif trigger == "resync" and not any(e.reason == "Scaled" for e in outcome.events):  # someone else's change
            happened.insert(0, events.repaired("the periodic re-apply found drift", outcome.changed))
        # (on resume, a restarted operator remembers no versions: everything looks changed)
    if outcome.status_written:
        metrics.status_writes.labels("MemoryTenant").inc()
    metrics.record_conditions(raw["metadata"]["namespace"], raw["metadata"]["name"], outcome.status["conditions"])
    events.post(raw, happened)


@kopf.on.create(*TENANTS)
def tenant_created(body: Any, logger: Any, **_: Any) -> None:
    _reconcile_tenant(body, "create", scale=False, logger=logger)


@kopf.on.update(*TENANTS)
def tenant_updated(body: Any, logger: Any, **_: Any) -> None:
    _reconcile_tenant(body, "update", scale=False, logger=logger)


@kopf.on.resume(*TENANTS)
def tenant_resumed(body: Any, logger: Any, **_: Any) -> None:
    _reconcile_tenant(body, "resume", scale=False, logger=logger)


# kopf takes a timer's interval when it registers the handler, i.e. when it imports this module.
_timers = load_settings()


@kopf.timer(*TENANTS, interval=_timers.resync_seconds, initial_delay=_timers.resync_seconds)
def tenant_resync(body: Any, logger: Any, **_: Any) -> None:
    if body["metadata"].get("deletionTimestamp"):
        return
    _reconcile_tenant(body, "resync", scale=True, logger=logger)


@kopf.on.delete(*TENANTS, optional=True)
def tenant_deleted(body: Any, logger: Any, **_: Any) -> None:
    """Owner references take the owned objects away; the object-store data is kept."""
    _memories.pop(body["metadata"]["uid"], None)
    metrics.forget_tenant(body["metadata"]["namespace"], body["metadata"]["name"], CONDITION_TYPES)
    logger.info("tenant deleted; its Kubernetes objects go by owner reference, its data stays in the object store")


def _owner_tenant(body: Any) -> str | None:
    return (body["metadata"].get("labels") or {}).get("app.kubernetes.io/instance")


def _owned_changed(event_type: str | None, body: Any, logger: Any) -> None:
    """Deleted or edited behind the operator's back → reconcile the owner now."""
    name, namespace = _owner_tenant(body), body["metadata"].get("namespace")
    if not name or not namespace:
        return
    k = kube()
    try:
        owner = k.tenant(GROUP, VERSION, namespace, name)
        if owner is None or owner["metadata"].get("deletionTimestamp"):
            return
        memory = _memory(owner["metadata"]["uid"])
        key = f"{body['kind']}/{body['metadata']['name']}"
        ours = memory.versions.get(key) == str(
            body["metadata"].get("generation") or body["metadata"].get("resourceVersion")
        )
        if event_type == "DELETED" or (event_type == "MODIFIED" and not ours and _spec_edited(body)):
            metrics.reconciles.labels("MemoryTenant", "drift").inc()
            outcome = tenant.reconcile(k, owner, memory)
            happened = list(outcome.events)
            if outcome.changed:
                metrics.changes.labels("MemoryTenant").inc(len(outcome.changed))
                logger.info(f"repaired {key} ({event_type}): applied {', '.join(outcome.changed)}")
                happened.insert(0, events.repaired(f"{key} {event_type.lower()}", outcome.changed))
            events.post(owner, happened)
        elif body["kind"] == "Deployment":
            written, moved = tenant.refresh_status(k, namespace, name)
            if written is not None:
                metrics.status_writes.labels("MemoryTenant").inc()
                events.post(written, moved)
    except Retry as exc:
        metrics.retries.labels("MemoryTenant").inc()
        logger.warning(f"could not react to {event_type} of {body['kind']}: {exc} (the resync timer will)")


def _spec_edited(body: Any) -> bool:
    """A change by another writer to what we set: the last managedFields entry is not ours."""
    managers = body["metadata"].get("managedFields") or []
    latest = max(managers, key=lambda m: m.get("time") or "", default=None)
    if not latest:
        return False
    return (
        latest.get("manager") not in ("memoturn-operator", "kube-controller-manager")
        and latest.get("subresource") != "status"
    )


for _group_version, _plural in (
    ("apps/v1", "deployments"),
    ("v1", "services"),
    ("v1", "configmaps"),
    ("v1", "serviceaccounts"),
    ("v1", "secrets"),
    ("policy/v1", "poddisruptionbudgets"),
):
    _group, _, _version = _group_version.rpartition("/")

    @kopf.on.event(_group, _version, _plural, labels=MANAGED, id=f"owned-{_plural}")
    def owned_event(type: str | None, body: Any, logger: Any, **_: Any) -> None:
        _owned_changed(type, body, logger)


# -- node pods: assisted failover -----------------------------------------------------------


@kopf.on.event("", "v1", "pods", labels=NODE_PODS)
async def node_pod_event(type: str | None, body: Any, logger: Any, **_: Any) -> None:
    reason = failover.pod_is_gone(type, plain(body))
    if not reason:
        return
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    owner = _owner_tenant(body)
    if not owner:
        return
    try:
        tenant_body = await asyncio.to_thread(kube().tenant, GROUP, VERSION, namespace, owner)
    except Retry as exc:
        logger.warning(f"node {name} is gone ({reason}) but the tenant could not be read: {exc}; its lease will expire")
        return
    if tenant_body is None:
        return
    spec = MemoryTenantSpec.model_validate(tenant_body["spec"])
    t0 = time.monotonic()
    try:
        revoked = await failover.revoke_node(spec.etcd.endpoints, etcd_prefix(namespace, owner), name)
    except Exception as exc:  # noqa: BLE001 - etcd away: the TTL stays the bound
        logger.warning(
            f"node {name} is gone ({reason}); revoking its lease failed ({exc}); it expires in {spec.leaseTtlSeconds}s"
        )
        events.post(tenant_body, [events.failover_skipped(name, reason, str(exc), spec.leaseTtlSeconds)])
        return
    if revoked:
        metrics.lease_revocations.inc(len(revoked))
        done = events.failover_assisted(name, reason, revoked, 1000 * (time.monotonic() - t0))
        logger.info(done.message)
        events.post(tenant_body, [done])


# -- MemoryBranch ---------------------------------------------------------------------------


class TenantMissing(Retry):
    """The branch's MemoryTenant is not there: retried on create, final on delete."""


def _gateway(namespace: str, spec: MemoryBranchSpec) -> Memoturn:
    k = kube()
    owner = k.tenant(GROUP, VERSION, namespace, spec.tenant)
    if owner is None:
        raise TenantMissing(f"MemoryTenant {namespace}/{spec.tenant} does not exist (yet)", delay=10)
    tspec = MemoryTenantSpec.model_validate(owner["spec"])
    token = k.secret_value(namespace, token_secret_name(spec.tenant, tspec), "admin-token")
    endpoints = k.ready_endpoints(namespace, names(spec.tenant)["gateway"])
    if not tspec.tls:
        return dataplane.client(endpoints, token)
    ca = k.secret_value(namespace, tspec.tls.secretName, "ca.crt")
    host = f"{names(spec.tenant)['gateway']}.{namespace}.svc"
    return dataplane.client(endpoints, token, tls_host=host, ca_pem=ca)


def _temporary(exc: Exception) -> kopf.TemporaryError:
    metrics.retries.labels("MemoryBranch").inc()
    delay = exc.delay if isinstance(exc, Retry) else 5
    return kopf.TemporaryError(f"data plane not reachable: {exc}", delay=delay)


@kopf.on.create(*BRANCHES)
@kopf.on.resume(*BRANCHES)
def branch_created(body: Any, patch: kopf.Patch, logger: Any, **_: Any) -> None:
    raw = plain(body)
    status = raw.get("status") or {}
    if status.get("phase") in ("Ready", "Expired", "Failed"):
        return
    metrics.reconciles.labels("MemoryBranch", "create").inc()
    spec = MemoryBranchSpec.model_validate(raw["spec"])
    generation = raw["metadata"].get("generation")
    adopted = False
    try:
        with _gateway(raw["metadata"]["namespace"], spec) as c:
            parent = c.database(spec.database, spec.parent.branch)
            try:
                described = parent.fork(spec.branch, **branch.fork_arguments(spec)).data
            except ProblemError as exc:
                if exc.type != "already-exists":
                    raise
                described = branch.find(c.database(spec.database).branches()["branches"], spec.branch)
                if described is None:
                    raise
                adopted = True
                logger.info(f"branch {spec.branch} already existed: adopted")
    except (Retry, Exception) as exc:
        if isinstance(exc, Retry) or dataplane.unreachable(exc):
            raise _temporary(exc) from exc
        if isinstance(exc, ProblemError):
            patch.status.update(
                branch.terminal_status("Failed", exc.type or "ForkRefused", exc.detail, generation, status).model_dump(
                    mode="json", exclude_none=True
                )
            )
            logger.warning(f"fork refused: {exc.status} {exc.type}: {exc.detail}")
            kind = exc.type or "ForkRefused"
            events.post(raw, [events.branch_refused(spec.database, spec.branch, kind, exc.detail or "")])
            return
        raise
    ready = branch.ready_status(described, generation, status.get("conditions"))
    patch.status.update(ready.model_dump(mode="json", exclude_none=True))
    metrics.changes.labels("MemoryBranch").inc()
    events.post(raw, [events.branch_forked(spec.database, spec.branch, ready.resolvedTxid, adopted)])


def _delete_branch(namespace: str, spec: MemoryBranchSpec) -> None:
    with _gateway(namespace, spec) as c:
        try:
            c.database(spec.database, spec.branch).delete_branch()
        except ProblemError as exc:
            if exc.status != 404:  # already gone (expired and collected, or deleted by hand)
                raise


@kopf.timer(*BRANCHES, interval=_timers.branch_check_seconds)
def branch_expiry(body: Any, patch: kopf.Patch, logger: Any, **_: Any) -> None:
    raw = plain(body)
    status = raw.get("status") or {}
    if status.get("phase") != "Ready" or not branch.expired(status, time.time()):
        return
    spec = MemoryBranchSpec.model_validate(raw["spec"])
    try:
        _delete_branch(raw["metadata"]["namespace"], spec)
    except (Retry, Exception) as exc:
        if isinstance(exc, Retry) or dataplane.unreachable(exc):
            raise _temporary(exc) from exc
        raise
    patch.status.update(
        branch.terminal_status(
            "Expired", "TTLExpired", f"deleted after {spec.ttlSeconds}s", raw["metadata"].get("generation"), status
        ).model_dump(mode="json", exclude_none=True)
    )
    logger.info(f"burner branch {spec.database}@{spec.branch} expired and was deleted")
    events.post(raw, [events.branch_expired(spec.database, spec.branch, spec.ttlSeconds)])


@kopf.on.delete(*BRANCHES)
def branch_deleted(body: Any, logger: Any, **_: Any) -> None:
    raw = plain(body)
    if (raw.get("status") or {}).get("phase") not in ("Ready", None, "Pending"):
        return  # Expired (already deleted) or Failed (never made)
    spec = MemoryBranchSpec.model_validate(raw["spec"])
    try:
        _delete_branch(raw["metadata"]["namespace"], spec)
    except TenantMissing:
        logger.warning(f"tenant {spec.tenant} is gone; nothing left to delete the branch through")
        return
    except Retry as exc:
        raise _temporary(exc) from exc
    except Exception as exc:
        if dataplane.unreachable(exc):
            raise _temporary(exc) from exc
        raise
    logger.info(f"branch {spec.database}@{spec.branch} deleted from the data plane")
    events.post(raw, [events.branch_deleted(spec.database, spec.branch)])
