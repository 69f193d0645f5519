"""The operator's few calls to the Kubernetes API, in one place.

Objects are written with server-side apply under one field manager, so applying the same
desired object twice changes nothing (no new ``resourceVersion``, no watch event, no hot
loop) and a field someone else changed by hand is set back (drift repair, ``force``).

The API server being away, or answering 409/429/5xx, becomes :class:`Retry`, which the
handlers turn into a kopf ``TemporaryError`` with a delay: the reconcile runs again later.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError
from urllib3.exceptions import HTTPError

FIELD_MANAGER = "memoturn-operator"
RETRYABLE = {409, 429, 500, 502, 503, 504}


class Retry(Exception):
    """The API server could not do it now; try the reconcile again after ``delay`` seconds."""

    def __init__(self, message: str, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status", None)


def _bearer_token_fixed(configuration: client.Configuration) -> client.Configuration:
    """kubernetes 36's config loaders store the token under ``authorization`` while its generated
    ``auth_settings()`` sends only ``BearerToken``: requests would go out anonymous (403 for
    ``system:anonymous``). Copy it across, also after each refresh of a rotating in-cluster token."""
    original = configuration.refresh_api_key_hook

    def refresh(c: client.Configuration) -> None:
        if original is not None:
            original(c)
        if c.api_key.get("authorization"):
            c.api_key["BearerToken"] = c.api_key["authorization"]

    refresh(configuration)
    configuration.refresh_api_key_hook = refresh
    return configuration


class Kube:
    """Typed-enough access to the handful of kinds the operator owns or reads."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient(_bearer_token_fixed(client.Configuration.get_default_copy()))
        self.api_client = api_client
        self._dynamic: DynamicClient | None = None
        self._lock = threading.Lock()
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    @property
    def dynamic(self) -> DynamicClient:
        with self._lock:
            if self._dynamic is None:
                self._dynamic = DynamicClient(self.api_client)
            return self._dynamic

    def _resource(self, what: str, api_version: str, kind: str) -> Any:
        """The dynamic client's resource (discovery on first use, which may also find the server away)."""
        return self._call(what, lambda: self.dynamic.resources.get(api_version=api_version, kind=kind))

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ApiException, DynamicApiError) as exc:
            if _status(exc) in RETRYABLE:
                raise Retry(f"{what}: the API server answered {_status(exc)}") from exc
            raise
        except (HTTPError, OSError) as exc:
            raise Retry(f"{what}: the API server is unreachable ({exc})") from exc

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` (force: this operator owns these fields); the object as stored."""
        what = f"apply {obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
        resource = self._resource(what, obj["apiVersion"], obj["kind"])
        result = self._call(
            what, self.dynamic.server_side_apply, resource, body=obj, field_manager=FIELD_MANAGER, force_conflicts=True
        )
        stored: dict[str, Any] = result.to_dict()
        return stored

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        what = f"get {kind} {namespace}/{name}"
        resource = self._resource(what, api_version, kind)
        try:
            found: dict[str, Any] = self._call(what, resource.get, name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None
        return found

    def create_if_absent(self, obj: dict[str, Any]) -> bool:
        """Create ``obj`` unless it exists; True if this call created it (for things made once)."""
        what = f"create {obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']}"
        resource = self._resource(what, obj["apiVersion"], obj["kind"])
        try:
            resource.create(body=obj, namespace=obj["metadata"]["namespace"])
            return True
        except DynamicApiError as exc:
            if _status(exc) == 409:
                return False
            if _status(exc) in RETRYABLE:
                raise Retry(f"{what}: the API server answered {_status(exc)}") from exc
            raise
        except (HTTPError, OSError) as exc:
            raise Retry(f"{what}: the API server is unreachable ({exc})") from exc

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        import base64

        try:
            secret = self._call(f"get Secret {namespace}/{name}", self.core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        raw = (secret.data or {}).get(key)
        return base64.b64decode(raw).decode() if raw else None

    def pods(self, namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        result = self._call(f"list pods {namespace}", self.core.list_namespaced_pod, namespace, label_selector=selector)
        return [self.api_client.sanitize_for_serialization(p) for p in result.items]

    def annotate_pod(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        try:
            self._call(
                f"annotate pod {namespace}/{name}",
                self.core.patch_namespaced_pod,
                name,
                namespace,
                {"metadata": {"annotations": annotations}},
            )
        except ApiException as exc:
            if exc.status != 404:  # the pod went away meanwhile: nothing to annotate
                raise

    def ready_endpoints(self, namespace: str, service: str) -> list[tuple[str, int]]:
        """(pod IP, port) of the ready pods a Service selects: the Service's endpoints.

        Computed from the Service's selector and the pods, as the EndpointSlice controller does,
        rather than read from EndpointSlices or reached through the Service's DNS name: that
        works the same from inside the cluster and from outside it (tests, laptops), and for
        pods on loopback addresses, which EndpointSlices refuse to list.
        """
        try:
            svc = self._call(
                f"get Service {namespace}/{service}", self.core.read_namespaced_service, service, namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise
        target = svc.spec.ports[0].target_port if svc.spec.ports else None
        out = []
        for pod in self.pods(namespace, svc.spec.selector or {}):
            status, meta = pod.get("status") or {}, pod["metadata"]
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            if not ready or meta.get("deletionTimestamp") or not status.get("podIP"):
                continue
            port = target if isinstance(target, int) else None
            for container in pod["spec"]["containers"]:
                for p in container.get("ports") or []:
                    if port is None and p.get("name") == target:
                        port = p["containerPort"]
            if port is not None:
                out.append((status["podIP"], port))
        return sorted(out)

    def tenant(self, group: str, version: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = self._call(
                f"get MemoryTenant {namespace}/{name}",
                self.custom.get_namespaced_custom_object,
                group,
                version,
                namespace,
                "memorytenants",
                name,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return body
