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
    env.update(
        MEMOTURN_DURABILITY="durable",
        MEMOTURN_LISTEN="127.0.0.1:1",
        MEMOTURN_DATA_DIR="/tmp/d",
        MEMOTURN_STORE_URL="file:///tmp/s",
        MEMOTURN_NODE_ID="n",
        MEMOTURN_HTTP_SERVER="granian",
        MEMOTURN_EMBEDDER_RUNTIME="numpy",
        MEMOTURN_CORS_ORIGINS="https://app.example",
        MEMOTURN_HOT_ROUTES="false",
    )
    for name, field in Settings.model_fields.items():
        if field.annotation in (int, float):
            env[f"MEMOTURN_{name.upper()}"] = "7"
    s = Settings.from_env(env)
    assert s.durability == "durable" and s.max_hot == 7 and s.resolved_store_url == "file:///tmp/s"
    assert s.http_server == "granian" and s.cors_origins == "https://app.example" and s.hot_routes is False
    assert s.embedder_runtime == "numpy"


def test_readme_commands_are_make_targets():
    readme = _read("README.md")
    makefile = _read("Makefile")
    for target in re.findall(r"^make (\w+)", readme, re.M):
        assert re.search(rf"^{target}:", makefile, re.M), f"README names make {target}, the Makefile lacks it"
    assert "make test" in _read(".ci", "run")


def test_the_client_side_installs_and_imports_without_the_server():
    """`pip install memoturn` is the SDK and CLI: httpx only; the data plane is the `server` extra."""
    import subprocess
    import sys
    import tomllib

    project = tomllib.loads(_read("pyproject.toml"))["project"]
    assert [d.split(">")[0].split("=")[0] for d in project["dependencies"]] == ["httpx"]
    assert {"server", "operator", "mcp"} <= set(project["optional-dependencies"])
    code = (
        "import sys, memoturn.cli, memoturn.client; "
        "print(sorted(m for m in ('fastapi', 'libsql', 'boto3', 'aiohttp', 'numpy', 'kopf', 'pydantic', 'mcp') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
