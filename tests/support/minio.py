"""A real MinIO server on loopback for tests: ``MinioServer().start()`` ... ``.close()``.

The binary is ``$MEMOTURN_MINIO_BIN`` or the one ``.ci/install-minio`` builds into
``~/.cache/memoturn/minio-<version>/minio``. Missing binary: an error under CI (``$CI`` set),
otherwise the test is skipped. The server keeps its port and data directory across
``stop()``/``start()``, so tests can simulate an outage and a recovery; ``pause()``/``resume()``
freeze and thaw it (a hung server).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"  # keep in sync with .ci/install-minio
DEFAULT_BIN = os.path.expanduser(f"~/.cache/memoturn/minio-{MINIO_VERSION}/minio")


def minio_binary() -> str:
    """Path of the MinIO binary; skip (or fail under CI) when it is not installed."""
    path = os.environ.get("MEMOTURN_MINIO_BIN") or DEFAULT_BIN
    if os.access(path, os.X_OK):
        return path
    reason = f"MinIO binary not found at {path}: run .ci/install-minio (or set MEMOTURN_MINIO_BIN)"
    if os.environ.get("CI"):
        raise RuntimeError(reason)
    import pytest

    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MinioServer:
    """One ``minio server`` process with one bucket; ``endpoint``, credentials, ``store_url()``."""

    def __init__(self, bucket: str = "memoturn-test", *, binary: str | None = None) -> None:
        self.binary = binary or minio_binary()
        self.bucket = bucket
        self.access_key = "memoturn"
        self.secret_key = "memoturn-secret-key"
        self.region = "us-east-1"
        self.port = _free_port()
        self.console_port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.data_dir = tempfile.mkdtemp(prefix="memoturn-minio-")
        self.log_path = self.data_dir + ".log"
        self.proc: subprocess.Popen | None = None
        self._bucket_created = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> MinioServer:
        """Start (or restart) the server on the same port and data dir; wait until live."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        env = dict(
            os.environ,
            MINIO_ROOT_USER=self.access_key,
            MINIO_ROOT_PASSWORD=self.secret_key,
            MINIO_BROWSER="off",
            MINIO_UPDATE="off",
            MINIO_REGION=self.region,
        )
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "server",
                    self.data_dir,
                    "--quiet",
                    "--address",
                    f"127.0.0.1:{self.port}",
                    "--console-address",
                    f"127.0.0.1:{self.console_port}",
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        self._wait_ready(timeout)
        if not self._bucket_created:
            client = self.client()
            client.create_bucket(Bucket=self.bucket)
            client.close()
            self._bucket_created = True
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.endpoint}/minio/health/live"
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"MinIO exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"MinIO not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the process (an abrupt outage); data and port are kept for ``start()``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case it was paused
            self.proc.kill()
        self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections are accepted by the kernel but never
        answered, like a hung server; ``resume()`` thaws it."""
        assert self.proc is not None, "server not running"
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None, "server not running"
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        try:
            os.unlink(self.log_path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> MinioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- access --------------------------------------------------------------------------

    @property
    def credentials(self) -> dict[str, str]:
        """Environment variables that boto3's default chain picks up."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }

    def store_url(self, prefix: str = "") -> str:
        query = urllib.parse.urlencode({"endpoint": self.endpoint, "region": self.region})
        return f"s3://{self.bucket}/{prefix.strip('/')}?{query}"

    def client(self):
        """A plain boto3 S3 client for assertions that bypass the store."""
        import boto3
        import botocore.config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return ""
