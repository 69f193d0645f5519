"""What every external server of the tests shares: finding its installed binary, stopping it."""

from __future__ import annotations

import os
import subprocess


def installed_bin(env_var: str, default: str, executable: str, installer: str) -> str:
    """The directory holding ``executable``: ``$env_var`` or the installer's cache ``default``.

    Missing is a failure under CI (``$CI`` set: the suite must not silently shrink there) and
    a skip elsewhere.
    """
    path = os.environ.get(env_var) or default
    if os.access(os.path.join(path, executable), os.X_OK):
        return path
    reason = f"{executable} not found in {path}: run {installer} (or set {env_var})"
    if os.environ.get("CI"):
        raise RuntimeError(reason)
    import pytest

    pytest.skip(reason)


def terminate(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``; reaps it either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
