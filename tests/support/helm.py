"""Helm from the npm registry (``.ci/install-helm``), run with throwaway homes; the chart rendered."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from support.processes import installed_bin

HELM_PACKAGE_VERSION = "2.2.2"  # keep in sync with PKG_VERSION in .ci/install-helm
DEFAULT_BIN = os.path.expanduser(f"~/.cache/memoturn/helm-{HELM_PACKAGE_VERSION}/bin")
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "memoturn"
_HOME = tempfile.mkdtemp(prefix="memoturn-helm-")


def helm_bin_dir() -> str:
    return installed_bin("MEMOTURN_HELM_BIN", DEFAULT_BIN, "helm", ".ci/install-helm")


def helm(*args: str, kubeconfig: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run helm with its cache, config and data in a temporary directory (never the user's)."""
    home = Path(_HOME)
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": kubeconfig or str(home / "no-kubeconfig"),
    }
    return subprocess.run(
        [os.path.join(helm_bin_dir(), "helm"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def render(release: str, namespace: str, *args: str, crds: bool = True) -> list[dict[str, Any]]:
    """``helm template`` → the objects (CRDs first unless ``crds=False``), in Helm's order."""
    out = helm("template", release, str(CHART), "--namespace", namespace, *(["--include-crds"] if crds else []), *args)
    if out.returncode != 0:
        raise AssertionError(f"helm template failed: {out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]
