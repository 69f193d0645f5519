"""The operator as a local process, authenticated as the chart's ServiceAccount.

The token comes from the TokenRequest API, so the operator has exactly the permissions the
chart's RBAC grants it: a missing rule fails the e2e suite as it would fail a cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from support.nodes import free_port
from support.processes import terminate


def service_account_kubeconfig(api: httpx.Client, url: str, namespace: str, account: str, path: str) -> str:
    r = api.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 7200}},
    )
    r.raise_for_status()
    token = r.json()["status"]["token"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "e2e",
        "clusters": [{"name": "e2e", "cluster": {"server": url, "insecure-skip-tls-verify": True}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": account}}],
    }
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    return path


class Operator:
    """``memoturn-operator`` (kopf) in a subprocess, with its Prometheus metrics on loopback."""

    def __init__(
        self, kubeconfig: str, log_path: str, *, args: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.kubeconfig, self.log_path = kubeconfig, log_path
        self.args = args if args is not None else ["--all-namespaces", "--peering", "memoturn"]
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0

    def start(self) -> Operator:
        self.metrics_port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "MEMOTURN_OPERATOR_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            **self.env,
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "memoturn_operator", *self.args], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 180  # generous: a loaded machine imports kopf and the kubernetes client slowly
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited: {self.log()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError("operator did not start")

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def metrics(self) -> dict[str, float]:
        """Samples by ``name{label=value,...}`` (counters summed over nothing, exactly as exposed)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    def total(self, name: str, **labels: Any) -> float:
        """Sum of the counter ``name`` (``_total`` implied) over samples carrying ``labels``."""
        want = {f"{k}={v}" for k, v in labels.items()}
        total = 0.0
        for key, value in self.metrics().items():
            base, _, rest = key.partition("{")
            if base in (name, f"{name}_total") and want <= set(rest.rstrip("}").split(",")) - {""}:
                total += value
        return total

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None
