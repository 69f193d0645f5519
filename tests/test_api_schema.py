"""The published OpenAPI document types every answer: a JSON route without a response schema
(a handler returning ``dict[str, Any]``) leaves the SDKs' generated types empty, so it fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
from memoturn.config import Settings
from memoturn.server.api.app import create_app
from memoturn.server.node import Node
from memoturn.storage.store.file import FileStore

# Routes whose answer is not JSON: bytes or a stream, described by their media type alone.
BINARY = {
    ("get", "/v1/namespaces/{namespace}/profiles/{profile}/replica/snapshot"),
    ("get", "/v1/namespaces/{namespace}/profiles/{profile}/replica/segments"),
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("schema")
    node = Node(
        Settings(data_dir=str(tmp / "n"), node_id="schema", gc_interval_seconds=0), store=FileStore(str(tmp / "s"))
    )
    return create_app(node, manage_lifecycle=False).openapi()


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return resolved


def _untyped(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """An empty schema, or an object that says nothing about its keys (``dict[str, Any]``)."""
    s = _resolve(spec, schema)
    if not s:
        return True
    return s.get("type") == "object" and not s.get("properties") and s.get("additionalProperties") in (None, True)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def test_every_json_route_has_a_typed_success_schema(spec: dict[str, Any]) -> None:
    untyped = []
    for method, path, op in _operations(spec):
        if (method, path) in BINARY:
            continue
        successes = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        assert successes, f"{method.upper()} {path} documents no 2xx response"
        for code, response in successes.items():
            if code == "204":
                assert not response.get("content"), f"{method.upper()} {path}: a 204 has no body"
                continue
            content = response.get("content") or {}
            media = {k: v for k, v in content.items() if k.startswith("application/json")}
            if not media and "text/plain" in content:
                continue  # /metrics: Prometheus text
            if not media or any(_untyped(spec, m.get("schema") or {}) for m in media.values()):
                untyped.append(f"{method.upper()} {path} {code}")
    assert not untyped, "routes without a typed response model: " + ", ".join(untyped)


def test_binary_routes_still_exist_and_say_their_media_type(spec: dict[str, Any]) -> None:
    """The exemptions above name real routes, so a renamed one does not silently stay exempt."""
    for method, path in BINARY:
        content = spec["paths"][path][method]["responses"]["200"]["content"]
        assert content and not any(k.startswith("application/json") for k in content), (method, path)


def test_the_typed_models_name_their_fields(spec: dict[str, Any]) -> None:
    """The answers the SDKs type from this document are components with properties."""
    schemas = spec["components"]["schemas"]
    for name in (
        "BranchInfo",
        "BranchList",
        "Rewound",
        "CheckpointSet",
        "CheckpointList",
        "Policy",
        "GCReport",
        "IndexCreated",
        "VectorCollectionCreated",
        "VectorsUpserted",
        "VectorResults",
        "ClusterStatus",
        "MintedToken",
    ):
        assert schemas[name]["properties"], name
