"""The TypeScript SDK (sdk/typescript): its types match the server's OpenAPI, and its Node tests
pass against a real memoturnd.

The package is copied to a temporary directory and built there, so a run leaves nothing in the
work tree; its node_modules comes from ``npm ci`` into ``~/.cache/memoturn/ts-sdk-<lock hash>``,
installed once per package-lock.json. Without node and npm the tests skip, and fail under CI.
``MEMOTURN_TS_REGENERATE=1`` (``make ts-sdk-generate``) rewrites src/openapi.ts instead of
failing on drift.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from support.nodes import Memoturnd

SDK = Path(__file__).resolve().parent.parent / "sdk" / "typescript"
CACHE = Path(os.environ.get("MEMOTURN_CACHE", Path.home() / ".cache" / "memoturn"))
TOKEN = "ts-sdk-admin-token"
#: Namespace tokens of the embedded-replica tests (test/replica.test.ts): one namespace, and a rival.
NS_TOKENS = {"tsr": "ts-sdk-tsr-token", "tsrival": "ts-sdk-tsrival-token"}
SOURCES = ("package.json", "package-lock.json", "tsconfig.json", "tsconfig.replica.json", "src", "test", "scripts")
REGENERATE = "make ts-sdk-generate"


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    missing = "node and npm (Node.js 20 or later) are needed for the TypeScript SDK's tests"
    if not node or not npm:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.fail(f"{missing}; found {version}")
    return node, npm


def _run(args: list[str], cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run a command; on failure, fail the test with its output."""
    done = subprocess.run(
        args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` exited with {done.returncode}:\n{output[-20000:]}")
    return output


def _node_modules(npm: str) -> Path:
    """``npm ci`` of the package's lock, once per lock (keyed by its hash), under the cache."""
    lock = (SDK / "package-lock.json").read_bytes()
    target = CACHE / f"ts-sdk-{hashlib.sha256(lock).hexdigest()[:16]}"
    if (target / "node_modules" / ".memoturn-installed").exists():
        return target / "node_modules"
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ts-sdk-install-", dir=CACHE))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(SDK / name, work / name)
        _run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"], work)
        (work / "node_modules" / ".memoturn-installed").touch()
        try:
            work.rename(target)  # atomic: a concurrent run that got there first wins
        except OSError:
            if not (target / "node_modules" / ".memoturn-installed").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / "node_modules"


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package with its node_modules, ready to build."""
    _node, npm = _tools()
    copy = tmp_path_factory.mktemp("ts-sdk")
    for name in SOURCES:
        src = SDK / name
        if src.is_dir():
            shutil.copytree(src, copy / name)
        else:
            shutil.copy(src, copy / name)
    (copy / "node_modules").symlink_to(_node_modules(npm), target_is_directory=True)
    return copy


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("ts-sdk-daemon")
    proc = Memoturnd(
        str(data),
        f"file://{data}/store",
        env={"MEMOTURN_ADMIN_TOKEN": TOKEN, "MEMOTURN_TOKENS": ",".join(f"{ns}:{t}" for ns, t in NS_TOKENS.items())},
    )
    proc.wait_ready(timeout=120)
    yield proc
    proc.close()


def test_generated_types_match_the_servers_openapi(sdk: Path, daemon: Memoturnd) -> None:
    node, _npm = _tools()
    spec = daemon.client.get("/openapi.json")
    assert spec.status_code == 200, spec.text
    (sdk / "openapi.json").write_text(json.dumps(spec.json()))
    _run([node, "scripts/generate.mjs", "openapi.json", "openapi.generated.ts"], sdk)
    generated = (sdk / "openapi.generated.ts").read_text()
    committed = SDK / "src" / "openapi.ts"
    if os.environ.get("MEMOTURN_TS_REGENERATE"):
        committed.write_text(generated)
        return
    if committed.read_text() != generated:
        diff = difflib.unified_diff(
            committed.read_text().splitlines(), generated.splitlines(), "committed", "generated", lineterm=""
        )
        pytest.fail(
            "sdk/typescript/src/openapi.ts differs from what the server's /openapi.json generates: "
            f"run `{REGENERATE}`\n" + "\n".join(list(diff)[:80])
        )


def test_node_tests_pass_against_memoturnd(sdk: Path, daemon: Memoturnd) -> None:
    node, npm = _tools()
    _run([npm, "run", "build"], sdk)  # tsc: the library (DOM lib, no Node types) and the tests
    for built in ("index.js", "index.d.ts", "client.d.ts", "openapi.d.ts", "replica.js", "replica.d.ts"):
        assert (sdk / "dist" / built).is_file(), built
    out = _run(
        [node, "--test", "--test-reporter=tap", "dist-test/"],
        sdk,
        env={"MEMOTURN_URL": daemon.url, "MEMOTURN_TOKEN": TOKEN, "MEMOTURN_NS_TOKENS": json.dumps(NS_TOKENS)},
    )
    counts = {k: int(v) for k, v in re.findall(r"^# (tests|pass|fail|skipped|cancelled) (\d+)$", out, re.M)}
    print(f"node --test: {counts}")
    assert counts.get("tests", 0) > 0 and counts["pass"] == counts["tests"], out[-20000:]
    assert counts["fail"] == counts["skipped"] == counts["cancelled"] == 0, out[-20000:]
