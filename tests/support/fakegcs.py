"""A real fake-gcs-server (Google Cloud Storage emulator) on loopback for tests:
``FakeGcsServer().start()`` ... ``.close()``.

The binary is ``$MEMOTURN_FAKEGCS_BIN`` or the one ``.ci/install-fake-gcs-server`` builds into
``~/.cache/memoturn/fake-gcs-server-<version>/fake-gcs-server``. Missing binary: an error under CI
(``$CI`` set), otherwise the test is skipped. The server uses the filesystem backend and keeps its
port and data directory across ``stop()``/``start()``, so tests can simulate an outage and a
recovery; ``pause()``/``resume()`` freeze and thaw it (a hung server).

Known gap (fake-gcs-server v1.56.1): the XML API has no object upload. ``PUT /<bucket>/<object>``,
which the Rust ``object_store`` (so ``obstore``) GCS client uses for every write, answers
``400 invalid uploadType`` (fsouza/fake-gcs-server#331; PR #1164 adding it is unmerged). Reads,
lists and deletes through obstore work; writes only through the JSON API (``upload()`` here),
which honours ``ifGenerationMatch``. See tests/test_emulators.py.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

from support.processes import installed_binary
from support.server import ServerProcess, obstore_retry_config

FAKEGCS_VERSION = "v1.56.1"  # keep in sync with .ci/install-fake-gcs-server
DEFAULT_BIN = os.path.expanduser(f"~/.cache/memoturn/fake-gcs-server-{FAKEGCS_VERSION}/fake-gcs-server")


def fakegcs_binary() -> str:
    """Path of the fake-gcs-server binary; skip (or fail under CI) when it is not installed."""
    return installed_binary("MEMOTURN_FAKEGCS_BIN", DEFAULT_BIN, "fake-gcs-server", ".ci/install-fake-gcs-server")


class FakeGcsServer(ServerProcess):
    """One ``fake-gcs-server`` process with one bucket; ``endpoint``, ``store_url()``.

    ``stop()`` kills it (an abrupt outage). The filesystem backend writes each object before
    answering, so nothing acknowledged is lost; the memory backend loses everything (the bucket
    is created again at ``start()``)."""

    name = "fake-gcs-server"
    health_path = "/_internal/healthcheck"

    def __init__(
        self, bucket: str = "memoturn-test", *, binary: str | None = None, backend: str = "filesystem"
    ) -> None:
        super().__init__(binary or fakegcs_binary(), "memoturn-fakegcs-")
        self.bucket = bucket
        self.backend = backend  # "filesystem" (survives stop()/start()) or "memory"
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._bucket_created = False

    def command(self) -> list[str]:
        return [
            self.binary,
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(self.port),
            # The XML API (path style /<bucket>/<object>, what obstore speaks) answers
            # only requests whose Host is the public host.
            "-public-host",
            f"127.0.0.1:{self.port}",
            "-external-url",
            self.endpoint,
            "-backend",
            self.backend,
            "-filesystem-root",
            os.path.join(self.data_dir, "storage"),
            "-log-level",
            "warn",
        ]

    def after_start(self) -> None:
        if not self._bucket_created or self.backend == "memory":
            status, body = self.json_request("POST", "/storage/v1/b", {"name": self.bucket})
            if status not in (200, 409):  # 409: the bucket is already in the data dir
                self.stop()
                raise RuntimeError(f"fake-gcs-server: creating bucket {self.bucket}: {status} {body}")
            self._bucket_created = True

    # -- access --------------------------------------------------------------------------

    def store_url(self, prefix: str = "") -> str:
        query = urllib.parse.urlencode({"endpoint": self.endpoint})
        return f"gs://{self.bucket}/{prefix.strip('/')}?{query}"

    def obstore(self, prefix: str | None = None, *, retry_seconds: float = 5.0):
        """An ``obstore`` GCSStore on the bucket (a dummy bearer token: the emulator checks no
        credentials), for assertions that bypass Memoturn. Writes fail: see the module doc."""
        from obstore.store import GCSStore

        return GCSStore(
            self.bucket,
            prefix=prefix,
            base_url=self.endpoint,
            bearer_token="fake-gcs-server",
            client_options={"allow_http": True},
            retry_config=obstore_retry_config(retry_seconds),
        )

    def json_request(
        self, method: str, path: str, payload: object | None = None, *, timeout: float = 10.0
    ) -> tuple[int, dict]:
        """A JSON API call (``path`` from the root, e.g. ``/storage/v1/b``): status and body."""
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(f"{self.endpoint}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        return self._send(req, timeout)

    def upload(
        self, name: str, data: bytes, *, if_generation_match: int | None = None, timeout: float = 10.0
    ) -> tuple[int, dict]:
        """A JSON API media upload (``uploadType=media``), optionally with ``ifGenerationMatch``
        (0: only if absent): status and the object resource (``generation``, ``etag``...)."""
        query = {"uploadType": "media", "name": name}
        if if_generation_match is not None:
            query["ifGenerationMatch"] = str(if_generation_match)
        url = (
            f"{self.endpoint}/upload/storage/v1/b/{urllib.parse.quote(self.bucket, safe='')}/o?"
            + urllib.parse.urlencode(query)
        )
        req = urllib.request.Request(url, data=data, method="POST")
        req.add_header("Content-Type", "application/octet-stream")
        return self._send(req, timeout)

    @staticmethod
    def _send(req: urllib.request.Request, timeout: float) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"raw": raw.decode(errors="replace")}
        return status, body
