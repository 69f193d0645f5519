"""A single-node Kubernetes control plane on loopback: kube-apiserver, kube-controller-manager and
kube-scheduler, built from upstream source (``.ci/install-kube``), on a test etcd.

It has no kubelet; ``support.kubelet.NodeAgent`` registers a node and runs its pods as local
processes. The node lifecycle controllers are left out, so a node never turns NotReady or gets
its pods evicted because a test paused the agent. Missing binaries fail under ``$CI`` and skip
otherwise (``kube_bin_dir``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from support.kube import KubeAPIServer, kube_bin_dir
from support.nodes import free_port

# Everything a workload (Deployments, StatefulSets, Jobs, Services, PDBs, RBAC, owner references)
# needs, named as v1.36's ``kube-controller-manager --help`` lists them. Left out on purpose:
# node-lifecycle/taint-eviction (no node ever goes NotReady here), node-ipam/route/service-lb and
# cloud-* (no cloud, no pod network), persistent volumes, certificates and bootstrap tokens.
DEFAULT_CONTROLLERS: tuple[str, ...] = (
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "replicationcontroller-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "disruption-controller",
    "horizontal-pod-autoscaler-controller",
    "resourcequota-controller",
    "pod-garbage-collector-controller",
    "service-cidr-controller",
)


class ControlPlane:
    """Starts the three components, each logging to ``log_dir``, and waits until each is healthy.

    ``.api`` is an httpx client with the admin token; ``.kubeconfig`` a kubeconfig file for the
    same identity (for child processes such as the operator)."""

    def __init__(
        self,
        etcd_endpoint: str,
        log_dir: str | os.PathLike[str],
        *,
        controllers: Sequence[str] = DEFAULT_CONTROLLERS,
        timeout: float = 120.0,
        audit_groups: Sequence[str] = (),
    ) -> None:
        self.bin = kube_bin_dir()
        self.log_dir = os.fspath(log_dir)
        os.makedirs(self.log_dir, exist_ok=True)
        self._procs: list[tuple[str, subprocess.Popen[bytes], str]] = []
        self.audit_log = os.path.join(self.log_dir, "audit.log") if audit_groups else None
        extra = ["--endpoint-reconciler-type=none", *self._audit_args(audit_groups)]
        # The "kubernetes" Service's endpoint would be the loopback advertise address, which
        # kube-apiserver refuses in Endpoints; nothing here needs it, so it is not maintained.
        self.apiserver = KubeAPIServer(etcd_endpoint, log_dir=self.log_dir, extra_args=extra)
        try:
            self.url: str = self.apiserver.url
            self.token: str = self.apiserver.token
            self.api: httpx.Client = self.apiserver.client
            self.kubeconfig: str = self.apiserver.write_kubeconfig(os.path.join(self.apiserver.dir, "kubeconfig"))
            self.controller_manager_port = free_port()
            self._start(
                "kube-controller-manager",
                [
                    f"--kubeconfig={self.kubeconfig}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={self.controller_manager_port}",
                    f"--cert-dir={os.path.join(self.apiserver.dir, 'kcm-certs')}",
                    f"--service-account-private-key-file={self.apiserver.sa_key_path}",
                    f"--root-ca-file={self.apiserver.serving_cert_path}",
                    "--use-service-account-credentials=false",
                    "--leader-elect=false",
                    f"--controllers={','.join(controllers)}",
                    "--concurrent-gc-syncs=5",
                    "--v=1",
                ],
                self.controller_manager_port,
            )
            self.scheduler_port = free_port()
            self._start(
                "kube-scheduler",
                [
                    f"--kubeconfig={self.kubeconfig}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={self.scheduler_port}",
                    f"--cert-dir={os.path.join(self.apiserver.dir, 'scheduler-certs')}",
                    "--leader-elect=false",
                    "--v=1",
                ],
                self.scheduler_port,
            )
            deadline = time.monotonic() + timeout
            for name, _proc, health in self._procs:
                self._wait_healthy(name, health, deadline)
            # The serviceaccount controller creating "default" proves the controllers' informers synced.
            self._wait(
                lambda: self.api.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200,
                deadline,
                "the serviceaccount controller to create default/default",
            )
        except BaseException:
            self.close()
            raise

    def _audit_args(self, groups: Sequence[str]) -> list[str]:
        """kube-apiserver's audit log of every request by members of ``groups`` (one JSON line
        per completed request, metadata only): how the tests count a client's API calls."""
        if not groups:
            return []
        policy = os.path.join(self.log_dir, "audit-policy.yaml")
        with open(policy, "w") as f:
            json.dump(
                {
                    "apiVersion": "audit.k8s.io/v1",
                    "kind": "Policy",
                    "omitStages": ["RequestReceived", "ResponseStarted"],
                    "rules": [{"level": "Metadata", "userGroups": list(groups)}, {"level": "None"}],
                },
                f,
            )
        return [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}", "--audit-log-format=json"]

    def audit_events(self) -> list[dict[str, Any]]:
        """The audit log so far (empty without ``audit_groups``)."""
        if not self.audit_log or not os.path.exists(self.audit_log):
            return []
        with open(self.audit_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def _start(self, name: str, args: list[str], port: int) -> None:
        with open(os.path.join(self.log_dir, f"{name}.log"), "w") as log:
            proc = subprocess.Popen([os.path.join(self.bin, name), *args], stdout=log, stderr=subprocess.STDOUT)
        self._procs.append((name, proc, f"https://127.0.0.1:{port}/healthz"))

    def _wait_healthy(self, name: str, url: str, deadline: float) -> None:
        proc = next(p for n, p, _ in self._procs if n == name)

        def healthy() -> bool:
            if proc.poll() is not None:
                with open(os.path.join(self.log_dir, f"{name}.log")) as f:
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {f.read()[-3000:]}")
            try:
                return httpx.get(url, verify=False, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        self._wait(healthy, deadline, f"{name} to report healthy at {url}")

    @staticmethod
    def _wait(check: Callable[[], bool], deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise TimeoutError(f"timed out waiting for {what}")

    def kube(self) -> Any:
        """The operator's own API access (:class:`memoturn_operator.kube.Kube`) as the admin.

        Tests read a Service's endpoints through it (``ready_endpoints``), the way the operator
        does: kube-apiserver refuses loopback addresses in EndpointSlices, and every pod the
        node agent runs has one."""
        from kubernetes import client, config
        from memoturn_operator.kube import Kube, _bearer_token_fixed

        configuration = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration)
        return Kube(client.ApiClient(_bearer_token_fixed(configuration)))

    def close(self) -> None:
        """Stops the scheduler and controller manager, then the API server (which removes its dir)."""
        for _name, proc, _ in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
        for _name, proc, _ in self._procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()
        if getattr(self, "apiserver", None) is not None:
            self.apiserver.close()

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
