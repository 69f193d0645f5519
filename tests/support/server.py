"""The lifecycle the storage emulators of the tests share (MinIO, fake-gcs-server, Azurite): one
process on a loopback port with a data directory and a log file, both kept across
``stop()``/``start()`` so tests can simulate an outage and a recovery; ``pause()``/``resume()``
freeze and thaw it (a hung server); ``close()`` removes everything.

A subclass gives ``name`` (for messages), ``command()``, and either ``health_path`` or its own
``ready()``; optionally ``env()`` and ``after_start()`` (create its bucket).
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Self

from support.processes import free_port


def obstore_retry_config(retry_seconds: float) -> dict:
    """An ``obstore`` retry config with which a stopped or paused emulator fails fast instead of
    after obstore's 180 s default."""
    return {
        "max_retries": 3,
        "retry_timeout": datetime.timedelta(seconds=retry_seconds),
        "backoff": {
            "init_backoff": datetime.timedelta(milliseconds=50),
            "max_backoff": datetime.timedelta(seconds=1),
            "base": 2,
        },
    }


class ServerProcess:
    name = "server"
    health_path = ""  # GET http://127.0.0.1:PORT<health_path> answers 200 once the server is up
    ready_interval = 0.05  # seconds between readiness probes
    new_session = False  # True: own process group, every signal goes to the whole group

    def __init__(self, binary: str, data_prefix: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix=data_prefix)
        self.log_path = self.data_dir + ".log"
        self.proc: subprocess.Popen | None = None

    # -- what a server adds --------------------------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        """The process environment; ``None``: this one's."""
        return None

    def ready(self) -> bool:
        """Whether the server answers; connection errors count as not yet."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.health_path}", timeout=1) as response:
            return response.status == 200

    def after_start(self) -> None:
        """Runs once the server is ready, at every ``start()``."""

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> Self:
        """Start (or restart) the server on the same port and data dir; wait until it answers."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.command(),
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.new_session,
            )
        finally:
            log.close()
        self._wait_ready(timeout)
        self.after_start()
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.ready():
                    return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(self.ready_interval)

    def stop(self) -> None:
        """Kill the process (an abrupt outage); data and port are kept for ``start()``."""
        self.kill()

    def kill(self) -> None:
        """SIGKILL: a crash; data and port are kept for ``start()``."""
        self._halt(None)

    def terminate(self, timeout: float) -> None:
        """SIGTERM (the server may save and exit), SIGKILL if it still runs after ``timeout``."""
        self._halt(timeout)

    def _halt(self, grace: float | None) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGCONT)  # in case it was paused
            if grace is None:
                self._signal(signal.SIGKILL)
            else:
                self._signal(signal.SIGTERM)
                try:
                    self.proc.wait(grace)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        if not self.new_session:
            self.proc.send_signal(sig)
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections are accepted by the kernel but never
        answered, like a hung server; ``resume()`` thaws it."""
        assert self.proc is not None, "server not running"
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None, "server not running"
        self._signal(signal.SIGCONT)

    def close(self) -> None:
        """Kill the process and remove its data dir and log (nothing is left to save)."""
        self.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        try:
            os.unlink(self.log_path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return ""
