"""A local Kubernetes cluster for people (``make cluster``/``make cluster-down``): the e2e suite's
control plane, node runtime, etcd and MinIO, plus the chart and the operator, as one long-lived
background process.

    PYTHONPATH=tests python -m support.localcluster up [--dir DIR] [--bare] [--kubelet agent]
    PYTHONPATH=tests python -m support.localcluster down [--dir DIR]

``up`` starts ``serve`` in a session of its own and returns once the cluster is ready, printing
the ``KUBECONFIG`` to export and commands to try; ``DIR`` (default ``~/.cache/memoturn/cluster``)
holds the pid, every log, the kubeconfig, ``e2e.env`` (the variables that point the e2e suite at
this cluster) and ``memorytenant.yaml`` (``docs/examples/memorytenant.yaml`` with this cluster's
etcd and MinIO). ``--bare`` leaves the chart and operator out: the e2e suite installs its own.
Every server binds 127.0.0.0/8; pods are processes on 127.0.30.x (``--ip-prefix``).

``down`` stops ``serve`` (SIGTERM: it stops the operator, the node runtime and its pods, the
control plane, MinIO and etcd), then kills any process still carrying this cluster's marker
variable (``MEMOTURN_LOCAL_CLUSTER=DIR``: ``serve`` and everything it started inherit it, and the
node agent passes it to every pod) and removes ``DIR``. Without ``kubectl`` (it is not built
here) ``apply``, ``gateway`` and ``delete-pod`` do what the printed kubectl commands do.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

DEFAULT_DIR = Path(os.path.expanduser("~/.cache/memoturn/cluster"))
MARKER = "MEMOTURN_LOCAL_CLUSTER"
STAMP = ".memoturn-local-cluster"  # what makes a directory one that up made (and down may remove)
RELEASE, SYSTEM_NS, TENANT_NS = "memoturn", "memoturn-system", "agents"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "memorytenant.yaml"
BIN = os.path.dirname(sys.executable)


class Failed(Exception):
    """A one-line reason for a non-zero exit."""


# -- serve: the cluster itself ------------------------------------------------------------------


def serve(state: Path, *, bare: bool, kubelet: str, ip_prefix: str) -> None:
    """Starts everything, writes ``ready``, and tears it all down on SIGTERM/SIGINT."""
    from support.controlplane import ControlPlane
    from support.etcd import EtcdServer
    from support.minio import MinioServer
    from support.testcluster import kubelet_kind, start_runtime, start_servers_on, stop_all

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    started = time.monotonic()
    teardown: list[Any] = []
    try:
        etcd = EtcdServer().start()
        teardown.append(etcd.close)
        minio = MinioServer(bucket="memoturn").start()
        teardown.append(minio.close)
        control = ControlPlane(etcd.endpoint, state / "logs" / "control-plane")
        teardown.append(control.close)
        agent_env = {MARKER: str(state), "PATH": f"{BIN}:{os.environ.get('PATH', os.defpath)}"}
        pool = [f"{ip_prefix}.{i}" for i in range(1, 255)]
        runtime = start_runtime(kubelet_kind(kubelet), control, "local-1", state / "logs" / "pods", agent_env, pool)
        teardown.append(runtime.close)
        host, image = getattr(runtime, "host", "127.0.0.1"), None
        if not host.startswith("127."):
            # Real pods cannot reach loopback: the tenants' etcd and MinIO listen on the node's
            # bridge address (the control plane keeps its etcd), and they run the image it loaded.
            servers: list[Any] = []
            teardown.append(lambda: stop_all(servers))
            etcd, minio = start_servers_on(host, servers)
            image = getattr(runtime, "image", None)
        shutil.copy(control.kubeconfig, state / "kubeconfig")
        creds = minio.credentials
        write_env(
            state / "e2e.env",
            {
                "MEMOTURN_E2E_KUBECONFIG": str(state / "kubeconfig"),
                "MEMOTURN_E2E_ETCD_ENDPOINTS": etcd.endpoint,
                "MEMOTURN_E2E_S3_ENDPOINT": minio.endpoint,
                "MEMOTURN_E2E_S3_BUCKET": minio.bucket,
                "MEMOTURN_E2E_S3_ACCESS_KEY_ID": creds["AWS_ACCESS_KEY_ID"],
                "MEMOTURN_E2E_S3_SECRET_ACCESS_KEY": creds["AWS_SECRET_ACCESS_KEY"],
            },
        )
        example_manifest(state / "memorytenant.yaml", etcd.endpoint, minio.endpoint, minio.bucket, creds, image)
        if not bare:
            teardown.append(install_chart(control, state))
        (state / "ready").write_text(json.dumps({"seconds": round(time.monotonic() - started, 1), "url": control.url}))
        print(f"localcluster: ready in {time.monotonic() - started:.1f} s", flush=True)
        stop.wait()
    finally:
        print("localcluster: stopping", flush=True)
        for close in reversed(teardown):
            try:
                close()
            except Exception as exc:  # keep stopping the rest
                print(f"localcluster: {close}: {exc}", flush=True)
        (state / "ready").unlink(missing_ok=True)
        print("localcluster: stopped", flush=True)


def install_chart(control: Any, state: Path) -> Any:
    """The chart by ``helm install`` (operator Deployment at 0 replicas) and the operator as a local
    process with the chart's ServiceAccount token, as the e2e suite runs them; returns its stop."""
    from support.helm import CHART, helm
    from support.operator import Operator, service_account_kubeconfig
    from support.tenantworld import RESTRICTED

    for name in (SYSTEM_NS, TENANT_NS):
        r = control.api.post("/api/v1/namespaces", json={"metadata": {"name": name, "labels": RESTRICTED}})
        if r.status_code != 201:
            raise Failed(f"cannot create namespace {name}: {r.status_code} {r.text[:200]}")
    out = helm(
        "install", RELEASE, str(CHART), "-n", SYSTEM_NS, "--set", "operator.replicas=0", kubeconfig=control.kubeconfig
    )
    if out.returncode != 0:
        raise Failed(f"helm install failed: {out.stderr.strip()}")
    kubeconfig = service_account_kubeconfig(
        control.api, control.url, SYSTEM_NS, RELEASE, str(state / "operator.kubeconfig")
    )
    operator = Operator(kubeconfig, str(state / "logs" / "operator.log")).start()
    return operator.stop


def write_env(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"export {k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)


def example_manifest(
    path: Path, etcd: str, s3: str, bucket: str, creds: dict[str, str], image: str | None = None
) -> None:
    """``docs/examples/memorytenant.yaml`` with this cluster's etcd, MinIO and key filled in (and
    ``image``, the one a real node loaded)."""
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["stringData"] = {k: creds[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        else:
            doc["spec"]["objectStore"].update(bucket=bucket, endpoint=s3)
            doc["spec"]["etcd"]["endpoints"] = [etcd]
            if image:
                doc["spec"]["image"] = image
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


# -- up and down ----------------------------------------------------------------------------------


def pid_of(state: Path) -> int | None:
    try:
        pid = int((state / "serve.pid").read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def up(state: Path, *, bare: bool, kubelet: str, ip_prefix: str, timeout: float = 600) -> float:
    """Starts ``serve`` in the background; the seconds until it was ready."""
    if pid_of(state) is not None:
        raise Failed(f"a local cluster already runs from {state} (make cluster-down first)")
    if state.exists():
        if not owned(state):
            raise Failed(f"{state} exists and is not a local cluster's state directory: choose another --dir")
        shutil.rmtree(state)
    (state / "tmp").mkdir(parents=True)
    (state / STAMP).touch()
    (state / "logs").mkdir()
    env = {
        **os.environ,
        MARKER: str(state),
        "TMPDIR": str(state / "tmp"),  # every server's scratch directory lives here, so down removes it
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    args = [sys.executable, "-m", "support.localcluster", "serve", "--dir", str(state)]
    args += ["--kubelet", kubelet, "--ip-prefix", ip_prefix, *(["--bare"] if bare else [])]
    t0 = time.monotonic()
    with open(state / "logs" / "localcluster.log", "ab") as log:
        proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    (state / "serve.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while not (state / "ready").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = (state / "logs" / "localcluster.log").read_text(errors="replace").strip().splitlines()[-15:]
            down(state)
            raise Failed("the local cluster did not start:\n  " + "\n  ".join(tail))
        time.sleep(0.5)
    return time.monotonic() - t0


def owned(state: Path) -> bool:
    """Whether ``state`` is ours to remove: made by :func:`up` (it carries the stamp), or empty."""
    return (state / STAMP).exists() or not any(state.iterdir())


def marked_processes(state: Path) -> list[int]:
    """Processes started for the cluster at ``state``: their environment carries the marker."""
    needle = f"{MARKER}={state}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read() + b"\0":
                    found.append(int(entry))
        except OSError:
            continue
    return found


def down(state: Path, timeout: float = 120) -> list[int]:
    """Stops the cluster and removes ``state``; the pids that had to be killed after it stopped."""
    pid = pid_of(state)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_of(state) is not None:
            time.sleep(0.3)
    leftovers = marked_processes(state)
    for p in leftovers:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while marked_processes(state) and time.monotonic() < deadline:
        time.sleep(0.2)
    if owned(state):
        shutil.rmtree(state, ignore_errors=True)
    return leftovers


# -- what kubectl would do (kubectl is not built here) ---------------------------------------------


def api(state: Path) -> Any:
    from support.testcluster import api_client

    if not (state / "kubeconfig").exists():
        raise Failed(f"no local cluster at {state} (make cluster first)")
    return api_client(str(state / "kubeconfig"))[1]


def apply_file(state: Path, path: Path) -> list[str]:
    """``kubectl apply --server-side -f path``."""
    from support.apply import Discovery, apply

    client = api(state)
    discovery = Discovery(client)
    done = []
    for doc in (d for d in yaml.safe_load_all(path.read_text()) if d):
        r = apply(client, discovery, doc, manager="localcluster")
        if r.status_code not in (200, 201):
            raise Failed(f"{doc['kind']} {doc['metadata']['name']}: {r.status_code} {r.json().get('message', r.text)}")
        done.append(
            f"{doc['kind'].lower()}/{doc['metadata']['name']} {'created' if r.status_code == 201 else 'applied'}"
        )
    return done


def gateway(state: Path, tenant: str, namespace: str) -> str:
    """``export MEMOTURN_URL=... MEMOTURN_TOKEN=...`` for the tenant's gateway (a ready pod's address)."""
    client = api(state)
    sel = f"app.kubernetes.io/instance={tenant},app.kubernetes.io/component=gateway"
    pods = client.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": sel}).json()["items"]
    ready = [
        p
        for p in pods
        if p.get("status", {}).get("podIP")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]
    if not ready:
        raise Failed(f"no ready gateway pod for MemoryTenant {namespace}/{tenant} yet")
    port = next(
        (p["containerPort"] for c in ready[0]["spec"]["containers"] for p in c.get("ports", [])),
        7400,
    )
    secret = client.get(f"/api/v1/namespaces/{namespace}/secrets/{tenant}-memoturn-token").json()
    token = base64.b64decode(secret["data"]["admin-token"]).decode()
    return f"export MEMOTURN_URL=http://{ready[0]['status']['podIP']}:{port} MEMOTURN_TOKEN={token}"


def delete_pod(state: Path, name: str, namespace: str, grace: int | None) -> str:
    """``kubectl delete pod NAME [--grace-period N]``."""
    params = {"gracePeriodSeconds": grace} if grace is not None else {}
    r = api(state).delete(f"/api/v1/namespaces/{namespace}/pods/{name}", params=params)
    if r.status_code != 200:
        raise Failed(f"pod {namespace}/{name}: {r.status_code} {r.json().get('message', r.text)}")
    return f'pod "{name}" deleted'


def instructions(state: Path, seconds: float, bare: bool) -> str:
    where = "" if state == DEFAULT_DIR else f" --dir {state}"

    def me(command: str) -> str:
        return f"PYTHONPATH={ROOT / 'tests'} python -m support.localcluster {command}{where}"

    lines = [
        f"Memoturn local cluster ready in {seconds:.0f} s (state and logs: {state})",
        "",
        f"  export KUBECONFIG={state / 'kubeconfig'}",
        f"  export PATH={BIN}:$PATH    # python, memoturn and kubectl-memoturn of the virtualenv",
        "",
    ]
    if bare:
        lines += [
            "Bare (no chart, no operator): run the e2e suite on it:",
            f"  . {state / 'e2e.env'}; make e2e",
        ]
    else:
        manifest = state / "memorytenant.yaml"
        node = "app.kubernetes.io/instance=example,app.kubernetes.io/component=node"
        lines += [
            "Try it (with kubectl; kubectl is not built here, so each step also has a way without it):",
            f"  kubectl apply --server-side -f {manifest}",
            f"      or: {me(f'apply {manifest}')}",
            "  kubectl memoturn -n agents status example       # or: kubectl-memoturn -n agents status example",
            f"  eval $({me('gateway example')})   # MEMOTURN_URL and MEMOTURN_TOKEN of its gateway",
            "  memoturn db create example--notes && memoturn kv put example--notes greeting hello",
            "Failover: delete the node pod that owns example--notes, write again",
            f"  kubectl get pods -n agents -l {node} -o wide",
            "  kubectl delete pod -n agents <that pod> --grace-period=0",
            f"      or: {me('delete-pod <that pod> --grace 0')}",
            "  kubectl memoturn -n agents status example       # the other node owns it within the lease TTL (6 s)",
            "  memoturn kv put example--notes after failover && memoturn kv get example--notes greeting",
        ]
    lines += ["", "Stop and clean up: make cluster-down"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="localcluster", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("up", "serve", "down", "apply", "gateway", "delete-pod"):
        s = sub.add_parser(name)
        s.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory (default %(default)s)")
        if name in ("up", "serve"):
            s.add_argument("--bare", action="store_true", help="no chart and no operator (for the e2e suite)")
            s.add_argument("--kubelet", default="agent", choices=("agent", "real"), help="the node runtime")
            s.add_argument("--ip-prefix", default="127.0.30", help="pod addresses PREFIX.1-254 (loopback)")
        if name == "apply":
            s.add_argument("file", type=Path)
        if name in ("gateway", "delete-pod"):
            s.add_argument("name")
            s.add_argument("-n", "--namespace", default=TENANT_NS)
        if name == "delete-pod":
            s.add_argument("--grace", type=int, default=None, help="grace period seconds (0: at once)")
    a = p.parse_args(argv)
    state = a.dir.expanduser().resolve()
    try:
        if a.command in ("up", "serve") and not a.ip_prefix.startswith("127."):
            raise Failed(f"--ip-prefix {a.ip_prefix}: pods get loopback addresses only (127.x.y)")
        if a.command == "serve":
            serve(state, bare=a.bare, kubelet=a.kubelet, ip_prefix=a.ip_prefix)
        elif a.command == "up":
            seconds = up(state, bare=a.bare, kubelet=a.kubelet, ip_prefix=a.ip_prefix)
            print(instructions(state, seconds, a.bare))
        elif a.command == "down":
            if not state.exists():
                print(f"no local cluster at {state}")
                return 0
            if not owned(state):
                raise Failed(f"{state} is not a local cluster's state directory")
            killed = down(state)
            extra = f" (killed {len(killed)} leftover processes: {killed})" if killed else ""
            print(f"local cluster at {state} stopped and removed{extra}")
        elif a.command == "apply":
            print("\n".join(apply_file(state, a.file)))
        elif a.command == "gateway":
            print(gateway(state, a.name, a.namespace))
        else:
            print(delete_pod(state, a.name, a.namespace, a.grace))
    except Failed as exc:
        print(f"localcluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
