"""docs/configuration.md is generated from the settings classes: it must match them."""

from __future__ import annotations

import os

import pytest
from memoturn import config_docs
from memoturn.config import GatewaySettings, Settings

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "configuration.md")


def test_the_configuration_docs_are_generated_from_the_code():
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    assert config_docs.render(doc) == doc, "docs/configuration.md is stale: python -m memoturn.config_docs --write"
    assert config_docs.main(["--check", "--path", DOC]) == 0


@pytest.mark.parametrize("settings_cls", [Settings, GatewaySettings])
def test_every_setting_has_a_description_and_a_row(settings_cls):
    rendered = config_docs.table(settings_cls)
    for name, field in settings_cls.model_fields.items():
        assert field.description, f"{settings_cls.__name__}.{name} needs a description"
        assert settings_cls.env_names(name)[0] in rendered


def test_a_stale_table_is_caught(tmp_path):
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    stale = tmp_path / "configuration.md"
    stale.write_text(doc.replace("| `MEMOTURN_MAX_HOT` | `1000` |", "| `MEMOTURN_MAX_HOT` | `999` |"), encoding="utf-8")
    assert config_docs.main(["--check", "--path", str(stale)]) == 1
    assert config_docs.main(["--write", "--path", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == doc


def test_the_gateway_reads_its_variables_and_its_flags_win():
    env = {
        "MEMOTURN_GATEWAY_LISTEN": "0.0.0.0:7400",
        "MEMOTURN_ETCD_ENDPOINTS": "etcd:2379",
        "MEMOTURN_ETCD_PREFIX": "/t",
        "MEMOTURN_GATEWAY_ATTEMPTS": "3",
    }
    s = GatewaySettings.from_env(env)
    assert (s.listen_address, s.etcd_endpoints, s.etcd_prefix, s.gateway_attempts) == (
        ("0.0.0.0", 7400),
        "etcd:2379",
        "/t",
        3,
    )
    s = GatewaySettings.from_env(env, gateway_listen="127.0.0.1:1", gateway_attempts=None)
    assert (s.gateway_listen, s.gateway_attempts) == ("127.0.0.1:1", 3)
    assert GatewaySettings.from_env({}).gateway_listen == "127.0.0.1:7400"
