"""A minimal kubelet for tests: registers one Node and runs the pods bound to it as local processes.

Why: end-to-end tests of the operator need Deployments, ReplicaSets and Services that behave as on a
real cluster (scheduling, readiness, restarts, graceful deletion, garbage collection), on a machine
with no container runtime and no network beyond loopback. ``NodeAgent`` is the missing kubelet:

* it registers a Node (Ready, no taints, ample capacity) and renews its Lease and status;
* it watches the pods bound to that node (re-listing after errors or an expired resourceVersion);
* per pod it allocates a loopback IP from a pool, materialises volumes (emptyDir, hostPath,
  configMap, secret, downwardAPI, projected incl. service-account tokens), resolves env as the
  kubelet does (``$(VAR)`` expansion, fieldRef, resourceFieldRef, configMap/secret refs, envFrom
  with prefixes, ``optional``), runs init containers in order and then each container as a process
  group logging to ``<log_dir>/<namespace>_<pod>_<container>.log``;
* it runs startup, readiness and liveness probes (httpGet, tcpSocket, exec), restarts containers
  per restartPolicy with a 1 s..10 s doubling backoff, and reports pod status (phase, IPs,
  conditions, container states) with strategic-merge patches to ``pods/<name>/status``;
* on graceful deletion it sends SIGTERM, waits ``deletionGracePeriodSeconds``, sends SIGKILL and
  deletes the pod object (grace 0, uid precondition); a pod that disappears outright is SIGKILLed.

The harness has no network or mount namespaces, so it translates, once, on the values the
container spec yields:

(a) in args and env values, the bind address ``0.0.0.0`` becomes the pod's own IP (so replicas can
    listen on the same port);
(b) an arg or env value that is, or starts with ``<mountPath>/``, a volumeMount's mountPath is
    rewritten to that volume's local directory (so a value naming a host path under a mountPath
    such as ``/tmp`` is rewritten too);
(c) ``command[0]`` is looked up in the caller's ``commands`` map, then next to ``sys.executable``
    (the venv's console scripts), then on PATH; images are ignored, so a container without a
    ``command`` fails its pod (there are no image entrypoints). ``workingDir`` is honoured when it
    is a mountPath or an existing local directory, otherwise the pod's own directory is used.

Processes start from a minimal environment (PATH, HOME and LANG of this process, HOSTNAME = the pod's
hostname, then the caller's ``base_env``), never this process's full environment; no service-link
variables are injected.

Known limitation: kube-apiserver refuses loopback addresses in EndpointSlices and Endpoints
(``ValidateNonSpecialIP``), so with the default 127.0.20.x pool the endpointslice controller cannot
publish a Service's endpoints; pass an ``ip_pool`` of non-loopback addresses that are local to
this host (e.g. inside a network namespace) for that.

Not supported: image entrypoints, sidecar init containers, lifecycle hooks, grpc probes,
persistent volumes, resource enforcement, and refreshing configMap/secret volumes or tokens after
the pod started.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

Obj = dict[str, Any]

HOST_IP = "127.0.0.1"
CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
BACKOFF_START, BACKOFF_CAP = 1.0, 10.0
TICK = 0.1  # how often a pod worker looks at its processes
KUBELET_VERSION = "v1.36.3"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_ip_pool() -> list[str]:
    return [f"127.0.20.{i}" for i in range(1, 255)]


# --- the kubelet's $(VAR) expansion (k8s third_party/forked/golang/expansion), verbatim in behaviour ---


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """``$(NAME)`` becomes NAME's value if defined, else stays as written; ``$$`` is a literal ``$``."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1 :]
            if rest[0] == "$":
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                end = rest.find(")", 1)
                if end == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = rest[1:end]
                    value = lookup(name)
                    out.append(value if value is not None else f"$({name})")
                    advance = end + 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


_ANY_ADDRESS = re.compile(r"(?<![\d.])0\.0\.0\.0(?![\d.])")


def translate(value: str, pod_ip: str, mounts: list[tuple[str, str]]) -> str:
    """The module docstring's rules (a) and (b); ``mounts`` is (mountPath, local dir), longest first."""
    for mount_path, local in mounts:
        if value == mount_path or value.startswith(mount_path + "/"):
            value = local + value[len(mount_path) :]
            break
    return _ANY_ADDRESS.sub(pod_ip, value)


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[a-zA-Z]*)$")
_SUFFIX = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def quantity(text: str) -> float:
    m = _QUANTITY.match(str(text).strip())
    if not m:
        raise ValueError(f"bad quantity {text!r}")
    number, suffix = m.groups()
    if suffix[:1] in ("e", "E"):
        return float(number + suffix)
    return float(number) * _SUFFIX[suffix]


class ConfigError(Exception):
    """A pod refers to something missing (a ConfigMap, a key): retried, as a kubelet does."""


class PodFailure(Exception):
    """The pod can never run here (no command, unsupported feature): it fails for good."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class IPPool:
    """Hands out pod IPs; a freed address goes to the back, so it is reused as late as possible."""

    def __init__(self, ips: Iterable[str]) -> None:
        self._free = deque(ips)
        self._lock = threading.Lock()

    def take(self) -> str | None:
        with self._lock:
            return self._free.popleft() if self._free else None

    def give(self, ip: str) -> None:
        with self._lock:
            if ip not in self._free:
                self._free.append(ip)


class Prober:
    """One probe of one container instance, on its own thread like the kubelet's probe workers.

    ``result`` starts False for readiness and startup, True for liveness, and flips after
    successThreshold successes or failureThreshold failures in a row; ``failed`` says the last
    failureThreshold attempts all failed (for liveness and startup: time to restart)."""

    def __init__(
        self,
        kind: str,
        probe: Obj,
        check: Callable[[Obj, float], bool],
        changed: Callable[[], None],
        log: logging.Logger,
        name: str,
    ) -> None:
        self.kind, self.probe, self._check, self._changed, self._log = kind, probe, check, changed, log
        self.result = kind == "liveness"
        self.failed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe-{kind}-{name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        p = self.probe
        period = max(1, int(p.get("periodSeconds", 10)))
        timeout = max(1, int(p.get("timeoutSeconds", 1)))
        need_ok = max(1, int(p.get("successThreshold", 1)))
        need_fail = max(1, int(p.get("failureThreshold", 3)))
        if self._stop.wait(int(p.get("initialDelaySeconds", 0))):
            return
        oks = fails = 0
        while not self._stop.is_set():
            try:
                ok = self._check(p, timeout)
            except Exception as e:  # a probe never kills its thread: an error is a failure
                self._log.debug("%s probe error: %s", self.kind, e)
                ok = False
            oks, fails = (oks + 1, 0) if ok else (0, fails + 1)
            new = True if oks >= need_ok else (False if fails >= need_fail else self.result)
            failed = fails >= need_fail
            if new != self.result or failed != self.failed:
                self.result, self.failed = new, failed
                self._changed()
            if self.kind == "startup" and self.result:
                return  # the kubelet stops a startup probe once it succeeded
            self._stop.wait(period)


@dataclass
class Container:
    """One container of a pod and its current (or last) process."""

    spec: Obj
    init: bool = False
    proc: subprocess.Popen[bytes] | None = None
    restart_count: int = -1  # incremented on every start, so the first start makes it 0
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    started_at: str = ""
    started_mono: float = 0.0
    next_start: float = 0.0
    backoff: float = BACKOFF_START
    done: bool = False  # terminated and will not run again
    kill_at: float | None = None  # SIGKILL deadline after a SIGTERM the harness sent
    main_probes: bool = False  # readiness and liveness probes started (after the startup probe)
    container_id: str = ""
    image_id: str = ""
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    probers: dict[str, Prober] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def prober(self, kind: str) -> Prober | None:
        return self.probers.get(kind)

    def _passed(self, kind: str) -> bool:
        """A probe the spec declares counts only once its prober reported success."""
        if not self.spec.get(f"{kind}Probe"):
            return True
        prober = self.prober(kind)
        return prober is not None and prober.result

    @property
    def started(self) -> bool:
        return self.running and self._passed("startup")

    @property
    def ready(self) -> bool:
        return self.started and self._passed("readiness")

    def stop_probers(self) -> None:
        for p in self.probers.values():
            p.stop()
        self.probers.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class PodWorker:
    """Owns one pod (by uid) from first sight until its object is gone: volumes, processes, status."""

    def __init__(self, agent: NodeAgent, pod: Obj) -> None:
        self.agent = agent
        self.log = agent.log
        self.uid: str = pod["metadata"]["uid"]
        self.namespace: str = pod["metadata"]["namespace"]
        self.name: str = pod["metadata"]["name"]
        self.key = f"{self.namespace}/{self.name}"
        self._pod = pod
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._vanished = False
        self.ip: str | None = None
        self.dir = os.path.join(agent.work_dir, f"{self.namespace}_{self.name}_{self.uid[:8]}")
        self.volumes: dict[str, str] = {}
        self.prepared = False
        self.failure: PodFailure | None = None
        self.error: str | None = None  # last harness error, reported in status.message
        self.waiting: tuple[str, str] | None = None  # (reason, message) while the pod cannot start yet
        self.retry_at = 0.0
        self.retry_backoff = BACKOFF_START
        spec = pod["spec"]
        self.init_containers = [Container(c, init=True) for c in spec.get("initContainers") or []]
        self.containers = [Container(c) for c in spec.get("containers") or []]
        self.start_time = _now()
        self.adopted_terminal = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        self._conditions: dict[str, tuple[str, str]] = {}
        self._reported: Obj | None = None
        self._report_failing = False
        self.thread = threading.Thread(target=self._run, name=f"pod-{self.key}", daemon=True)

    # -- inputs from the agent's watch --

    @property
    def pod(self) -> Obj:
        with self._lock:
            return self._pod

    def update(self, pod: Obj) -> None:
        with self._lock:
            self._pod = pod
        self._wake.set()

    def vanish(self) -> None:
        """The pod object is gone (force deletion): kill everything now."""
        self._vanished = True
        self._wake.set()

    @property
    def deleting(self) -> bool:
        return bool(self.pod["metadata"].get("deletionTimestamp"))

    def container(self, name: str | None) -> Container | None:
        if name is None:
            return self.containers[0] if self.containers else None
        return next((c for c in self.containers + self.init_containers if c.name == name), None)

    # -- the loop --

    def _run(self) -> None:
        try:
            while True:
                try:
                    if self._vanished or self.agent.closing:
                        self._kill_all(signal.SIGKILL)
                        return
                    if self.deleting:
                        self._terminate()
                        if self._delete_object():
                            return
                    else:
                        self._sync()
                        self.error = None
                except Exception as e:
                    self.log.exception("pod %s: harness error", self.key)
                    self.error = f"harness error: {type(e).__name__}: {e}"
                    self._report_safely()
                    self._wake.wait(1.0)
                self._wake.wait(TICK)
                self._wake.clear()
        finally:
            self._kill_all(signal.SIGKILL)
            if self.ip and not self._host_network:
                self.agent.ip_pool.give(self.ip)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.agent._forget(self)

    @property
    def _host_network(self) -> bool:
        return bool(self.pod["spec"].get("hostNetwork"))

    def _sync(self) -> None:
        pod = self.pod
        if self.adopted_terminal:
            return  # terminal before this agent saw it: nothing to run, wait for deletion
        try:
            if self.failure is None and not self.prepared and time.monotonic() >= self.retry_at:
                self._prepare(pod)
            if self.failure is None and self.prepared:
                if self._run_init_containers():
                    for c in self.containers:
                        self._supervise(c)
        except PodFailure as f:
            self.log.warning("pod %s failed: %s: %s", self.key, f.reason, f)
            self.failure = f
            for c in self.init_containers + self.containers:
                if c.proc is not None:
                    _signal_group(c.proc, signal.SIGKILL)
                    self._exited(c, _exit_code(c.proc.wait()), final=True)
        self._report_safely()

    def _retry_later(self, reason: str, message: str) -> None:
        self.waiting = (reason, message)
        self.retry_at = time.monotonic() + self.retry_backoff
        self.retry_backoff = min(self.retry_backoff * 2, BACKOFF_CAP)
        self.log.info("pod %s: %s: %s (retrying)", self.key, reason, message)

    def _prepare(self, pod: Obj) -> None:
        """The pod's "sandbox": an IP, a directory, its volumes."""
        try:
            for c in self.init_containers + self.containers:
                if not c.spec.get("command"):
                    raise PodFailure(
                        "NoCommand",
                        f"container {c.name!r} has no command; this harness runs local "
                        "executables and cannot use an image's entrypoint",
                    )
                if c.init and c.spec.get("restartPolicy"):
                    raise PodFailure(
                        "Unsupported",
                        f"init container {c.name!r} is a sidecar (restartPolicy), which this harness does not support",
                    )
            if self.ip is None:
                self.ip = HOST_IP if self._host_network else self.agent.ip_pool.take()
                if self.ip is None:
                    self._retry_later("NoPodIP", "the node agent's IP pool is exhausted")
                    return
            os.makedirs(self.dir, exist_ok=True)
            for volume in pod["spec"].get("volumes") or []:
                self.volumes[volume["name"]] = self._materialise(pod, volume)
        except PodFailure as f:
            self.failure = f
            self.log.warning("pod %s failed: %s: %s", self.key, f.reason, f)
            return
        except ConfigError as e:
            self._retry_later("ContainerCreating", str(e))
            return
        self.prepared, self.waiting = True, None
        self.retry_backoff = BACKOFF_START

    # -- volumes --

    def _materialise(self, pod: Obj, volume: Obj) -> str:
        name = volume["name"]
        if "hostPath" in volume:
            path = volume["hostPath"]["path"]
            if volume["hostPath"].get("type") == "DirectoryOrCreate":
                os.makedirs(path, exist_ok=True)
            return str(path)
        path = os.path.join(self.dir, "volumes", name)
        os.makedirs(path, exist_ok=True)
        kind = next((k for k in ("configMap", "secret", "projected", "downwardAPI") if k in volume), None)
        default_mode = int(volume[kind].get("defaultMode", 0o644)) if kind else 0o644
        if "emptyDir" in volume:
            pass
        elif "configMap" in volume or "secret" in volume:
            self._write_source(pod, path, volume, default_mode)
        elif "downwardAPI" in volume:
            self._write_downward(pod, path, volume["downwardAPI"].get("items") or [], default_mode)
        elif "projected" in volume:
            for source in volume["projected"].get("sources") or []:
                if "serviceAccountToken" in source:
                    self._write_token(pod, path, source["serviceAccountToken"], default_mode)
                elif "downwardAPI" in source:
                    self._write_downward(pod, path, source["downwardAPI"].get("items") or [], default_mode)
                elif "configMap" in source or "secret" in source:
                    self._write_source(pod, path, source, default_mode)
                else:
                    raise PodFailure(
                        "Unsupported", f"volume {name!r}: projected source {sorted(source)} is not supported"
                    )
        else:
            kind = sorted(k for k in volume if k != "name")
            raise PodFailure("Unsupported", f"volume {name!r} of type {kind} is not supported by this harness")
        return path

    def _write_source(self, pod: Obj, path: str, source: Obj, default_mode: int) -> None:
        kind = "configMap" if "configMap" in source else "secret"
        ref = source[kind]
        ref_name = ref.get("name") if kind == "configMap" else ref.get("secretName", ref.get("name"))
        data = self.agent.object_data(self.namespace, kind, ref_name, bool(ref.get("optional")))
        if data is None:
            return
        items = ref.get("items")
        pairs = [(i["key"], i["path"], i.get("mode")) for i in items] if items else [(k, k, None) for k in data]
        for key, rel, mode in pairs:
            if key not in data:
                if ref.get("optional"):
                    continue
                raise ConfigError(f"couldn't find key {key} in {kind} {self.namespace}/{ref_name}")
            self._write_file(path, rel, data[key], mode if mode is not None else default_mode)

    def _write_downward(self, pod: Obj, path: str, items: list[Obj], default_mode: int) -> None:
        for item in items:
            if "fieldRef" in item:
                value = self._field(pod, item["fieldRef"]["fieldPath"], volume=True)
            else:
                value = self._resource(item["resourceFieldRef"], None)
            self._write_file(path, item["path"], value.encode(), item.get("mode", default_mode))

    def _write_token(self, pod: Obj, path: str, source: Obj, default_mode: int) -> None:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [source["audience"]] if source.get("audience") else [],
                "expirationSeconds": int(source.get("expirationSeconds", 3600)),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid},
            },
        }
        sa = pod["spec"].get("serviceAccountName") or "default"
        r = self.agent.api.post(f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{sa}/token", json=body)
        if r.status_code != 201:
            raise ConfigError(
                f"token request for service account {self.namespace}/{sa}: {r.status_code} {r.text[:200]}"
            )
        self._write_file(path, source.get("path", "token"), r.json()["status"]["token"].encode(), default_mode)

    @staticmethod
    def _write_file(root: str, rel: str, content: bytes, mode: int) -> None:
        target = os.path.normpath(os.path.join(root, rel))
        if not target.startswith(root + os.sep):
            raise PodFailure("InvalidVolume", f"volume item path {rel!r} escapes its volume")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(content)
        os.chmod(target, mode | 0o200)  # keep it writable by us, so a retry can rewrite it

    # -- downward API --

    def _field(self, pod: Obj, path: str, volume: bool = False) -> str:
        meta, spec = pod["metadata"], pod["spec"]
        simple = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": spec.get("nodeName", self.agent.node_name),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.podIP": self.ip or "",
            "status.podIPs": self.ip or "",
            "status.hostIP": HOST_IP,
            "status.hostIPs": HOST_IP,
        }
        if path in simple:
            return str(simple[path])
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if m:
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        if volume and path in ("metadata.labels", "metadata.annotations"):
            values = meta.get(path.split(".")[1]) or {}
            return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
        raise PodFailure("Unsupported", f"fieldRef {path!r} is not supported")

    def _resource(self, ref: Obj, container: Container | None) -> str:
        if container is None:
            container = next((c for c in self.containers if c.name == ref.get("containerName")), self.containers[0])
        kind, _, resource = ref["resource"].partition(".")
        resources = container.spec.get("resources") or {}
        value = (resources.get(kind) or {}).get(resource)
        if value is None and kind == "limits":
            value = CAPACITY.get(resource, "0")
        divisor = quantity(ref.get("divisor") or "1")
        return str(math.ceil(quantity(value or "0") / divisor))

    # -- containers --

    def _env_for(self, pod: Obj, c: Container) -> dict[str, str]:
        """The container's own variables, in the kubelet's order and with its expansion rules."""
        spec = c.spec
        env: dict[str, str] = {}
        for source in spec.get("envFrom") or []:
            kind = "configMap" if "configMapRef" in source else "secret"
            ref = source[f"{kind}Ref"]
            data = self.agent.object_data(self.namespace, kind, ref["name"], bool(ref.get("optional")))
            for key, value in (data or {}).items():
                if key and "=" not in key:
                    env[source.get("prefix", "") + key] = value.decode(errors="replace")
        for var in spec.get("env") or []:
            name, value = var["name"], var.get("value")
            if value:
                env[name] = expand(value, env.get)
                continue
            source = var.get("valueFrom")
            if not source:
                env[name] = ""
            elif "fieldRef" in source:
                env[name] = self._field(pod, source["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in source:
                env[name] = self._resource(source["resourceFieldRef"], c)
            elif "configMapKeyRef" in source or "secretKeyRef" in source:
                kind = "configMap" if "configMapKeyRef" in source else "secret"
                ref = source[f"{kind}KeyRef"]
                optional = bool(ref.get("optional"))
                data = self.agent.object_data(self.namespace, kind, ref["name"], optional)
                if data is None or ref["key"] not in data:
                    if optional:
                        continue
                    raise ConfigError(f"couldn't find key {ref['key']} in {kind} {self.namespace}/{ref['name']}")
                env[name] = data[ref["key"]].decode(errors="replace")
            else:
                raise PodFailure("Unsupported", f"env {name}: valueFrom {sorted(source)} is not supported")
        return env

    def _mounts(self, c: Container) -> list[tuple[str, str]]:
        mounts = []
        for m in c.spec.get("volumeMounts") or []:
            local = self.volumes.get(m["name"])
            mount_path = m["mountPath"].rstrip("/")
            if local is None or not mount_path:
                continue
            if m.get("subPath"):
                local = os.path.join(local, m["subPath"])
                os.makedirs(local, exist_ok=True)
            mounts.append((mount_path, local))
        return sorted(mounts, key=lambda m: len(m[0]), reverse=True)

    def _executable(self, name: str, path_var: str) -> str | None:
        if name in self.agent.commands:
            return self.agent.commands[name]
        if "/" in name:
            return name if os.access(name, os.X_OK) else None
        beside = os.path.join(os.path.dirname(sys.executable), name)
        if os.access(beside, os.X_OK):
            return beside
        return shutil.which(name, path=path_var)

    def _start(self, pod: Obj, c: Container) -> None:
        assert self.ip is not None
        try:
            own = self._env_for(pod, c)
        except ConfigError as e:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
            c.next_start = time.monotonic() + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_CAP)
            self.log.info("pod %s container %s: %s", self.key, c.name, e)
            return
        mounts = self._mounts(c)
        argv = [expand(a, own.get) for a in list(c.spec["command"]) + list(c.spec.get("args") or [])]
        argv = [translate(a, self.ip, mounts) for a in argv]
        env = dict(self.agent.base_env)
        env["HOSTNAME"] = pod["spec"].get("hostname") or self.name
        env.update(self.agent.extra_env)
        env.update({k: translate(v, self.ip, mounts) for k, v in own.items()})
        workdir = c.spec.get("workingDir")
        cwd = translate(workdir, self.ip, mounts) if workdir else self.dir
        if not os.path.isdir(cwd):
            cwd = self.dir
        c.env, c.cwd = env, cwd
        c.restart_count += 1
        c.started_at, c.started_mono = _now(), time.monotonic()
        c.kill_at = None
        exe = self._executable(argv[0], env.get("PATH", os.defpath))
        if exe is None:
            self._exited(c, 127, reason="StartError", message=f"executable {argv[0]!r} not found")
            return
        log_path = os.path.join(self.agent.log_dir, f"{self.namespace}_{self.name}_{c.name}.log")
        with open(log_path, "ab") as out:
            try:
                c.proc = subprocess.Popen(
                    [exe, *argv[1:]],
                    env=env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as e:
                self._exited(c, 128, reason="StartError", message=str(e))
                return
        c.container_id = f"memoturn://{self.uid[:8]}-{c.name}-{c.restart_count}-{c.proc.pid}"
        c.image_id = f"local://{exe}"
        c.state = {"running": {"startedAt": c.started_at}}
        self.log.info(
            "pod %s container %s started (pid %d, restart %d): %s", self.key, c.name, c.proc.pid, c.restart_count, argv
        )
        c.main_probes = not c.init and not c.spec.get("startupProbe")
        if not c.init:
            self._start_probers(c, "main" if c.main_probes else "startup")

    def _start_probers(self, c: Container, phase: str) -> None:
        kinds = ["startup"] if phase == "startup" else ["readiness", "liveness"]
        for kind in kinds:
            probe = c.spec.get(f"{kind}Probe")
            if probe:
                c.probers[kind] = Prober(
                    kind,
                    probe,
                    lambda p, t, c=c: self._probe(c, p, t),
                    self._wake.set,
                    self.log,
                    f"{self.key}/{c.name}",
                )

    def _port(self, c: Container, port: Any) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in c.spec.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"no containerPort named {port!r}")

    def _probe(self, c: Container, probe: Obj, timeout: float) -> bool:
        assert self.ip is not None
        if "httpGet" in probe:
            h = probe["httpGet"]
            host = h.get("host") or self.ip
            scheme = str(h.get("scheme", "HTTP")).lower()
            path = h.get("path") or "/"
            headers = {x["name"]: x["value"] for x in h.get("httpHeaders") or []}
            r = self.agent.probe_client.get(
                f"{scheme}://{host}:{self._port(c, h['port'])}{path if path.startswith('/') else '/' + path}",
                headers=headers,
                timeout=timeout,
            )
            return 200 <= r.status_code < 400
        if "tcpSocket" in probe:
            t = probe["tcpSocket"]
            with socket.create_connection((t.get("host") or self.ip, self._port(c, t["port"])), timeout=timeout):
                return True
        if "exec" in probe:
            command = probe["exec"]["command"]
            exe = self._executable(command[0], c.env.get("PATH", os.defpath))
            if exe is None:
                return False
            done = subprocess.run(
                [exe, *command[1:]],
                env=c.env,
                cwd=c.cwd,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            return done.returncode == 0
        raise ValueError(f"unsupported probe {sorted(probe)}")

    def _exited(
        self, c: Container, code: int, *, reason: str | None = None, message: str | None = None, final: bool = False
    ) -> None:
        """Records a finished process and decides, by restartPolicy, whether it runs again."""
        c.stop_probers()
        if c.proc is not None:
            _signal_group(c.proc, signal.SIGKILL)  # leftovers of the container's process group
        c.proc = None
        terminated: Obj = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": c.started_at or _now(),
            "finishedAt": _now(),
        }
        if message:
            terminated["message"] = message
        if c.container_id:
            terminated["containerID"] = c.container_id
        policy = self.pod["spec"].get("restartPolicy", "Always")
        again = policy == "Always" or (policy == "OnFailure" and code != 0)
        if c.init:  # init containers are retried on failure unless the pod never restarts
            again = code != 0 and policy != "Never"
        again = again and not final and not self.deleting
        self.log.info(
            "pod %s container %s exited %d (%s)%s",
            self.key,
            c.name,
            code,
            terminated["reason"],
            ", restarting" if again else "",
        )
        if again:
            if time.monotonic() - c.started_mono > BACKOFF_CAP:
                c.backoff = BACKOFF_START  # it ran a while: start the backoff over
            c.last_state = {"terminated": terminated}
            c.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {c.backoff:g}s restarting failed container={c.name} pod={self.name}",
                }
            }
            c.next_start = time.monotonic() + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_CAP)
        else:
            c.state = {"terminated": terminated}
            c.done = True

    def _supervise(self, c: Container) -> None:
        pod = self.pod
        if c.proc is None:
            if not c.done and time.monotonic() >= c.next_start:
                self._start(pod, c)
            return
        code = c.proc.poll()
        if code is not None:
            self._exited(c, _exit_code(code))
            return
        if c.started and not c.main_probes and not c.init:
            c.main_probes = True
            self._start_probers(c, "main")
        failed = next((p.kind for p in (c.prober("startup"), c.prober("liveness")) if p is not None and p.failed), None)
        if failed and c.kill_at is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            self.log.info("pod %s container %s failed its %s probe: restarting", self.key, c.name, failed)
            _signal_group(c.proc, signal.SIGTERM)
            c.kill_at = time.monotonic() + float(grace)
        if c.kill_at is not None and time.monotonic() >= c.kill_at:
            _signal_group(c.proc, signal.SIGKILL)

    def _run_init_containers(self) -> bool:
        """Runs init containers one after another; True once all succeeded."""
        for c in self.init_containers:
            if c.done and c.state.get("terminated", {}).get("exitCode") == 0:
                continue
            if c.done:
                self.failure = PodFailure("InitContainerFailed", f"init container {c.name!r} failed")
                return False
            self._supervise(c)
            return False
        return True

    # -- deletion --

    def _terminate(self) -> None:
        """SIGTERM, up to deletionGracePeriodSeconds, then SIGKILL; containers are not restarted."""
        running = [c for c in self.init_containers + self.containers if c.running]
        if running:
            first = signal.SIGTERM if self._grace() > 0 else signal.SIGKILL  # grace 0: a forced deletion
            for c in running:
                c.stop_probers()
                assert c.proc is not None
                _signal_group(c.proc, first)
            began = time.monotonic()
            self.log.info("pod %s: deleting, %s sent to %s", self.key, first.name, [c.name for c in running])
            while any(c.running for c in running) and not self._vanished:
                if time.monotonic() - began >= self._grace():  # re-read: a second delete may shorten it
                    break
                self._wake.wait(TICK)
                self._wake.clear()
            for c in running:
                assert c.proc is not None
                if c.running:
                    self.log.info("pod %s container %s: grace period over, SIGKILL", self.key, c.name)
                    _signal_group(c.proc, signal.SIGKILL)
                code = c.proc.wait()
                self._exited(c, _exit_code(code), final=True)
        for c in self.init_containers + self.containers:
            if not c.done and c.proc is None:
                c.done = True  # it was waiting (never started, or in back-off): it stays as it was last seen
                if "waiting" in c.state and c.last_state:
                    c.state = dict(c.last_state)
        if not self.adopted_terminal:
            self._report_safely()

    def _grace(self) -> float:
        grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return float(grace)

    def _delete_object(self) -> bool:
        """Removes the pod object for good; True once it is gone (or was never ours)."""
        r = self.agent.api.request(
            "DELETE",
            f"/api/v1/namespaces/{self.namespace}/pods/{self.name}",
            json={"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
        )
        if r.status_code in (200, 202, 404, 409):
            self.log.info("pod %s deleted (%d)", self.key, r.status_code)
            return True
        self.log.warning("pod %s: delete returned %d %s", self.key, r.status_code, r.text[:300])
        self._wake.wait(1.0)
        return False

    def _kill_all(self, sig: int) -> None:
        for c in self.init_containers + self.containers:
            c.stop_probers()
            if c.proc is not None:
                _signal_group(c.proc, sig)
                try:
                    c.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.log.warning("pod %s container %s did not die", self.key, c.name)

    # -- status --

    def _phase(self) -> str:
        if self.failure is not None:
            return "Failed"
        if not self.prepared or not all(c.done for c in self.init_containers):
            return "Pending"
        if self.containers and all(c.done for c in self.containers):
            codes = [c.state.get("terminated", {}).get("exitCode", 1) for c in self.containers]
            return "Succeeded" if all(code == 0 for code in codes) else "Failed"
        if any(c.restart_count >= 0 for c in self.containers):
            return "Running"
        return "Pending"

    def _condition(self, type_: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        status = "True" if ok else "False"
        previous = self._conditions.get(type_)
        since = previous[1] if previous and previous[0] == status else _now()
        self._conditions[type_] = (status, since)
        cond: Obj = {
            "type": type_,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": since,
            "reason": reason or None,
            "message": message or None,
        }
        return cond

    def _container_status(self, c: Container) -> Obj:
        state = {"waiting": None, "running": None, "terminated": None, **c.state}
        return {
            "name": c.name,
            "image": c.spec.get("image") or "local",
            "imageID": c.image_id,
            "containerID": c.container_id or None,
            "ready": c.ready,
            "started": c.started,
            "restartCount": max(c.restart_count, 0),
            "state": state,
            "lastState": c.last_state,
        }

    def _status(self) -> Obj:
        pod = self.pod
        phase = self._phase()
        terminal = phase in ("Succeeded", "Failed")
        initialized = all(c.done for c in self.init_containers) and self.prepared
        unready = [c.name for c in self.containers if not c.ready]
        gates = [g["conditionType"] for g in pod["spec"].get("readinessGates") or []]
        have = {c["type"]: c.get("status") for c in pod.get("status", {}).get("conditions") or []}
        gates_ok = all(have.get(g) == "True" for g in gates)
        containers_ready = not unready and not terminal
        why = "PodCompleted" if terminal else ("ContainersNotReady" if unready else "")
        note = f"containers with unready status: [{' '.join(unready)}]" if unready and not terminal else ""
        status: Obj = {
            "phase": phase,
            "observedGeneration": pod["metadata"].get("generation"),
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "startTime": self.start_time,
            "conditions": [
                self._condition("PodReadyToStartContainers", self.prepared and not terminal),
                self._condition("Initialized", initialized, "" if initialized else "ContainersNotInitialized"),
                self._condition("ContainersReady", containers_ready, why, note),
                self._condition(
                    "Ready", containers_ready and gates_ok, why or ("" if gates_ok else "ReadinessGatesNotReady"), note
                ),
            ],
            "containerStatuses": [self._container_status(c) for c in self.containers],
            "reason": None,
            "message": None,
        }
        if self.init_containers:
            status["initContainerStatuses"] = [self._container_status(c) for c in self.init_containers]
        if self.ip:
            status["podIP"], status["podIPs"] = self.ip, [{"ip": self.ip}]
        if self.failure is not None:
            status["reason"], status["message"] = self.failure.reason, str(self.failure)
            for cs in status["containerStatuses"]:
                if cs["state"].get("waiting"):
                    cs["state"]["waiting"] = {"reason": "CreateContainerError", "message": str(self.failure)}
        elif self.waiting is not None:
            status["message"] = f"{self.waiting[0]}: {self.waiting[1]}"
            for cs in status["containerStatuses"]:
                if cs["state"].get("waiting"):
                    cs["state"]["waiting"] = {"reason": self.waiting[0], "message": self.waiting[1]}
        if self.error:
            status["message"] = self.error
        return status

    def _report_safely(self) -> None:
        try:
            status = self._status()
            if status == self._reported:
                return
            r = self.agent.api.patch(
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status",
                json={"metadata": {"uid": self.uid}, "status": status},
                headers={"Content-Type": "application/strategic-merge-patch+json"},
            )
            if r.status_code == 200:
                self._reported, self._report_failing = status, False
            elif r.status_code == 404:
                self.vanish()
            else:
                self._report_failed(f"status patch {r.status_code}: {r.text[:500]}")
        except Exception as e:  # reporting never ends the worker: the next tick tries again
            self._report_failed(f"status report failed: {type(e).__name__}: {e}")

    def _report_failed(self, why: str) -> None:
        if not self._report_failing:  # once per outage, not once per tick
            self.log.warning("pod %s: %s", self.key, why)
        self._report_failing = True


class NodeAgent:
    """Registers ``node_name`` on the API server and runs the pods bound to it as local processes.

    ``commands`` maps a command name to an executable (e.g. ``{"python": sys.executable}``);
    ``base_env`` is added to every container's starting environment; ``ip_pool`` lists the pod IPs
    (default 127.0.20.1-254); ``log_dir`` receives one log per container and ``node-agent.log``."""

    def __init__(
        self,
        api_url: str,
        token: str,
        node_name: str,
        log_dir: str | os.PathLike[str],
        *,
        ip_pool: Iterable[str] | None = None,
        commands: Mapping[str, str] | None = None,
        base_env: Mapping[str, str] | None = None,
        heartbeat_seconds: float = 10.0,
    ) -> None:
        self.node_name = node_name
        self.log_dir = os.fspath(log_dir)
        os.makedirs(self.log_dir, exist_ok=True)
        self.work_dir = tempfile.mkdtemp(prefix=f"memoturn-kubelet-{node_name}-")
        self.ip_pool = IPPool(ip_pool if ip_pool is not None else default_ip_pool())
        self.commands = dict(commands or {})
        self.base_env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        self.extra_env = dict(base_env or {})
        self.heartbeat_seconds = heartbeat_seconds
        self.closing = False
        self.log = logging.getLogger(f"memoturn.tests.kubelet.{node_name}")
        self.log.setLevel(logging.INFO)
        self._log_handler = logging.FileHandler(os.path.join(self.log_dir, "node-agent.log"))
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(message)s"))
        self.log.addHandler(self._log_handler)
        headers = {"Authorization": f"Bearer {token}"}
        self.api = httpx.Client(
            base_url=api_url,
            verify=False,
            timeout=30,
            headers=headers,
            trust_env=False,
            limits=httpx.Limits(max_connections=50),
        )
        self._watch_api = httpx.Client(
            base_url=api_url, verify=False, headers=headers, trust_env=False, timeout=httpx.Timeout(30, read=90)
        )
        self.probe_client = httpx.Client(
            verify=False, trust_env=False, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self._watch_response: httpx.Response | None = None
        self._workers: dict[str, PodWorker] = {}
        self._finished: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        try:
            self._register()
        except BaseException:
            self.close()
            raise
        self._threads = [
            threading.Thread(target=self._heartbeat_loop, name=f"heartbeat-{node_name}", daemon=True),
            threading.Thread(target=self._watch_loop, name=f"watch-{node_name}", daemon=True),
        ]
        for t in self._threads:
            t.start()

    # -- helpers for tests --

    def _worker(self, namespace: str, pod: str) -> PodWorker | None:
        with self._lock:
            matches = [w for w in self._workers.values() if w.namespace == namespace and w.name == pod]
        live = [w for w in matches if not w.deleting]
        return (live or matches or [None])[-1]

    def process(self, namespace: str, pod: str, container: str | None = None) -> subprocess.Popen[bytes] | None:
        """The current process of a container (the first container by default), or None."""
        worker = self._worker(namespace, pod)
        c = worker.container(container) if worker else None
        return c.proc if c else None

    def pod_ip(self, namespace: str, pod: str) -> str | None:
        worker = self._worker(namespace, pod)
        return worker.ip if worker else None

    def pods(self) -> list[str]:
        """``namespace/name`` of every pod this agent currently runs or is tearing down."""
        with self._lock:
            return sorted(w.key for w in self._workers.values())

    def close(self) -> None:
        """Kills every process and stops the agent; the Node object stays registered."""
        self.closing = True
        self._stop.set()
        with self._lock:
            workers = list(self._workers.values())
        for w in workers:
            w.vanish()
        for w in workers:
            w.thread.join(timeout=15)
        response = self._watch_response
        if response is not None:  # wake the watch thread blocked on a read (closing alone would not)
            sock = response.extensions.get("network_stream")
            sock = sock.get_extra_info("socket") if sock is not None else None
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._watch_api.close()
        for t in self._threads:
            t.join(timeout=5)
        self.api.close()
        self.probe_client.close()
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.log.removeHandler(self._log_handler)
        self._log_handler.close()

    def __enter__(self) -> NodeAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- API lookups for pod workers --

    def object_data(self, namespace: str, kind: str, name: str, optional: bool) -> dict[str, bytes] | None:
        """A ConfigMap's or Secret's data as bytes; None if it is missing and optional."""
        plural = "configmaps" if kind == "configMap" else "secrets"
        r = self.api.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        if r.status_code == 404:
            if optional:
                return None
            raise ConfigError(f"{kind} {namespace}/{name} not found")
        r.raise_for_status()
        obj = r.json()
        data: dict[str, bytes] = {}
        if kind == "configMap":
            data.update({k: v.encode() for k, v in (obj.get("data") or {}).items()})
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        else:
            data.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
        return data

    # -- node registration and heartbeat --

    def _node_status(self) -> Obj:
        now = _now()
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

        def cond(type_: str, status: str, reason: str, message: str) -> Obj:
            return {
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self._started_at,
            }

        return {
            "capacity": CAPACITY,
            "allocatable": CAPACITY,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "enough memory"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "enough disk"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "enough PIDs"),
                cond("Ready", "True", "KubeletReady", "memoturn test node agent is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": "memoturn",
                "systemUUID": "memoturn",
                "bootID": "memoturn",
                "kernelVersion": platform.release(),
                "osImage": "memoturn test node",
                "containerRuntimeVersion": "local://processes",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        }

    def _register(self) -> None:
        self._started_at = _now()
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": arch,
                },
            },
        }
        r = self.api.post("/api/v1/nodes", json=node)
        if r.status_code not in (201, 409):
            raise RuntimeError(f"registering node {self.node_name}: {r.status_code} {r.text}")
        # The TaintNodesByCondition admission plugin taints a new node not-ready; with no node
        # lifecycle controller to lift it, the agent does, once it has reported Ready.
        self._patch_node_status()
        r = self.api.patch(
            f"/api/v1/nodes/{self.node_name}",
            json={"spec": {"taints": None}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        r.raise_for_status()
        self._node_uid = r.json()["metadata"]["uid"]
        self._renew_lease()
        self.log.info("node %s registered", self.node_name)

    def _patch_node_status(self) -> None:
        r = self.api.patch(
            f"/api/v1/nodes/{self.node_name}/status",
            json={"status": self._node_status()},
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        if r.status_code == 404 and not self._stop.is_set():
            self._register()  # someone deleted the node: register again
            return
        r.raise_for_status()

    def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}"
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": 40, "renewTime": _now_micro()}
        r = self.api.patch(path, json={"spec": spec}, headers={"Content-Type": "application/merge-patch+json"})
        if r.status_code == 404:
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.node_name,
                    "namespace": "kube-node-lease",
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": self._node_uid}
                    ],
                },
                "spec": spec,
            }
            r = self.api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", json=lease)
        if r.status_code >= 300 and r.status_code != 409:
            raise RuntimeError(f"lease: {r.status_code} {r.text[:300]}")

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                self._renew_lease()
                self._patch_node_status()
            except Exception as e:
                self.log.warning("heartbeat failed: %s", e)

    # -- the pod watch --

    def _watch_loop(self) -> None:
        resource_version: str | None = None
        backoff = 0.5
        selector = f"spec.nodeName={self.node_name}"
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist(selector)
                params = {
                    "watch": "1",
                    "fieldSelector": selector,
                    "resourceVersion": resource_version,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": "60",
                }
                with self._watch_api.stream("GET", "/api/v1/pods", params=params) as r:
                    self._watch_response = r
                    if r.status_code == 410:
                        resource_version = None
                        continue
                    r.raise_for_status()
                    for line in r.iter_lines():
                        if self._stop.is_set():
                            return
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            if obj.get("code") == 410:
                                resource_version = None  # expired: list again
                            else:
                                self.log.warning("watch error: %s", obj)
                            break
                        resource_version = obj.get("metadata", {}).get("resourceVersion", resource_version)
                        if event.get("type") != "BOOKMARK":
                            self._dispatch(event["type"], obj)
                backoff = 0.5
            except Exception as e:
                if self._stop.is_set():
                    return
                self.log.warning("pod watch failed (%s: %s); reconnecting", type(e).__name__, e)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _relist(self, selector: str) -> str:
        r = self.api.get("/api/v1/pods", params={"fieldSelector": selector})
        r.raise_for_status()
        listing = r.json()
        seen = set()
        for pod in listing.get("items") or []:
            seen.add(pod["metadata"]["uid"])
            self._dispatch("MODIFIED", pod)
        with self._lock:
            gone = [w for uid, w in self._workers.items() if uid not in seen]
        for w in gone:  # deleted while the watch was down
            w.vanish()
        return str(listing["metadata"]["resourceVersion"])

    def _dispatch(self, kind: str, pod: Obj) -> None:
        try:
            uid = pod["metadata"]["uid"]
            with self._lock:
                worker = self._workers.get(uid)
                if worker is None and kind != "DELETED" and uid not in self._finished and not self.closing:
                    worker = PodWorker(self, pod)
                    self._workers[uid] = worker
                    worker.thread.start()
                    return
            if worker is None:
                return
            if kind == "DELETED":
                worker.vanish()
            else:
                worker.update(pod)
        except Exception:
            self.log.exception("dispatching %s event", kind)

    def _forget(self, worker: PodWorker) -> None:
        with self._lock:
            self._workers.pop(worker.uid, None)
            self._finished.add(worker.uid)
        self.log.info("pod %s (uid %s) is gone", worker.key, worker.uid)
