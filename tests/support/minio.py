"""A real MinIO server on loopback for tests: ``MinioServer().start()`` ... ``.close()``.
``MinioServer(host=...)`` serves the S3 API on another address the run owns instead (e.g. a real
node's bridge, where pods reach it); the console stays on loopback.

The binary is ``$MEMOTURN_MINIO_BIN`` or the one ``.ci/install-minio`` builds into
``~/.cache/memoturn/minio-<version>/minio``. Missing binary: an error under CI (``$CI`` set),
otherwise the test is skipped. The server keeps its port and data directory across
``stop()``/``start()``, so tests can simulate an outage and a recovery; ``pause()``/``resume()``
freeze and thaw it (a hung server).
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request

from support.processes import free_port, installed_binary
from support.server import ServerProcess

MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"  # keep in sync with .ci/install-minio
DEFAULT_BIN = os.path.expanduser(f"~/.cache/memoturn/minio-{MINIO_VERSION}/minio")


def minio_binary() -> str:
    """Path of the MinIO binary; skip (or fail under CI) when it is not installed."""
    return installed_binary("MEMOTURN_MINIO_BIN", DEFAULT_BIN, "MinIO binary", ".ci/install-minio")


class MinioServer(ServerProcess):
    """One ``minio server`` process with one bucket; ``endpoint``, credentials, ``store_url()``.
    ``stop()`` kills it (an abrupt outage)."""

    name = "MinIO"
    health_path = "/minio/health/live"

    def __init__(self, bucket: str = "memoturn-test", *, binary: str | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(binary or minio_binary(), "memoturn-minio-")
        self.host = host
        self.bucket = bucket
        self.access_key = "memoturn"
        self.secret_key = "memoturn-secret-key"
        self.region = "us-east-1"
        self.console_port = free_port()
        self.endpoint = f"http://{host}:{self.port}"
        self._bucket_created = False

    def command(self) -> list[str]:
        return [
            self.binary,
            "server",
            self.data_dir,
            "--quiet",
            "--address",
            f"{self.host}:{self.port}",
            "--console-address",
            f"127.0.0.1:{self.console_port}",
        ]

    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            MINIO_ROOT_USER=self.access_key,
            MINIO_ROOT_PASSWORD=self.secret_key,
            MINIO_BROWSER="off",
            MINIO_UPDATE="off",
            MINIO_REGION=self.region,
        )

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.endpoint}{self.health_path}", timeout=1) as response:
            return bool(response.status == 200)

    def after_start(self) -> None:
        if not self._bucket_created:
            client = self.client()
            client.create_bucket(Bucket=self.bucket)
            client.close()
            self._bucket_created = True

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
