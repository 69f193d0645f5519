"""The test control plane runs real workloads: a Deployment's pods run as local processes on the
node agent, become Ready, restart after a crash, shut down gracefully on deletion, and the garbage
collector takes them away with their Deployment. The agent resolves env and volumes as a kubelet."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from support.controlplane import ControlPlane
from support.kubelet import NodeAgent
from support.nodes import free_port

# On an external cluster (MEMOTURN_E2E_KUBECONFIG) these are skipped and listed: support.testcluster.
pytestmark = pytest.mark.own_cluster("tests the suite's own node agent")

T = TypeVar("T")
Obj = dict[str, Any]


def wait_for(probe: Callable[[], T], timeout: float, what: str, until: Callable[[T], bool] = bool) -> T:
    """Polls ``probe`` until ``until(value)``; on timeout, fails with the last value (or error) seen."""
    deadline = time.monotonic() + timeout
    last: object = "<never observed>"
    while True:
        try:
            value = probe()
            if until(value):
                return value
            last = value
        except (httpx.HTTPError, OSError, KeyError, AssertionError) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last observed: {last!r}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(etcd: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, NodeAgent]]:
    logs = tmp_path_factory.mktemp("node-agent")
    plane = ControlPlane(etcd.endpoint, logs / "control-plane")
    agent: NodeAgent | None = None
    try:
        agent = NodeAgent(plane.url, plane.token, "node-1", logs / "node", commands={"python": sys.executable})
        yield plane, agent
    finally:
        if agent is not None:
            agent.close()
        plane.close()


def _namespace(api: httpx.Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    # Pods are admitted only once the serviceaccount controller made "default" in the namespace.
    wait_for(
        lambda: api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default").status_code,
        60,
        "the default service account",
        until=lambda code: code == 200,
    )
    return name


def _condition(pod: Obj, type_: str) -> bool:
    return any(c["type"] == type_ and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or [])


def _pods(api: httpx.Client, namespace: str, selector: str) -> list[Obj]:
    r = api.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector})
    r.raise_for_status()
    return list(r.json()["items"])


def _ready_pods(api: httpx.Client, namespace: str, selector: str, count: int) -> list[Obj]:
    def probe() -> list[Obj]:
        return [p for p in _pods(api, namespace, selector) if not p["metadata"].get("deletionTimestamp")]

    def done(pods: list[Obj]) -> bool:
        return len(pods) == count and all(
            p["status"].get("phase") == "Running" and _condition(p, "Ready") for p in pods
        )

    return wait_for(probe, 120, f"{count} Running and Ready pods ({selector})", until=done)


# Writes a file named after the pod (from the downward API) into the served directory, then serves it.
SERVE = (
    "import os, runpy, sys\n"
    "root = sys.argv[1]\n"
    "with open(os.path.join(root, os.environ['POD_NAME']), 'w') as f:\n"
    "    f.write(os.environ['POD_NAME'])\n"
    "sys.argv = ['http.server', *sys.argv[2:]]\n"
    "runpy.run_module('http.server', run_name='__main__')\n"
)


class ReadinessHistory:
    """Every Ready value the API server stored for each pod of a namespace, in order, from a watch.

    A snapshot can miss a brief Ready=True that the agent took back; the watch sees every write."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.seen: dict[str, list[bool]] = {}
        self._client = httpx.Client(
            base_url=plane.url,
            verify=False,
            trust_env=False,
            headers={"Authorization": f"Bearer {plane.token}"},
            timeout=httpx.Timeout(30, read=None),
        )
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, args=(namespace,), daemon=True)
        self._thread.start()

    def _run(self, namespace: str) -> None:
        try:
            with self._client.stream("GET", f"/api/v1/namespaces/{namespace}/pods", params={"watch": "1"}) as r:
                self._response = r
                for line in r.iter_lines():
                    if line.strip():
                        pod = json.loads(line)["object"]
                        self.seen.setdefault(pod["metadata"]["name"], []).append(_condition(pod, "Ready"))
        except (httpx.HTTPError, OSError, ValueError):
            pass  # closed by stop()

    def flapped(self) -> dict[str, list[bool]]:
        """Pods that were reported Ready and then not Ready again."""
        return {
            name: values
            for name, values in self.seen.items()
            if any(a and not b for a, b in zip(values, values[1:], strict=False))
        }

    def stop(self) -> None:
        stream = self._response.extensions.get("network_stream") if self._response is not None else None
        if stream is not None:
            try:
                stream.get_extra_info("socket").shutdown(socket.SHUT_RDWR)  # wakes the blocked read
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._client.close()


def _web_deployment(name: str, port: int) -> Obj:
    container = {
        "name": "web",
        "image": "python:3.11",
        "command": ["python", "-c", SERVE, "/srv", "--bind", "0.0.0.0", "--directory", "/srv", "$(PORT)"],
        "env": [
            {"name": "PORT", "value": str(port)},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        "volumeMounts": [{"name": "srv", "mountPath": "/srv"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [container],
                    "terminationGracePeriodSeconds": 10,
                    "volumes": [{"name": "srv", "emptyDir": {}}],
                },
            },
        },
    }


def _service(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


def _fetch(agent: NodeAgent, namespace: str, pod: str, port: int, path: str) -> httpx.Response:
    """GET from a pod's own IP; a failure names the pod's process state and the end of its log."""
    url = f"http://{agent.pod_ip(namespace, pod)}:{port}{path}"
    try:
        return httpx.get(url, timeout=5, trust_env=False)
    except httpx.HTTPError as e:
        proc = agent.process(namespace, pod)
        state = "no process" if proc is None else f"pid {proc.pid}, returncode {proc.poll()}"
        with open(os.path.join(agent.log_dir, f"{namespace}_{pod}_web.log"), errors="replace") as f:
            tail = f.read()[-2000:]
        raise AssertionError(f"GET {url} failed: {e!r}; {state}; log:\n{tail}") from e


def test_a_deployment_runs_restarts_and_goes_away(cluster: tuple[ControlPlane, NodeAgent]) -> None:
    plane, agent = cluster
    api = plane.api
    ns, port = _namespace(api), free_port()
    history = ReadinessHistory(plane, ns)
    assert api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=_web_deployment("web", port)).status_code == 201
    assert api.post(f"/api/v1/namespaces/{ns}/services", json=_service("web")).status_code == 201

    # Both replicas run, each on its own loopback IP, and serve a file named after their pod.
    pods = _ready_pods(api, ns, "app=web", 2)
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    assert len(set(ips.values())) == 2 and all(ip.startswith("127.0.20.") for ip in ips.values()), ips
    for name, ip in ips.items():
        with open(os.path.join(agent.log_dir, f"{ns}_{name}_web.log")) as f:  # stderr is line-buffered
            assert '"GET / HTTP/1.1" 200' in f.read(), f"{name} was reported Ready before its probe passed"
        assert agent.pod_ip(ns, name) == ip
        assert _fetch(agent, ns, name, port, f"/{name}").text == name  # downward API env reached the process
        status = next(p for p in pods if p["metadata"]["name"] == name)["status"]
        assert status["hostIP"] == "127.0.0.1" and status["containerStatuses"][0]["restartCount"] == 0
    history.stop()
    assert not history.flapped(), f"Ready before the readiness probe passed: {history.flapped()}"
    # The Service's endpoints, as the endpointslice controller would compute them (see the EndpointSlice test below).
    assert plane.kube().ready_endpoints(ns, "web") == sorted((ip, port) for ip in ips.values())
    node = api.get("/api/v1/nodes/node-1").json()
    assert _condition(node, "Ready") and not node["spec"].get("taints") and node["status"]["allocatable"]["cpu"] == "16"
    lease = api.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1").json()
    assert lease["spec"]["holderIdentity"] == "node-1"

    # A crash (SIGKILL) restarts the container; the pod becomes Ready again.
    crashed = next(iter(ips))
    old = agent.process(ns, crashed)
    assert old is not None and old.poll() is None
    os.kill(old.pid, signal.SIGKILL)

    def restarted() -> Obj:
        return api.get(f"/api/v1/namespaces/{ns}/pods/{crashed}").json()

    pod = wait_for(
        restarted,
        60,
        f"{crashed} to restart and be Ready",
        until=lambda p: p["status"]["containerStatuses"][0]["restartCount"] == 1 and _condition(p, "Ready"),
    )
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 137 and last["reason"] == "Error", last
    new = agent.process(ns, crashed)
    assert new is not None and new.pid != old.pid
    assert _fetch(agent, ns, crashed, port, f"/{crashed}").status_code == 200

    # A graceful delete: SIGTERM reaches the process, the pod object goes, the ReplicaSet replaces it.
    victim = next(name for name in ips if name != crashed)
    proc = agent.process(ns, victim)
    assert proc is not None
    assert api.delete(f"/api/v1/namespaces/{ns}/pods/{victim}").status_code == 200
    code = wait_for(proc.poll, 60, f"{victim}'s process to exit", until=lambda rc: rc is not None)
    assert code == -signal.SIGTERM, code
    wait_for(
        lambda: api.get(f"/api/v1/namespaces/{ns}/pods/{victim}").status_code,
        60,
        f"{victim} to be deleted",
        until=lambda status: status == 404,
    )
    pods = _ready_pods(api, ns, "app=web", 2)
    names = {p["metadata"]["name"] for p in pods}
    assert crashed in names and victim not in names
    replacement = (names - {crashed}).pop()
    assert _fetch(agent, ns, replacement, port, f"/{replacement}").text == replacement

    # Deleting the Deployment (background propagation): the garbage collector removes the ReplicaSet
    # and its pods, and the agent stops their processes.
    procs = [agent.process(ns, name) for name in names]
    assert all(p is not None and p.poll() is None for p in procs)
    r = api.request(
        "DELETE", f"/apis/apps/v1/namespaces/{ns}/deployments/web", json={"propagationPolicy": "Background"}
    )
    assert r.status_code in (200, 202), r.text
    wait_for(
        lambda: [p["metadata"]["name"] for p in _pods(api, ns, "app=web")],
        120,
        "the garbage collector to remove the pods",
        until=lambda left: not left,
    )
    wait_for(
        lambda: [p.pid for p in procs if p is not None and p.poll() is None],
        60,
        "the agent to stop the processes",
        until=lambda alive: not alive,
    )
    wait_for(
        lambda: [key for key in agent.pods() if key.startswith(f"{ns}/")],
        30,
        "the agent to forget the pods",
        until=lambda left: not left,
    )


def test_endpointslices_refuse_loopback_pods_so_endpoints_come_from_the_pods(
    cluster: tuple[ControlPlane, NodeAgent],
) -> None:
    """Why the harness (and the operator) read a Service's endpoints from the pods it selects:
    kube-apiserver refuses loopback addresses in EndpointSlices (ValidateNonSpecialIP), and the
    node agent's pod IPs are 127.0.20.x. Should that ever change, this test says so."""
    plane, _agent = cluster
    api = plane.api
    ns, port = _namespace(api), free_port()
    assert api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=_web_deployment("web", port)).status_code == 201
    assert api.post(f"/api/v1/namespaces/{ns}/services", json=_service("web")).status_code == 201
    ips = {p["status"]["podIP"] for p in _ready_pods(api, ns, "app=web", 2)}

    def observe() -> tuple[set[str], list[str]]:
        slices = api.get(
            f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
            params={"labelSelector": "kubernetes.io/service-name=web"},
        ).json()["items"]
        ready = {
            a
            for s in slices
            for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")
            for a in e["addresses"]
        }
        events = api.get(
            f"/api/v1/namespaces/{ns}/events",
            params={"fieldSelector": "involvedObject.kind=Service,involvedObject.name=web"},
        ).json()["items"]
        return ready, [e["message"] for e in events if e.get("reason") == "FailedToUpdateEndpointSlices"]

    # Either the slice lists both pods, or the controller reported why it could not write it.
    ready, failures = wait_for(
        observe,
        120,
        "the endpointslice controller to publish or fail",
        until=lambda seen: seen[0] == ips or bool(seen[1]),
    )
    assert not ready and any("may not be in the loopback range" in f for f in failures), (ready, failures)
    assert {ip for ip, _ in plane.kube().ready_endpoints(ns, "web")} == ips


def test_env_args_and_volumes_are_resolved_like_a_kubelet(cluster: tuple[ControlPlane, NodeAgent]) -> None:
    plane, agent = cluster
    api = plane.api
    ns = _namespace(api)
    assert (
        api.post(
            f"/api/v1/namespaces/{ns}/configmaps",
            json={"metadata": {"name": "settings"}, "data": {"mode": "fast", "url": "http://0.0.0.0:9000"}},
        ).status_code
        == 201
    )
    assert (
        api.post(
            f"/api/v1/namespaces/{ns}/secrets",
            json={"metadata": {"name": "creds"}, "data": {"token": base64.b64encode(b"s3cret").decode()}},
        ).status_code
        == 201
    )
    dump = (
        "import json, os, sys\n"
        "sa = os.environ['SA_DIR']\n"
        "print(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ), 'cwd': os.getcwd(),\n"
        "                  'mode': open(os.environ['MODE_FILE']).read(),\n"
        "                  'sa': {n: open(os.path.join(sa, n)).read() for n in ('token', 'namespace')}}))\n"
    )
    container = {
        "name": "dump",
        "image": "python:3.11",
        "command": ["python", "-c", dump],
        "args": ["$(GREETING)", "$$(LITERAL)", "$(UNDEFINED)", "/data/sub/file", "0.0.0.0:7000", "/database"],
        "envFrom": [
            {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
            {"secretRef": {"name": "absent", "optional": True}},
        ],
        "env": [
            {"name": "NAME", "value": "world"},
            {"name": "GREETING", "value": "hello $(NAME) in $(POD_NAMESPACE)"},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "NOPE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope", "optional": True}}},
            {"name": "DATA_DIR", "value": "/data"},
            {"name": "MODE_FILE", "value": "/config/mode"},
            {"name": "SA_DIR", "value": "/var/run/secrets/kubernetes.io/serviceaccount"},
            {"name": "LISTEN", "value": "0.0.0.0:$(PORT_NUMBER)"},
        ],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "config", "mountPath": "/config"}],
        "workingDir": "/data",
    }
    pod = {
        "metadata": {"name": "dump", "labels": {"app": "env"}, "annotations": {"note": "hi"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [container],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "config", "configMap": {"name": "settings"}}],
        },
    }
    assert api.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
    done = wait_for(
        lambda: api.get(f"/api/v1/namespaces/{ns}/pods/dump").json(),
        60,
        "the dump pod to finish",
        until=lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed"),
    )
    assert done["status"]["phase"] == "Succeeded", done["status"]
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    with open(os.path.join(agent.log_dir, f"{ns}_dump_dump.log")) as f:
        seen = json.loads(f.read().strip().splitlines()[-1])
    env, ip = seen["env"], done["status"]["podIP"]
    data_dir = env["DATA_DIR"]
    assert data_dir != "/data" and data_dir.endswith("/data") and seen["cwd"] == data_dir
    assert seen["argv"] == [
        "hello world in $(POD_NAMESPACE)",
        "$(LITERAL)",
        "$(UNDEFINED)",
        f"{data_dir}/sub/file",
        f"{ip}:7000",
        "/database",
    ]
    assert seen["mode"] == "fast"
    assert seen["sa"]["namespace"] == ns and seen["sa"]["token"].count(".") == 2  # a projected service-account token
    assert env["POD_NAMESPACE"] == ns and env["POD_UID"] == done["metadata"]["uid"]
    assert (env["APP"], env["NOTE"], env["NODE"], env["SA"]) == ("env", "hi", "node-1", "default")
    assert (env["POD_IP"], env["HOST_IP"]) == (ip, "127.0.0.1")
    assert (env["MODE"], env["TOKEN"], env["CFG_mode"]) == ("fast", "s3cret", "fast")
    assert env["CFG_url"] == f"http://{ip}:9000" and env["LISTEN"] == f"{ip}:$(PORT_NUMBER)"
    assert "NOPE" not in env
    assert set(env) - {"PATH", "HOME", "LANG", "HOSTNAME"} == {
        "NAME",
        "GREETING",
        "POD_NAMESPACE",
        "POD_UID",
        "APP",
        "NOTE",
        "NODE",
        "SA",
        "POD_IP",
        "HOST_IP",
        "MODE",
        "TOKEN",
        "DATA_DIR",
        "MODE_FILE",
        "SA_DIR",
        "LISTEN",
        "CFG_mode",
        "CFG_url",
    }, "the test process's env leaked"
    assert env["HOSTNAME"] == "dump"


def test_a_failing_liveness_probe_restarts_the_container(cluster: tuple[ControlPlane, NodeAgent]) -> None:
    plane, agent = cluster
    api = plane.api
    ns = _namespace(api)
    container = {
        "name": "sleeper",
        "image": "python:3.11",
        "command": ["python", "-c", "import time; time.sleep(600)"],
        "livenessProbe": {"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 2},
    }
    pod = {"metadata": {"name": "sleeper"}, "spec": {"containers": [container], "terminationGracePeriodSeconds": 5}}
    assert api.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
    pod = wait_for(
        lambda: api.get(f"/api/v1/namespaces/{ns}/pods/sleeper").json(),
        60,
        "a liveness restart",
        until=lambda p: (p.get("status", {}).get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1,
    )
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 128 + signal.SIGTERM, last  # the kubelet asks politely first
    proc = wait_for(lambda: agent.process(ns, "sleeper"), 30, "the restarted process")

    # A forced deletion kills at once.
    assert api.delete(f"/api/v1/namespaces/{ns}/pods/sleeper", params={"gracePeriodSeconds": 0}).status_code == 200
    assert wait_for(proc.poll, 30, "the process to die", until=lambda rc: rc is not None) == -signal.SIGKILL
    wait_for(lambda: agent.pods(), 30, "the agent to forget the pod", until=lambda keys: f"{ns}/sleeper" not in keys)


def test_a_process_ignoring_sigterm_is_killed_when_the_grace_period_ends(
    cluster: tuple[ControlPlane, NodeAgent],
) -> None:
    plane, agent = cluster
    api = plane.api
    ns = _namespace(api)
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(600)"
    )
    pod = {
        "metadata": {"name": "stubborn"},
        "spec": {
            "containers": [{"name": "app", "image": "python:3.11", "command": ["python", "-c", stubborn]}],
            "terminationGracePeriodSeconds": 2,
        },
    }
    assert api.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
    log = os.path.join(agent.log_dir, f"{ns}_stubborn_app.log")
    wait_for(lambda: open(log).read(), 60, "the process to install its handler", until=lambda text: "up" in text)
    proc = agent.process(ns, "stubborn")
    assert proc is not None
    assert api.delete(f"/api/v1/namespaces/{ns}/pods/stubborn").status_code == 200
    assert wait_for(proc.poll, 30, "the process to die", until=lambda rc: rc is not None) == -signal.SIGKILL
    wait_for(
        lambda: api.get(f"/api/v1/namespaces/{ns}/pods/stubborn").status_code,
        30,
        "the pod object to go",
        until=lambda code: code == 404,
    )


def test_a_container_without_a_command_fails_its_pod(cluster: tuple[ControlPlane, NodeAgent]) -> None:
    plane, _agent = cluster
    api = plane.api
    ns = _namespace(api)
    pod = {"metadata": {"name": "image-only"}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}
    assert api.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
    status = wait_for(
        lambda: api.get(f"/api/v1/namespaces/{ns}/pods/image-only").json().get("status", {}),
        60,
        "the pod to fail",
        until=lambda s: s.get("phase") == "Failed",
    )
    assert status["reason"] == "NoCommand" and "has no command" in status["message"], status
