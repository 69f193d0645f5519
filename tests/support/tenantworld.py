"""What the platform-team and day-2 scenarios share: a cluster (:mod:`support.testcluster`), the
operator as a local process with the chart's ServiceAccount token, and one tenant's view from
outside (its object, pods, token, gateway and an SDK client)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from memoturn.client import Memoturn

from support.apply import Discovery
from support.operator import Operator, service_account_kubeconfig
from support.testcluster import TestCluster

GROUP_PATH = "/apis/memoturn.io/v1alpha1"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


class TenantWorld:
    """Everything a scenario module shares; ``client_timeout``/``client_retries`` shape :meth:`client`."""

    client_timeout: float = 10
    client_retries: int = 0

    def __init__(
        self, cluster: TestCluster, tmp: Path, *, namespace: str, system_namespace: str, tenant: str, prefix: str
    ) -> None:
        self.cluster, self.tmp = cluster, tmp
        self.ns, self.system_ns, self.tenant_name = namespace, system_namespace, tenant
        self.api = cluster.api
        self.discovery = Discovery(self.api)
        self.kube = cluster.kube()
        self.kubeconfig = cluster.kubeconfig
        self.store = cluster.store
        self.etcd_endpoints = cluster.etcd_endpoints
        self.operator: Operator | None = None
        self.prefix = f"{prefix}-{os.urandom(3).hex()}"

    @property
    def agent(self) -> Any:
        """The suite's own node agent (pods as local processes), or None on another runtime."""
        return self.cluster.agent

    def close(self) -> None:
        if self.operator:
            self.operator.stop()
        self.cluster.close()

    # -- the operator -----------------------------------------------------------------------------

    def run_operator(
        self, account: str, *, args: list[str] | None = None, env: dict[str, str] | None = None, log: str
    ) -> Operator:
        """An operator replica as a local process with ``account``'s token: exactly the chart's RBAC."""
        kubeconfig = service_account_kubeconfig(
            self.api, self.cluster.url, self.system_ns, account, str(self.tmp / "operator.kubeconfig")
        )
        return Operator(kubeconfig, str(self.tmp / log), args=args, env=env).start()

    # -- one tenant, from outside -------------------------------------------------------------------

    def tenant(self, name: str | None = None) -> dict[str, Any]:
        r = self.api.get(f"{GROUP_PATH}/namespaces/{self.ns}/memorytenants/{name or self.tenant_name}")
        r.raise_for_status()
        return r.json()

    def pods(self, component: str) -> list[dict[str, Any]]:
        sel = f"app.kubernetes.io/instance={self.tenant_name},app.kubernetes.io/component={component}"
        return self.api.get(f"/api/v1/namespaces/{self.ns}/pods", params={"labelSelector": sel}).json()["items"]

    def gateway_url(self) -> str:
        """A ready endpoint of the gateway Service.

        On the real kubelet, from the Service's EndpointSlices (what the EndpointSlice controller
        made of the pods' real addresses and the kubelet's probes). Elsewhere, a ready pod its
        selector picks: the API server refuses loopback addresses in EndpointSlices, and every pod
        of the node agent has one (the operator finds the data plane the same way)."""
        service = f"{self.tenant_name}-memoturn-gateway"
        endpoints = (
            self.sliced_endpoints(service)
            if self.cluster.real_node is not None
            else self.kube.ready_endpoints(self.ns, service)
        )
        if not endpoints:
            raise KeyError("no ready gateway endpoint")
        address, port = self.cluster.reachable(*endpoints[0])
        return f"http://{address}:{port}"

    def sliced_endpoints(self, service: str) -> list[tuple[str, int]]:
        """(address, port) of the ready endpoints in ``service``'s EndpointSlices, sorted."""
        slices = self.api.get(
            f"/apis/discovery.k8s.io/v1/namespaces/{self.ns}/endpointslices",
            params={"labelSelector": f"kubernetes.io/service-name={service}"},
        )
        slices.raise_for_status()
        out = []
        for piece in slices.json()["items"]:
            ports = [p["port"] for p in piece.get("ports") or [] if p.get("port")]
            for endpoint in piece.get("endpoints") or []:
                if ports and (endpoint.get("conditions") or {}).get("ready"):
                    out += [(address, ports[0]) for address in endpoint["addresses"]]
        return sorted(out)

    def token(self) -> str:
        secret = self.api.get(f"/api/v1/namespaces/{self.ns}/secrets/{self.tenant_name}-memoturn-token").json()
        return base64.b64decode(secret["data"]["admin-token"]).decode()

    def client(self) -> Memoturn:
        return Memoturn(
            self.gateway_url(), token=self.token(), timeout=self.client_timeout, retries=self.client_retries
        )

    def s3_secret(self, name: str, credentials: dict[str, str] | None = None) -> dict[str, Any]:
        """A Secret with the store's key (or ``credentials``) in the tenant namespace."""
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.ns},
            "stringData": credentials or self.store.credentials,
        }
