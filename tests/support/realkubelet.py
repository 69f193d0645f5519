"""A real Kubernetes node for the e2e tests: containerd, runc and the CNI plugins from Debian
(``.ci/install-containerd``), kubelet and kube-proxy built from upstream source
(``.ci/install-kubelet``), registered with a :class:`support.controlplane.ControlPlane`.

Pods are real containers of real images: the project's image (``$MEMOTURN_IMAGE``, moved from
the Docker engine with ``docker save | ctr images import``) and a sandbox image made here from
``pause.c`` (``gcc -static`` into a ``FROM scratch`` image), so no registry is needed.

Everything is the run's own and removed at exit: containerd's root, state, socket and config
(under a short temporary directory: unix socket paths are limited to 108 bytes), the CNI config
directory, a bridge ``mtk<id>`` on ``198.18.<n>.0/24`` (RFC 2544's benchmarking range, not routed
on the internet; the host's own network here is 192.0.2.0/24) whose first address is the node's
IP. Servers the pods must reach (etcd, MinIO) listen on that address (``.host``): pods cannot
reach the host's 127.0.0.1. An INPUT chain drops every packet for the bridge's subnet that does
not arrive on the bridge or on loopback, so nothing the run serves is reachable from outside
the machine. At exit: pods deleted (the kubelet tears their sandboxes and CNI down), kube-proxy,
kubelet and containerd stopped (and its shims), mounts unmounted, the bridge removed, the
iptables rules and chains the run added removed, the kubelet's cgroups removed, and the sysctls
the kubelet and kube-proxy change put back.

Needs root. Missing parts fail under ``$CI`` and skip otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from support.kube import KUBE_VERSION
from support.processes import _missing, free_port, terminate

DEFAULT_KUBELET_BIN = os.path.expanduser(f"~/.cache/memoturn/kubelet-{KUBE_VERSION}-r1/bin")  # .ci/install-kubelet
PAUSE_SOURCE = Path(__file__).with_name("pause.c")
#: Sysctls the kubelet (protectKernelDefaults false) and kube-proxy may change; put back at exit.
SYSCTLS = (
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/run/netns")
#: Directories containerd, runc and the CNI plugins create outside the run's own (shim sockets,
#: runc state, pod network namespaces, CNI results); removed at exit when the run created them.
RUNTIME_DIRS = (Path("/run/containerd"), NETNS_DIR, Path("/var/lib/cni"))


def kubelet_bin_dir() -> str:
    path = os.environ.get("MEMOTURN_KUBELET_BIN") or DEFAULT_KUBELET_BIN
    for name in ("kubelet", "kube-proxy"):
        if not os.access(os.path.join(path, name), os.X_OK):
            _missing(f"{name} not found in {path}: run .ci/install-kubelet (or set MEMOTURN_KUBELET_BIN)")
    return path


def containerd_parts() -> dict[str, str]:
    """containerd, runc, ctr and the CNI plugin directory: ``$MEMOTURN_CONTAINERD`` (the four
    paths ``.ci/install-containerd`` prints) or the same found on this machine."""
    given = os.environ.get("MEMOTURN_CONTAINERD", "").split()
    if given and len(given) != 4:
        _missing(f"MEMOTURN_CONTAINERD must be '<containerd> <runc> <ctr> <cni dir>', not {given!r}")
    if given:
        parts = dict(zip(("containerd", "runc", "ctr", "cni"), given, strict=True))
    else:
        found = {name: shutil.which(name) or "" for name in ("containerd", "runc", "ctr")}
        cni = next((d for d in ("/usr/lib/cni", "/opt/cni/bin") if os.access(f"{d}/bridge", os.X_OK)), "")
        parts = {**found, "cni": cni}
    for name in ("containerd", "runc", "ctr"):
        if not parts[name] or not os.access(parts[name], os.X_OK):
            _missing(f"{name} not found: run .ci/install-containerd (or set MEMOTURN_CONTAINERD)")
    for plugin in ("bridge", "host-local", "portmap", "firewall", "loopback"):
        if not os.access(os.path.join(parts["cni"], plugin), os.X_OK):
            _missing(f"CNI plugin {plugin} not found in {parts['cni']!r}: run .ci/install-containerd")
    return parts


def _run(*cmd: str, check: bool = True, input: bytes | None = None, timeout: float = 120) -> str:
    out = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    if check and out.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {out.returncode}: {out.stderr.decode(errors='replace')[-2000:]}")
    return out.stdout.decode(errors="replace")


def _wait(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, RuntimeError, httpx.HTTPError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _read_sysctls() -> dict[str, str]:
    out = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            out[name] = _sysctl_path(name).read_text().strip()
    return out


def _iptables_state(family: str) -> dict[str, tuple[set[str], list[str]]]:
    """table -> (chains, rules as ``-A ...`` lines) from ``iptables-save``."""
    tables: dict[str, tuple[set[str], list[str]]] = {}
    table = ""
    for line in _run(f"{family}-save", check=False).splitlines():
        if line.startswith("*"):
            table = line[1:]
            tables[table] = (set(), [])
        elif line.startswith(":") and table:
            tables[table][0].add(line[1:].split()[0])
        elif line.startswith("-A ") and table:
            tables[table][1].append(line)
    return tables


def _mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4].replace("\\040", " ") for line in f]


class RealNode:
    """One node: containerd + kubelet (+ kube-proxy when ``kube_proxy``), on ``api_url`` as the
    admin ``token``. ``image`` (a Docker engine tag) is loaded into containerd. ``log_dir`` keeps
    the components' logs; everything else lives under a temporary directory removed at exit.

    ``.name`` is the node's name, ``.host`` its IP (the bridge's address, reachable from pods),
    ``.ctr(...)`` runs ``ctr`` in the CRI namespace, ``.timings`` how long each step took.
    A context manager: ``with RealNode(...) as node:`` starts it, and cleans up at exit."""

    def __init__(
        self,
        api_url: str,
        token: str,
        log_dir: str | os.PathLike[str],
        *,
        image: str,
        docker: str,
        kube_proxy: bool = False,
        name: str | None = None,
    ) -> None:
        if os.geteuid() != 0:
            _missing("the real kubelet needs root (containerd, network namespaces, iptables)")
        self.parts = containerd_parts()
        self.bin = kubelet_bin_dir()
        for tool in ("ip", "iptables", "iptables-save", "nft", "gcc", "umount"):
            if not shutil.which(tool):
                _missing(f"{tool} not found: the real kubelet needs it")
        self.api_url, self.token, self.image, self.docker = api_url, token, image, docker
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.kube_proxy_enabled = kube_proxy
        self.id = os.urandom(3).hex()
        self.name = name or f"mtk-{self.id}"
        self.bridge = f"mtk{self.id}"
        self.subnet_octet = self._free_subnet()
        self.subnet = f"198.18.{self.subnet_octet}.0/24"
        self.host = f"198.18.{self.subnet_octet}.1"
        self.guard_chain = f"MTK-{self.id.upper()}"
        self.dir = Path(tempfile.mkdtemp(prefix="mtk-", dir="/tmp"))
        self.socket = str(self.dir / "containerd.sock")
        self.api = httpx.Client(
            base_url=api_url, verify=False, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )
        self.timings: dict[str, float] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        # What was there before: the run removes only what it added.
        self._sysctls = _read_sysctls()
        self._iptables = {family: _iptables_state(family) for family in ("iptables", "ip6tables")}
        self._netns = set(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else set()
        self._cgroups = {c: (CGROUP_ROOT / c / "kubepods").exists() for c in self._cgroup_controllers()}
        self._runtime_dirs = [d for d in RUNTIME_DIRS if not d.exists()]
        self._nft_tables = set(_run("nft", "list", "tables").splitlines())

    # -- start ---------------------------------------------------------------------------

    def start(self) -> RealNode:
        try:
            self._step("network", self._start_network)
            self._step("containerd", self._start_containerd)
            self._step("images", self._load_images)
            self._step("kubelet", self._start_kubelet)
            if self.kube_proxy_enabled:
                self._step("kube-proxy", self._start_kube_proxy)
        except BaseException:
            self.close()
            raise
        return self

    def _step(self, name: str, fn: Callable[[], None]) -> None:
        t0 = time.monotonic()
        fn()
        self.timings[name] = round(time.monotonic() - t0, 2)

    @staticmethod
    def _free_subnet() -> int:
        used = _run("ip", "-o", "-4", "addr", "show")
        free = [n for n in range(1, 255) if f"198.18.{n}." not in used]
        return random.choice(free)

    def _start_network(self) -> None:
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.host}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        # Nothing on the run's subnet answers anyone outside the machine.
        _run("iptables", "-N", self.guard_chain)
        _run("iptables", "-A", self.guard_chain, "-i", "lo", "-j", "RETURN")
        _run("iptables", "-A", self.guard_chain, "-i", self.bridge, "-j", "RETURN")
        _run("iptables", "-A", self.guard_chain, "-j", "DROP")
        _run("iptables", "-I", "INPUT", "-d", self.subnet, "-j", self.guard_chain)
        cni = self.dir / "cni"
        cni.mkdir()
        conflist = {
            "cniVersion": "0.4.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.subnet, "gateway": self.host}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.dir / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "firewall", "backend": "iptables"},
            ],
        }
        (cni / "10-memoturn.conflist").write_text(json.dumps(conflist, indent=2))

    def _start_containerd(self) -> None:
        d = self.dir
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.opt",
  "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[{cri}]
  sandbox_image = "{self.pause_image}"
  # Root here lacks CAP_SYS_RESOURCE in its bounding set: without this every sandbox fails.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "{self.parts["runc"]}"

[{cri}.cni]
  bin_dir = "{self.parts["cni"]}"
  conf_dir = "{d}/cni"
  max_conf_num = 1
"""
        (d / "containerd.toml").write_text(config)
        self._spawn("containerd", [self.parts["containerd"], "--config", str(d / "containerd.toml")])
        _wait(lambda: self._alive("containerd") and "Server" in self.ctr("version"), 60, "containerd to answer")

    @property
    def pause_image(self) -> str:
        digest = hashlib.sha1(PAUSE_SOURCE.read_bytes()).hexdigest()[:12]
        return f"memoturn.local/pause:{digest}"

    def _load_images(self) -> None:
        if subprocess.run([self.docker, "image", "inspect", self.pause_image], capture_output=True).returncode != 0:
            build = self.dir / "pause-build"
            build.mkdir()
            _run("gcc", "-static", "-O2", "-Wall", "-o", str(build / "pause"), str(PAUSE_SOURCE))
            (build / "Dockerfile").write_text(
                'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n'
            )
            env = {**os.environ, "DOCKER_BUILDKIT": "0"}
            out = subprocess.run(
                [self.docker, "build", "--network", "host", "-q", "-t", self.pause_image, str(build)],
                env=env,
                capture_output=True,
                timeout=300,
            )
            if out.returncode != 0:
                raise RuntimeError(f"docker build of the pause image failed: {out.stderr.decode()[-2000:]}")
        for image in (self.pause_image, self.image):
            save = subprocess.Popen([self.docker, "save", image], stdout=subprocess.PIPE)
            try:
                imported = subprocess.run(
                    [self.parts["ctr"], "-a", self.socket, "-n", "k8s.io", "images", "import", "-"],
                    stdin=save.stdout,
                    capture_output=True,
                    timeout=600,
                )
            finally:
                assert save.stdout is not None
                save.stdout.close()
                save.wait()
            if save.returncode != 0 or imported.returncode != 0:
                raise RuntimeError(f"loading {image} into containerd failed: {imported.stderr.decode()[-2000:]}")

    def _kubeconfig(self) -> str:
        path = self.dir / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "e2e", "cluster": {"server": self.api_url, "insecure-skip-tls-verify": True}}
                    ],
                    "users": [{"name": "admin", "user": {"token": self.token}}],
                    "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
                    "current-context": "e2e",
                }
            )
        )
        path.chmod(0o600)
        return str(path)

    def _start_kubelet(self) -> None:
        d = self.dir
        self.kubelet_port, self.kubelet_healthz_port = free_port(), free_port()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,  # this host has cgroup v1
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": self.host,
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.kubelet_healthz_port,
            "podLogsDir": str(d / "pod-logs"),
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True}},
            "authorization": {"mode": "Webhook"},
            "serializeImagePulls": False,
            "resolvConf": "/etc/resolv.conf",
            # A busy CI machine must not evict the test's pods or collect its images.
            "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "shutdownGracePeriod": "0s",
        }
        (d / "kubelet.yaml").write_text(json.dumps(config, indent=2))
        self._spawn(
            "kubelet",
            [
                f"{self.bin}/kubelet",
                f"--config={d / 'kubelet.yaml'}",
                f"--kubeconfig={self._kubeconfig()}",
                f"--root-dir={d / 'kubelet'}",
                f"--cert-dir={d / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.host}",
                "--v=1",
            ],
        )
        _wait(self._node_ready, 120, f"node {self.name} to be Ready")
        # Without the node-lifecycle controller nothing removes the taint the kubelet registers with.
        node = self.api.get(f"/api/v1/nodes/{self.name}").json()
        taints = [t for t in node["spec"].get("taints") or [] if not t["key"].startswith("node.kubernetes.io/")]
        r = self.api.patch(
            f"/api/v1/nodes/{self.name}",
            json=[{"op": "replace", "path": "/spec/taints", "value": taints}]
            if "taints" in node["spec"]
            else [{"op": "add", "path": "/spec/taints", "value": []}],
            headers={"Content-Type": "application/json-patch+json"},
        )
        r.raise_for_status()

    def _node_ready(self) -> bool:
        if not self._alive("kubelet"):
            raise RuntimeError(f"kubelet exited: {self.log_tail('kubelet')}")
        r = self.api.get(f"/api/v1/nodes/{self.name}")
        if r.status_code != 200:
            return False
        conditions = r.json().get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _start_kube_proxy(self) -> None:
        self.kube_proxy_metrics_port, self.kube_proxy_healthz_port = free_port(), free_port()
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": self._kubeconfig()},
            "mode": "iptables",
            "hostnameOverride": self.name,
            "bindAddress": self.host,
            "healthzBindAddress": f"127.0.0.1:{self.kube_proxy_healthz_port}",
            "metricsBindAddress": f"127.0.0.1:{self.kube_proxy_metrics_port}",
            "clusterCIDR": self.subnet,
            # Leave the host's conntrack and localhost settings as they are.
            "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
            "nodePortAddresses": [f"{self.host}/32"],
        }
        (self.dir / "kube-proxy.yaml").write_text(json.dumps(config, indent=2))
        self._spawn("kube-proxy", [f"{self.bin}/kube-proxy", f"--config={self.dir / 'kube-proxy.yaml'}", "--v=1"])

        def healthy() -> bool:
            if not self._alive("kube-proxy"):
                raise RuntimeError(f"kube-proxy exited: {self.log_tail('kube-proxy')}")
            return httpx.get(f"http://127.0.0.1:{self.kube_proxy_healthz_port}/healthz", timeout=2).status_code == 200

        _wait(healthy, 60, "kube-proxy to report healthy")

    # -- use -----------------------------------------------------------------------------

    def ctr(self, *args: str, check: bool = True) -> str:
        """``ctr`` against the run's containerd, in the CRI's namespace (``k8s.io``)."""
        return _run(self.parts["ctr"], "-a", self.socket, "-n", "k8s.io", *args, check=check, timeout=60)

    def tasks(self) -> dict[str, tuple[int, str]]:
        """Running containers as containerd sees them: container id -> (host pid, status)."""
        out = {}
        for line in self.ctr("tasks", "ls").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3:
                out[fields[0]] = (int(fields[1]), fields[2])
        return out

    def log_tail(self, name: str, chars: int = 3000) -> str:
        with contextlib.suppress(OSError), open(self.log_dir / f"{name}.log", errors="replace") as f:
            return f.read()[-chars:]
        return ""

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self._procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _alive(self, name: str) -> bool:
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    # -- stop and clean up -----------------------------------------------------------------

    def close(self) -> None:
        """Everything the run started or added, gone; each step runs even if an earlier one failed."""
        steps: list[Callable[[], None]] = [
            self._drain,
            lambda: self._stop("kube-proxy"),
            self._kube_proxy_cleanup,
            lambda: self._stop("kubelet"),
            self._delete_node,
            lambda: self._stop("containerd"),
            self._kill_shims,
            self._unmount,
            self._remove_cgroups,
            self._remove_network,
            self._remove_runtime_dirs,
            self._restore_sysctls,
        ]
        errors = []
        for step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - clean up the rest, then report
                errors.append(f"{getattr(step, '__name__', 'step')}: {exc}")
        self.api.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise RuntimeError("cleaning up the real node: " + "; ".join(errors))

    def _drain(self) -> None:
        """Cordon, delete every pod on the node, and wait until containerd runs nothing: the
        kubelet stops each sandbox, which tears its network (CNI DEL) down."""
        if not self._alive("kubelet") or not self._alive("containerd"):
            return
        self.api.patch(
            f"/api/v1/nodes/{self.name}",
            json={"spec": {"unschedulable": True}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        pods = self.api.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={self.name}"}).json()["items"]
        for pod in pods:
            meta = pod["metadata"]
            self.api.delete(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", params={"gracePeriodSeconds": "2"}
            )
        with contextlib.suppress(TimeoutError):
            _wait(
                lambda: (
                    not self.api.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={self.name}"}).json()[
                        "items"
                    ]
                ),
                90,
                "the node's pods to go",
            )
        with contextlib.suppress(TimeoutError):
            _wait(lambda: not self.tasks(), 60, "containerd to run no task", interval=0.5)

    def _stop(self, name: str) -> None:
        terminate(self._procs.pop(name, None), timeout=20)

    def _kube_proxy_cleanup(self) -> None:
        if self.kube_proxy_enabled:
            _run(f"{self.bin}/kube-proxy", "--cleanup", check=False, timeout=60)

    def _delete_node(self) -> None:
        self.api.delete(f"/api/v1/nodes/{self.name}")

    def _kill_shims(self) -> None:
        """The shims this run's containerd started (their command line names its socket), and
        anything still in the run's cgroups, killed by pid."""
        killed = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"containerd-shim" in cmdline[0] and self.socket.encode() in cmdline:
                    os.kill(int(pid), 9)
                    killed.append(pid)
        with contextlib.suppress(TimeoutError):
            _wait(lambda: not any(Path(f"/proc/{pid}").exists() for pid in killed), 10, "the shims to exit")

    def _unmount(self) -> None:
        """Mounts under the run's directory, and the pod network namespaces it created."""
        new_netns = {str(NETNS_DIR / n) for n in (set(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else set())} - {
            str(NETNS_DIR / n) for n in self._netns
        }
        prefix = str(self.dir) + "/"
        for _ in range(3):
            targets = [m for m in _mounts() if m.startswith(prefix) or m in new_netns]
            if not targets:
                break
            for target in sorted(targets, key=len, reverse=True):
                if subprocess.run(["umount", target], capture_output=True).returncode != 0:
                    subprocess.run(["umount", "-l", target], capture_output=True)
        for path in new_netns:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _remove_runtime_dirs(self) -> None:
        """The runtime's directories the run created, if nothing but empty directories is left in them."""
        for top in self._runtime_dirs:
            if not top.is_dir():
                continue
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)

    @staticmethod
    def _cgroup_controllers() -> list[str]:
        return sorted(p.name for p in CGROUP_ROOT.iterdir() if p.is_dir()) if CGROUP_ROOT.is_dir() else []

    def _remove_cgroups(self) -> None:
        """The kubelet's ``kubepods`` hierarchy (in each controller where the run created it), leaves first."""
        for controller, existed in self._cgroups.items():
            top = CGROUP_ROOT / controller / "kubepods"
            if existed or not top.is_dir():
                continue
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)

    def _remove_network(self) -> None:
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        for family, before in self._iptables.items():
            self._restore_iptables(family, before)
        self._remove_empty_tables()

    def _remove_empty_tables(self) -> None:
        """The nftables tables the run's iptables calls created (iptables-nft makes ``ip filter``,
        ``ip6 nat``, ... on first use), once they hold no rule and no chain of their own."""
        for line in set(_run("nft", "list", "tables").splitlines()) - self._nft_tables:
            _, family, name = line.split()
            listing = _run("nft", "list", "table", family, name, check=False)
            chains = [x for x in listing.splitlines() if x.strip().startswith("chain ")]
            builtin = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}
            rules = [
                x
                for x in listing.splitlines()
                if x.strip() and not x.strip().startswith(("table ", "chain ", "type ", "}"))
            ]
            if not rules and all(c.split()[1] in builtin for c in chains):
                subprocess.run(["nft", "delete", "table", family, name], capture_output=True)

    def _restore_iptables(self, family: str, before: dict[str, tuple[set[str], list[str]]]) -> None:
        """Rules and chains the run added: rules in new chains, or naming its bridge, subnet or
        a new chain; then the new chains (KUBE-*, CNI-*, the guard chain)."""
        after = _iptables_state(family)
        ours = f"198.18.{self.subnet_octet}."
        for table, (chains, rules) in after.items():
            old_chains, old_rules = before.get(table, (set(), []))
            new_chains = {c for c in chains - old_chains if c.startswith(("KUBE-", "CNI-", "MTK-"))}
            for rule in rules:
                if rule in old_rules:
                    continue
                words = shlex.split(rule)
                chain = words[1]
                mine = (
                    chain in new_chains
                    or any(w in new_chains for w in words)
                    or self.bridge in words
                    or any(w.startswith(ours) for w in words)
                )
                if mine and chain not in new_chains:
                    subprocess.run([family, "-t", table, "-D", *words[1:]], capture_output=True)
            for chain in new_chains:
                subprocess.run([family, "-t", table, "-F", chain], capture_output=True)
            for chain in new_chains:
                subprocess.run([family, "-t", table, "-X", chain], capture_output=True)

    def _restore_sysctls(self) -> None:
        for name, value in self._sysctls.items():
            with contextlib.suppress(OSError):
                path = _sysctl_path(name)
                if path.read_text().strip() != value:
                    path.write_text(value)

    def __enter__(self) -> RealNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def node_runtime(control: Any, node_name: str, log_dir: str | os.PathLike[str]) -> RealNode:
    """A started node named ``node_name`` on ``control`` (a ControlPlane), with kube-proxy, loading
    ``$MEMOTURN_IMAGE`` from ``$MEMOTURN_DOCKER_BIN``'s engine: what ``support.testcluster`` calls
    for ``MEMOTURN_E2E_KUBELET=real``. Servers its pods use must listen on ``.host``."""
    image = os.environ.get("MEMOTURN_IMAGE", "")
    if not image:
        _missing("MEMOTURN_IMAGE is not set: MEMOTURN_IMAGE=$(bash .ci/build-image)")
    docker = os.environ.get("MEMOTURN_DOCKER_BIN") or shutil.which("docker") or "docker"
    return RealNode(
        control.url, control.token, log_dir, image=image, docker=docker, kube_proxy=True, name=node_name
    ).start()
