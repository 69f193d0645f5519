"""Server-side apply of plain manifests to a real API server, resource paths from discovery
(as kubectl finds them, so no table of kinds to keep up to date)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx


class Discovery:
    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        self._cache: dict[str, dict[str, tuple[str, bool]]] = {}

    def resource(self, api_version: str, kind: str, wait: float = 30.0) -> tuple[str, bool]:
        """(plural, namespaced) of ``kind``; waits a little for a just-established CRD to be served."""
        deadline = time.monotonic() + wait
        while True:
            if kind in self._cache.get(api_version, {}):
                return self._cache[api_version][kind]
            r = self.api.get("/api/v1" if api_version == "v1" else f"/apis/{api_version}")
            if r.status_code == 200:
                self._cache[api_version] = {
                    res["kind"]: (res["name"], res["namespaced"])
                    for res in r.json()["resources"]
                    if "/" not in res["name"]
                }
                if kind in self._cache[api_version]:
                    continue
            if time.monotonic() > deadline:
                raise AssertionError(f"{api_version} {kind} is not served ({r.status_code})")
            time.sleep(0.3)

    def path(self, obj: dict[str, Any], namespace: str | None = None) -> str:
        plural, namespaced = self.resource(obj["apiVersion"], obj["kind"])
        base = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
        meta = obj["metadata"]
        if namespaced:
            return f"{base}/namespaces/{meta.get('namespace') or namespace}/{plural}/{meta['name']}"
        return f"{base}/{plural}/{meta['name']}"


def apply(
    api: httpx.Client,
    discovery: Discovery,
    obj: dict[str, Any],
    namespace: str | None = None,
    *,
    dry_run: bool = False,
    manager: str = "e2e",
) -> httpx.Response:
    """PATCH with ``application/apply-patch+yaml`` (JSON is YAML); ``force``: this manager wins."""
    params = {"fieldManager": manager, "force": "true", **({"dryRun": "All"} if dry_run else {})}
    return api.patch(
        discovery.path(obj, namespace),
        params=params,
        content=json.dumps(obj),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )


def wait_established(api: httpx.Client, name: str, timeout: float = 30) -> None:
    """Until the CRD ``name`` reports ``Established`` (its resources are then served)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").json()
        if any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} not established")
