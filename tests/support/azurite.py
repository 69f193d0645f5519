"""A real Azurite (Azure Blob Storage emulator) on loopback for tests: ``AzuriteServer().start()``
... ``.close()``.

The executable is ``$MEMOTURN_AZURITE_BIN`` or the ``azurite-blob`` that ``.ci/install-azurite``
installs into ``~/.cache/memoturn/azurite-<version>/node_modules/.bin/``. Missing executable: an
error under CI (``$CI`` set), otherwise the test is skipped. Azurite serves the well-known
development account ``devstoreaccount1`` (its documented key is public, not a secret), path style:
``http://127.0.0.1:PORT/devstoreaccount1/<container>/<blob>``. The server keeps its port and data
directory across ``stop()``/``start()``, so tests can simulate an outage and a recovery;
``pause()``/``resume()`` freeze and thaw it (a hung server).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import os
import urllib.error
import urllib.parse
import urllib.request

from support.processes import installed_binary
from support.server import ServerProcess, obstore_retry_config

AZURITE_VERSION = "3.37.0"  # keep in sync with .ci/install-azurite
DEFAULT_BIN = os.path.expanduser(f"~/.cache/memoturn/azurite-{AZURITE_VERSION}/node_modules/.bin/azurite-blob")
# The development storage account every Azurite (and the old Storage Emulator) accepts; see
# https://learn.microsoft.com/azure/storage/common/storage-use-azurite#well-known-storage-account-and-key
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
API_VERSION = "2021-08-06"


def azurite_binary() -> str:
    """Path of ``azurite-blob``; skip (or fail under CI) when it is not installed."""
    return installed_binary("MEMOTURN_AZURITE_BIN", DEFAULT_BIN, "Azurite", ".ci/install-azurite")


class AzuriteServer(ServerProcess):
    """One ``azurite-blob`` process with one container; ``endpoint``, credentials, ``store_url()``."""

    name = "Azurite"
    ready_interval = 0.1
    new_session = True  # node may fork; every signal goes to the whole group

    def __init__(self, container: str = "memoturn-test", *, binary: str | None = None) -> None:
        super().__init__(binary or azurite_binary(), "memoturn-azurite-")
        self.container = container
        self.account = DEV_ACCOUNT
        self.key = DEV_KEY
        self.endpoint = f"http://127.0.0.1:{self.port}/{self.account}"
        self._container_created = False

    def command(self) -> list[str]:
        return [
            self.binary,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--location",
            self.data_dir,
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]

    def ready(self) -> bool:
        # Any HTTP answer (an unauthenticated list is a 403) means the server is up.
        self.request("GET", "", {"comp": "list"}, sign=False, timeout=1)
        return True

    def after_start(self) -> None:
        if not self._container_created:
            status, _, body = self.request("PUT", f"/{self.container}", {"restype": "container"})
            if status not in (201, 409):  # 409: ContainerAlreadyExists (data dir reused)
                self.stop()
                raise RuntimeError(f"Azurite: creating container {self.container}: HTTP {status} {body[:300]!r}")
            self._container_created = True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (an outage); data and port are kept for ``start()``.

        Azurite keeps blob metadata in a LokiJS database it saves every 5 s (autosaveInterval
        in LokiBlobMetadataStore), so a SIGKILL loses the acknowledged writes of the last few
        seconds. ``stop()`` therefore sends SIGTERM (Azurite saves and exits) and kills only
        after ``timeout``; ``kill()`` is the abrupt crash, losses included."""
        self.terminate(timeout)

    # -- access --------------------------------------------------------------------------

    def store_url(self, prefix: str = "") -> str:
        query = urllib.parse.urlencode({"endpoint": self.endpoint, "account": self.account, "key": self.key})
        return f"az://{self.container}/{prefix.strip('/')}?{query}"

    def obstore(self, prefix: str | None = None, *, retry_seconds: float = 5.0):
        """An ``obstore`` AzureStore on the container, for assertions that bypass Memoturn."""
        from obstore.store import AzureStore

        return AzureStore(
            self.container,
            prefix=prefix,
            account_name=self.account,
            account_key=self.key,
            endpoint=self.endpoint,
            client_options={"allow_http": True},
            retry_config=obstore_retry_config(retry_seconds),
        )

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        sign: bool = True,
        timeout: float = 10.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """A raw Blob REST call (``path`` below the account, e.g. ``/container/blob``), signed
        with SharedKey; returns status, headers (lower-case names) and body, HTTP errors included."""
        query = query or {}
        hdrs = {
            "x-ms-date": email.utils.formatdate(usegmt=True),
            "x-ms-version": API_VERSION,
            **(headers or {}),
        }
        if body and method == "PUT" and "x-ms-blob-type" not in hdrs and "restype" not in query:
            hdrs["x-ms-blob-type"] = "BlockBlob"
        data = body if method in ("PUT", "POST") else None
        if data is not None:  # urllib would add a form content type, which is signed
            hdrs.setdefault("Content-Type", "application/octet-stream")
        url_path = f"/{self.account}{path}"
        if sign:
            hdrs["Authorization"] = self._shared_key(method, url_path, query, hdrs, len(body))
        url = f"http://127.0.0.1:{self.port}{urllib.parse.quote(url_path)}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, data=data, method=method)
        for name, value in hdrs.items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()

    def _shared_key(
        self, method: str, url_path: str, query: dict[str, str], headers: dict[str, str], length: int
    ) -> str:
        lower = {k.lower(): v for k, v in headers.items()}
        standard = [
            "content-encoding",
            "content-language",
            "content-length",
            "content-md5",
            "content-type",
            "date",
            "if-modified-since",
            "if-match",
            "if-none-match",
            "if-unmodified-since",
            "range",
        ]
        lower["content-length"] = str(length) if length else ""
        lines = [method] + [lower.get(name, "") for name in standard]
        canonical_headers = "".join(
            f"{name}:{lower[name].strip()}\n" for name in sorted(lower) if name.startswith("x-ms-")
        )
        resource = f"/{self.account}{url_path}"
        for name in sorted(query):
            resource += f"\n{name.lower()}:{query[name]}"
        to_sign = "\n".join(lines) + "\n" + canonical_headers + resource
        digest = hmac.new(base64.b64decode(self.key), to_sign.encode(), hashlib.sha256).digest()
        return f"SharedKey {self.account}:{base64.b64encode(digest).decode()}"
