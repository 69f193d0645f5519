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
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

AZURITE_VERSION = "3.37.0"  # keep in sync with .ci/install-azurite
DEFAULT_BIN = os.path.expanduser(f"~/.cache/memoturn/azurite-{AZURITE_VERSION}/node_modules/.bin/azurite-blob")
# The development storage account every Azurite (and the old Storage Emulator) accepts; see
# https://learn.microsoft.com/azure/storage/common/storage-use-azurite#well-known-storage-account-and-key
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
API_VERSION = "2021-08-06"


def azurite_binary() -> str:
    """Path of ``azurite-blob``; skip (or fail under CI) when it is not installed."""
    path = os.environ.get("MEMOTURN_AZURITE_BIN") or DEFAULT_BIN
    if os.access(path, os.X_OK):
        return path
    reason = f"Azurite not found at {path}: run .ci/install-azurite (or set MEMOTURN_AZURITE_BIN)"
    if os.environ.get("CI"):
        raise RuntimeError(reason)
    import pytest

    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AzuriteServer:
    """One ``azurite-blob`` process with one container; ``endpoint``, credentials, ``store_url()``."""

    def __init__(self, container: str = "memoturn-test", *, binary: str | None = None) -> None:
        self.binary = binary or azurite_binary()
        self.container = container
        self.account = DEV_ACCOUNT
        self.key = DEV_KEY
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/{self.account}"
        self.data_dir = tempfile.mkdtemp(prefix="memoturn-azurite-")
        self.log_path = self.data_dir + ".log"
        self.proc: subprocess.Popen | None = None
        self._container_created = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> AzuriteServer:
        """Start (or restart) the server on the same port and data dir; wait until it answers."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [
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
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # node may fork; stop() kills the whole group
            )
        finally:
            log.close()
        self._wait_ready(timeout)
        if not self._container_created:
            status, _, body = self.request("PUT", f"/{self.container}", {"restype": "container"})
            if status not in (201, 409):  # 409: ContainerAlreadyExists (data dir reused)
                self.stop()
                raise RuntimeError(f"Azurite: creating container {self.container}: HTTP {status} {body[:300]!r}")
            self._container_created = True
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"Azurite exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                # Any HTTP answer (an unauthenticated list is a 403) means the server is up.
                self.request("GET", "", {"comp": "list"}, sign=False, timeout=1)
                return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Azurite not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (an outage); data and port are kept for ``start()``.

        Azurite keeps blob metadata in a LokiJS database it saves every 5 s (autosaveInterval
        in LokiBlobMetadataStore), so a SIGKILL loses the acknowledged writes of the last few
        seconds. ``stop()`` therefore sends SIGTERM (Azurite saves and exits) and kills only
        after ``timeout``; ``kill()`` is the abrupt crash, losses included."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGCONT)  # in case it was paused
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash; writes acknowledged in the last ~5 s may be lost (see ``stop()``)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGCONT)
            self._signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
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
        self.kill()  # the data dir goes too, nothing to save
        shutil.rmtree(self.data_dir, ignore_errors=True)
        try:
            os.unlink(self.log_path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> AzuriteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- access --------------------------------------------------------------------------

    def store_url(self, prefix: str = "") -> str:
        query = urllib.parse.urlencode({"endpoint": self.endpoint, "account": self.account, "key": self.key})
        return f"az://{self.container}/{prefix.strip('/')}?{query}"

    def obstore(self, prefix: str | None = None, *, retry_seconds: float = 5.0):
        """An ``obstore`` AzureStore on the container, for assertions that bypass Memoturn."""
        import datetime

        from obstore.store import AzureStore

        return AzureStore(
            self.container,
            prefix=prefix,
            account_name=self.account,
            account_key=self.key,
            endpoint=self.endpoint,
            client_options={"allow_http": True},
            # A stopped or paused emulator fails fast instead of after obstore's 180 s default.
            retry_config={
                "max_retries": 3,
                "retry_timeout": datetime.timedelta(seconds=retry_seconds),
                "backoff": {
                    "init_backoff": datetime.timedelta(milliseconds=50),
                    "max_backoff": datetime.timedelta(seconds=1),
                    "base": 2,
                },
            },
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

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return ""
