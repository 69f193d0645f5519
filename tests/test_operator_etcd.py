"""The operator and a secured etcd: spec.etcd.tlsSecret and spec.etcd.credentialsSecret reach node
and gateway pods (files mounted read-only, variables set), and nothing changes without them."""

from __future__ import annotations

import pytest
from memoturn.config import Settings
from memoturn_operator.crd import all_crds
from memoturn_operator.models import MemoryTenantSpec
from memoturn_operator.resources import ETCD_TLS_DIR, desired
from pydantic import ValidationError


def _spec(**etcd: object) -> MemoryTenantSpec:
    return MemoryTenantSpec.model_validate(
        {
            "image": "memoturn:0.1.0",
            "objectStore": {"bucket": "mem", "credentialsSecret": "s3-creds"},
            "etcd": {"endpoints": ["https://etcd-0:2379", "https://etcd-1:2379", "https://etcd-2:2379"], **etcd},
        }
    )


def _pods(spec: MemoryTenantSpec) -> dict[str, dict]:
    objs = desired("acme", "team", "uid-1", spec)
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objs
        if o["kind"] == "Deployment" and o["metadata"]["name"].endswith(("-node", "-gateway"))
    }


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_tls_and_credentials_secrets_reach_node_and_gateway_pods():
    spec = _spec(tlsSecret="etcd-client-tls", credentialsSecret="etcd-user")
    pods = _pods(spec)
    assert len(pods) == 2, pods.keys()
    for name, pod in pods.items():
        container = pod["containers"][0]
        env = _env(container)
        # The files of the tlsSecret, mounted read-only, and the variables naming them.
        volume = next(v for v in pod["volumes"] if v["name"] == "etcd-tls")
        assert volume["secret"]["secretName"] == "etcd-client-tls"
        assert {i["key"] for i in volume["secret"]["items"]} == {"ca.crt", "tls.crt", "tls.key"}
        mount = next(m for m in container["volumeMounts"] if m["name"] == "etcd-tls")
        assert mount == {"name": "etcd-tls", "mountPath": ETCD_TLS_DIR, "readOnly": True}, name
        assert env["MEMOTURN_ETCD_CA_FILE"]["value"] == f"{ETCD_TLS_DIR}/ca.crt"
        assert env["MEMOTURN_ETCD_CERT_FILE"]["value"] == f"{ETCD_TLS_DIR}/tls.crt"
        assert env["MEMOTURN_ETCD_KEY_FILE"]["value"] == f"{ETCD_TLS_DIR}/tls.key"
        # Credentials from the credentialsSecret, by reference: never a literal, never in the ConfigMap.
        for var, key in (("MEMOTURN_ETCD_USERNAME", "username"), ("MEMOTURN_ETCD_PASSWORD", "password")):
            assert env[var] == {"name": var, "valueFrom": {"secretKeyRef": {"name": "etcd-user", "key": key}}}
    config = next(o for o in desired("acme", "team", "uid-1", spec) if o["kind"] == "ConfigMap")
    assert config["data"]["MEMOTURN_ETCD_ENDPOINTS"] == "https://etcd-0:2379,https://etcd-1:2379,https://etcd-2:2379"
    assert not any("PASSWORD" in k or "USERNAME" in k for k in config["data"])
    # Every variable set is one memoturnd reads.
    names = {f"MEMOTURN_{n.upper()}" for n in Settings.model_fields}
    node = next(p for n, p in pods.items() if n.endswith("-node"))
    assert {k for k in _env(node["containers"][0]) if k.startswith("MEMOTURN_ETCD_")} <= names


def test_either_secret_alone_and_neither():
    pods = _pods(_spec(credentialsSecret="etcd-user"))
    for pod in pods.values():
        env = _env(pod["containers"][0])
        assert "MEMOTURN_ETCD_PASSWORD" in env and "MEMOTURN_ETCD_CA_FILE" not in env
        assert not any(v["name"] == "etcd-tls" for v in pod.get("volumes", []))
    pods = _pods(_spec(tlsSecret="etcd-client-tls"))
    for pod in pods.values():
        env = _env(pod["containers"][0])
        assert "MEMOTURN_ETCD_CA_FILE" in env and "MEMOTURN_ETCD_PASSWORD" not in env
    plain = _pods(_spec())
    gateway = next(p for n, p in plain.items() if n.endswith("-gateway"))
    assert "volumes" not in gateway and "env" not in gateway["containers"][0]
    node = next(p for n, p in plain.items() if n.endswith("-node"))
    assert not any(k.startswith("MEMOTURN_ETCD_") for k in _env(node["containers"][0]))


def test_crd_declares_the_etcd_secrets():
    etcd = all_crds()["memorytenants.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["etcd"]
    assert set(etcd["properties"]) == {"endpoints", "tlsSecret", "credentialsSecret"}
    assert etcd["properties"]["credentialsSecret"]["type"] == "string"
    with pytest.raises(ValidationError):
        _spec(credentialsSecrets="typo")
