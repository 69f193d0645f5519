"""Docs that match the code: every setting is documented, README's commands exist."""

from __future__ import annotations

import os
import re

from memoturn.config import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts: str) -> str:
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def test_every_setting_is_documented():
    doc = _read("docs", "configuration.md")
    documented = set(re.findall(r"`MEMOTURN_([A-Z_]+)`", doc))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_every_env_variable_is_read():
    env = {f"MEMOTURN_{name.upper()}": "x" for name in Settings.model_fields}
    env.update(MEMOTURN_DURABILITY="durable", MEMOTURN_LISTEN="127.0.0.1:1", MEMOTURN_DATA_DIR="/tmp/d",
               MEMOTURN_STORE_URL="file:///tmp/s", MEMOTURN_NODE_ID="n")
    for name, field in Settings.model_fields.items():
        if field.annotation in (int, float):
            env[f"MEMOTURN_{name.upper()}"] = "7"
    s = Settings.from_env(env)
    assert s.durability == "durable" and s.max_hot == 7 and s.resolved_store_url == "file:///tmp/s"


def test_readme_commands_are_make_targets():
    readme = _read("README.md")
    makefile = _read("Makefile")
    for target in re.findall(r"^make (\w+)", readme, re.M):
        assert re.search(rf"^{target}:", makefile, re.M), f"README names make {target}, the Makefile lacks it"
    assert "make test" in _read(".ci", "run")
