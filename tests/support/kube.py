"""A real kube-apiserver on loopback (built from upstream source by ``.ci/install-kube``), on etcd.

Authentication is a static admin token; authorization is RBAC. Missing binaries are a
failure under CI (``$CI`` set) and a skip otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence

import httpx

from support.nodes import free_port

KUBE_VERSION = "v1.36.3"
DEFAULT_BIN = os.path.expanduser(f"~/.cache/memoturn/kube-{KUBE_VERSION}-r2/bin")  # keep in sync with .ci/install-kube


def kube_bin_dir() -> str:
    path = os.environ.get("MEMOTURN_KUBE_BIN") or DEFAULT_BIN
    if os.access(os.path.join(path, "kube-apiserver"), os.X_OK):
        return path
    reason = f"kube-apiserver not found in {path}: run .ci/install-kube (or set MEMOTURN_KUBE_BIN)"
    if os.environ.get("CI"):
        raise RuntimeError(reason)
    import pytest

    pytest.skip(reason)


class KubeAPIServer:
    """``log_dir`` keeps the server's log outside its temporary directory (which ``close()`` removes);
    ``extra_args`` are appended to the command line, so a later flag overrides a default one."""

    token = "memoturn-e2e-admin"

    def __init__(
        self, etcd_endpoint: str, *, log_dir: str | os.PathLike[str] | None = None, extra_args: Sequence[str] = ()
    ) -> None:
        self.bin = kube_bin_dir()
        self.dir = tempfile.mkdtemp(prefix="memoturn-kube-")
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        key, pub = os.path.join(self.dir, "sa.key"), os.path.join(self.dir, "sa.pub")
        subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", key, "-pubout", "-out", pub], check=True, capture_output=True)
        self.sa_key_path = key
        self.cert_dir = os.path.join(self.dir, "certs")
        with open(os.path.join(self.dir, "tokens.csv"), "w") as f:
            f.write(f"{self.token},admin,admin,system:masters\n")
        self.log_path = os.path.join(os.fspath(log_dir) if log_dir else self.dir, "kube-apiserver.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [
                    os.path.join(self.bin, "kube-apiserver"),
                    f"--etcd-servers=http://{etcd_endpoint}",
                    f"--etcd-prefix=/registry-{self.port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={self.port}",
                    f"--cert-dir={self.cert_dir}",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-account-key-file={pub}",
                    f"--service-account-signing-key-file={key}",
                    f"--token-auth-file={self.dir}/tokens.csv",
                    "--authorization-mode=Node,RBAC",
                    "--service-cluster-ip-range=10.96.0.0/24",
                    *extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(
            base_url=self.url, verify=False, timeout=30, headers={"Authorization": f"Bearer {self.token}"}
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kube-apiserver exited: {open(self.log_path).read()[-3000:]}")
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise TimeoutError("kube-apiserver not ready")

    @property
    def serving_cert_path(self) -> str:
        """The self-signed serving certificate (with its CA) the server generated in its cert dir."""
        return os.path.join(self.cert_dir, "apiserver.crt")

    def write_kubeconfig(self, path: str | os.PathLike[str]) -> str:
        """A kubeconfig for the admin token (TLS unverified: the serving cert is self-signed)."""
        text = (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: memoturn-e2e\n  cluster:\n    server: {self.url}\n    insecure-skip-tls-verify: true\n"
            f"users:\n- name: admin\n  user:\n    token: {self.token}\n"
            "contexts:\n- name: memoturn-e2e\n  context:\n    cluster: memoturn-e2e\n    user: admin\n"
            "current-context: memoturn-e2e\n"
        )
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return os.fspath(path)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.client.close()
        shutil.rmtree(self.dir, ignore_errors=True)
