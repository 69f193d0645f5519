"""What every external server of the tests shares: finding its installed binary, a free port,
stopping it."""

from __future__ import annotations

import os
import socket
import subprocess
from typing import NoReturn


def _missing(reason: str) -> NoReturn:
    """A failure under CI (``$CI`` set: the suite must not silently shrink there), a skip elsewhere."""
    if os.environ.get("CI"):
        raise RuntimeError(reason)
    import pytest

    pytest.skip(reason)


def installed_bin(env_var: str, default: str, executable: str, installer: str) -> str:
    """The directory holding ``executable``: ``$env_var`` or the installer's cache ``default``.

    Missing is a failure under CI and a skip elsewhere.
    """
    path = os.environ.get(env_var) or default
    if os.access(os.path.join(path, executable), os.X_OK):
        return path
    _missing(f"{executable} not found in {path}: run {installer} (or set {env_var})")


def installed_binary(env_var: str, default: str, name: str, installer: str) -> str:
    """The executable itself: ``$env_var`` or the installer's cache ``default``; ``name`` names
    it in the message. Missing is a failure under CI and a skip elsewhere."""
    path = os.environ.get(env_var) or default
    if os.access(path, os.X_OK):
        return path
    _missing(f"{name} not found at {path}: run {installer} (or set {env_var})")


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
