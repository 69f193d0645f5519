"""CustomResourceDefinitions generated from :mod:`.models`, the one source of truth.

``python -m memoturn_operator.crd [DIR ...]`` writes ``memorytenants.yaml`` and
``memorybranches.yaml`` into each DIR; without arguments, into ``crds/`` and into the Helm
chart's ``charts/memoturn/crds/`` (Helm installs CRDs only from the chart's own directory, so
the chart carries an identical copy). A test fails when the files and the models disagree.

The pydantic JSON schema is turned into a Kubernetes *structural* schema: references inlined,
``null`` unions become ``nullable``, titles dropped, and CEL rules added where a field depends
on another.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from . import GROUP, VERSION
from .models import MemoryBranchSpec, MemoryBranchStatus, MemoryTenantSpec, MemoryTenantStatus

CEL = {
    "NodesSpec": [
        {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"}
    ],
    "ObjectStoreSpec": [
        {"rule": "self.provider != 'azure' || has(self.account)", "message": "an azure objectStore needs its account"}
    ],
    "BranchParent": [
        {
            "rule": "[has(self.txid), has(self.checkpoint), has(self.timestamp)].filter(x, x).size() <= 1",
            "message": "give at most one of txid, checkpoint, timestamp",
        }
    ],
    # A fork is made once: changing what it was forked from would silently mean nothing.
    "MemoryBranchSpec": [
        {"rule": "self == oldSelf", "message": "a MemoryBranch's spec cannot change; create another MemoryBranch"}
    ],
}


def _factory_defaults(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> dict[tuple[str, str], Any]:
    """``{(model name, field): default}`` for fields whose default comes from a factory."""
    seen = seen if seen is not None else set()
    out: dict[tuple[str, str], Any] = {}
    if model in seen:
        return out
    seen.add(model)
    for field_name, field in model.model_fields.items():
        if field.default_factory is not None:
            value = field.get_default(call_default_factory=True)
            out[(model.__name__, field_name)] = (
                value.model_dump(mode="json", exclude_none=True) if isinstance(value, BaseModel) else value
            )
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", ()) + (annotation,):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                out.update(_factory_defaults(candidate, seen))
    return out


def structural(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    defs = schema.pop("$defs", {})
    factory_defaults = _factory_defaults(model)

    def walk(node: Any, name: str | None = None) -> Any:
        if isinstance(node, list):
            return [walk(x) for x in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"].rsplit("/", 1)[-1]
            out = walk(copy.deepcopy(defs[ref]), ref)
            for k in ("description", "default"):
                if k in node:
                    out[k] = node[k]
            return out
        node = {k: v for k, v in node.items() if k != "title"}
        if node.get("additionalProperties") is True:
            # A free-form object (an affinity, a NetworkPolicyPeer): Kubernetes' own schema checks
            # it where it lands (the Deployment, the NetworkPolicy); here it is kept as given.
            del node["additionalProperties"]
            node["x-kubernetes-preserve-unknown-fields"] = True
        if "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            nullable = len(options) < len(node["anyOf"])
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            if len(options) == 1:
                node = {**walk(options[0]), **rest}
                if nullable:
                    node["nullable"] = True
                return node
        if "const" in node:
            node["enum"] = [node.pop("const")]
        if node.get("type") == "object" and "properties" in node:
            node.pop("additionalProperties", None)
            node["properties"] = {k: walk(v) for k, v in node["properties"].items()}
            for key, prop in node["properties"].items():
                # A nested object built by a default factory gets that object as its default
                # (fully filled in: the API server checks CEL rules against defaults as given).
                if name is not None and (name, key) in factory_defaults and "default" not in prop:
                    prop["default"] = factory_defaults[(name, key)]
            if name in CEL:
                node["x-kubernetes-validations"] = CEL[name]
            return {k: (walk(v) if k not in ("properties",) else v) for k, v in node.items()}
        return {k: walk(v) for k, v in node.items()}

    root: dict[str, Any] = walk(schema, model.__name__)
    return root


def crd(
    kind: str,
    plural: str,
    short: list[str],
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["memoturn"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": structural(spec),
                                "status": structural(status),
                            },
                        }
                    },
                }
            ],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    return {
        "memorytenants.yaml": crd(
            "MemoryTenant",
            "memorytenants",
            ["mt"],
            MemoryTenantSpec,
            MemoryTenantStatus,
            [
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Ready Nodes", "type": "integer", "jsonPath": ".status.readyNodes"},
                {"name": "Hot", "type": "integer", "jsonPath": ".status.hotDatabases"},
                {"name": "Databases", "type": "integer", "jsonPath": ".status.usage.databases", "priority": 1},
                {
                    "name": "Store",
                    "type": "string",
                    "jsonPath": '.status.conditions[?(@.type=="ObjectStoreReachable")].status',
                },
                {
                    "name": "Etcd",
                    "type": "string",
                    "jsonPath": '.status.conditions[?(@.type=="LeaseStoreReachable")].status',
                },
                age,
            ],
        ),
        "memorybranches.yaml": crd(
            "MemoryBranch",
            "memorybranches",
            ["mbr"],
            MemoryBranchSpec,
            MemoryBranchStatus,
            [
                {"name": "Database", "type": "string", "jsonPath": ".spec.database"},
                {"name": "Branch", "type": "string", "jsonPath": ".spec.branch"},
                {"name": "Txid", "type": "integer", "jsonPath": ".status.resolvedTxid"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Expires", "type": "date", "jsonPath": ".status.expiryTime"},
                age,
            ],
        ),
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # plain YAML, no &anchors for repeated defaults
        return True


def render(doc: dict[str, Any]) -> str:
    return "# Generated by `python -m memoturn_operator.crd` from operator/memoturn_operator/models.py.\n" + yaml.dump(
        doc, Dumper=_Dumper, sort_keys=False, width=120
    )


ROOT = Path(__file__).resolve().parents[2]  # the checkout: operator/memoturn_operator/crd.py
OUTPUT_DIRS = (ROOT / "crds", ROOT / "charts" / "memoturn" / "crds")


def main(argv: list[str] | None = None) -> int:
    for out in map(Path, argv or sys.argv[1:] or OUTPUT_DIRS):
        out.mkdir(parents=True, exist_ok=True)
        for name, doc in all_crds().items():
            (out / name).write_text(render(doc))
            print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
