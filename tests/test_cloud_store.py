"""CloudStore (obstore) on a real MinIO: URL parsing, error mapping, the one-try rule for
conditional PUTs, interoperation with the boto3 backend. The ObjectStore contract itself runs
on CloudStore in ``test_store_contract`` (its ``s3`` backend is what ``open_store`` opens).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from memoturn.storage.store import ConditionFailed, ObjectNotFound, StoreUnavailable
from memoturn.storage.store.cloud import CloudStore


@pytest.fixture
def store(s3_store) -> CloudStore:
    assert isinstance(s3_store, CloudStore)  # the contract suite runs on it as its "s3" backend
    return s3_store


# -- interoperability and prefixes ------------------------------------------------------------------


def test_prefix_is_applied_to_every_key(minio, store):
    client = minio.client()
    try:
        store.put("x/y", b"1")
        raw = [o["Key"] for o in client.list_objects_v2(Bucket=minio.bucket, Prefix=store.prefix)["Contents"]]
        assert raw == [store.prefix + "x/y"]
        other = CloudStore.from_url(minio.store_url(store.prefix + "nested"))
        other.put("k", b"inner")
        store.put("k", b"outer")
        assert other.get("k")[0] == b"inner"
        assert other.list("").keys == ["k"]
        assert store.list("").keys == ["k", "nested/k", "x/y"]
    finally:
        client.close()


def test_etags_and_cas_interoperate_with_boto3_backend(minio, store):
    """Same bucket through S3Store (boto3) and CloudStore: same ETags, CAS across the two."""
    from memoturn.storage.store.s3 import S3Store

    boto = S3Store.from_url(minio.store_url(store.prefix))
    try:
        e1 = boto.put("m", b"v1", if_none_match=True)
        assert store.get("m") == (b"v1", e1)
        e2 = store.put("m", b"v2", if_match=e1)
        assert boto.get("m") == (b"v2", e2)
        with pytest.raises(ConditionFailed):
            boto.put("m", b"v3", if_match=e1)
        with pytest.raises(ConditionFailed):
            store.put("m", b"v3", if_match=e1)
    finally:
        boto.close()


def test_list_string_prefix_pages_from_the_middle(store):
    keys = [f"db/{name}/{i}" for name in ("alpha", "beta", "betamax", "gamma") for i in range(5)]
    for k in keys:
        store.put(k, b"x")
    want = [k for k in sorted(keys) if k.startswith("db/beta")]
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list("db/beta", start_after=cursor, limit=3)
        seen += page.keys
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == want
    page = store.list("db/b", delimiter="/", start_after="db/beta/3")
    assert (page.keys, page.prefixes) == ([], ["db/betamax/"])
    assert store.list("db/0").keys == []  # a bound whose last character steps onto "/"


def test_non_slash_delimiter_is_rejected(store):
    with pytest.raises(ValueError):
        store.list("", delimiter="|")


# -- URL parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "s3:///no-bucket",
        "s3://bucket/p?endpont=http://typo",
        "s3://bucket/p?endpoint=http://a&endpoint=http://b",
        "s3://bucket/p?attempts=0",
        "s3://bucket/p?attempts=two",
        "s3://bucket/p?read_timeout=-1",
        "s3://bucket/p?connect_timeout=soon",
        "s3://bucket/p?endpoint=ftp://host",
        "s3://bucket/a//b",
        "s3://bucket/p#frag",
        "gs://bucket/p?anonymous=perhaps",
        "gs://bucket/p?region=eu",
        "az://container/p?account=acct&emulator=maybe",
        "az://container/p?profile=x",
        "file:///tmp/x",
        "http://host/bucket",
        "memory:///",
    ],
)
def test_url_errors(url):
    with pytest.raises(ValueError):
        CloudStore.from_url(url)


def test_unknown_parameter_message_names_it():
    with pytest.raises(ValueError, match=r"endpont.*known: \['attempts'"):
        CloudStore.from_url("s3://bucket/p?endpont=http://typo")


def test_azure_needs_an_account(monkeypatch):
    for name in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="account"):
        CloudStore.from_url("az://container/p")


def test_gcs_and_azure_urls_build_stores(monkeypatch):
    """Building a store does not touch the network; the options land in obstore's config."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    gs = CloudStore.from_url("gs://bkt/some/prefix?endpoint=http://127.0.0.1:4443")
    assert (gs.kind, gs.bucket, gs.prefix) == ("gs", "bkt", "some/prefix/")
    assert gs._store.config.get("base_url") == "http://127.0.0.1:4443"
    assert str(gs._store.config.get("skip_signature")).lower() == "true"  # an emulator: unsigned
    assert gs._cas.retry_config["max_retries"] == 0
    signed = CloudStore.from_url("gs://bkt/p?endpoint=http://127.0.0.1:4443&anonymous=false")
    assert "skip_signature" not in signed._store.config

    az = CloudStore.from_url("az://ctr/p?emulator=true&endpoint=http://127.0.0.1:10000/devstoreaccount1")
    assert (az.kind, az.bucket, az.prefix) == ("az", "ctr", "p/")
    assert az._store.config["account_name"] == "devstoreaccount1"
    assert az._store.config["endpoint"] == "http://127.0.0.1:10000/devstoreaccount1"
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
    )
    conn = CloudStore.from_url("az://ctr/p")
    assert conn._store.config["account_name"] == "acct"
    assert conn._store.config["account_key"] == "a2V5"


def test_gcs_if_match_without_generation_cannot_hold(monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    gs = CloudStore.from_url("gs://bkt/p?endpoint=http://127.0.0.1:1")
    with pytest.raises(ConditionFailed):
        gs.put("k", b"x", if_match=hashlib.md5(b"x").hexdigest())


def test_obstore_local_store_cannot_replace_conditionally(tmp_path):
    """Why file:// is not offered: LocalStore implements create but not If-Match replace."""
    import obstore
    from obstore.store import LocalStore

    local = LocalStore(str(tmp_path))
    first = obstore.put(local, "k", b"1")
    with pytest.raises(NotImplementedError):
        obstore.put(local, "k", b"2", mode={"e_tag": first["e_tag"]})


# -- error mapping against the real MinIO ------------------------------------------------------------


def _operations(store: CloudStore, etag: str) -> dict[str, object]:
    return {
        "get": lambda: store.get("k"),
        "put": lambda: store.put("k", b"x"),
        "create": lambda: store.put("new", b"x", if_none_match=True),
        "replace": lambda: store.put("k", b"x", if_match=etag),
        "list": lambda: store.list(""),
        "list-delimiter": lambda: store.list("", delimiter="/"),
        "delete": lambda: store.delete("k"),
    }


def _assert_unavailable(store: CloudStore, etag: str, cause: str) -> None:
    for name, operation in _operations(store, etag).items():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as info:
            operation()  # type: ignore[operator]
        assert cause in str(info.value), (name, str(info.value))
        assert time.monotonic() - started < 8, name


def test_wrong_secret_key_is_bad_credentials(minio, store, monkeypatch):
    etag = store.put("k", b"v")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    wrong = CloudStore.from_url(minio.store_url(store.prefix))
    _assert_unavailable(wrong, etag, "bad credentials")


def test_unknown_access_key_is_bad_credentials(minio, store, monkeypatch):
    etag = store.put("k", b"v")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    _assert_unavailable(CloudStore.from_url(minio.store_url(store.prefix)), etag, "bad credentials")


def test_missing_bucket_is_not_a_missing_object_nor_a_lost_race(minio):
    url = minio.store_url("p").replace(f"s3://{minio.bucket}/", "s3://no-such-bucket/")
    missing = CloudStore.from_url(url)
    _assert_unavailable(missing, hashlib.md5(b"v").hexdigest(), "bucket not found")


def test_closed_port_is_endpoint_unreachable(minio):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        closed = CloudStore.from_url(f"s3://{minio.bucket}/p?endpoint=http://127.0.0.1:{port}&region=us-east-1")
        _assert_unavailable(closed, hashlib.md5(b"v").hexdigest(), "endpoint unreachable")


# -- one try for conditional PUTs -----------------------------------------------------------------------


class _FakeS3(ThreadingHTTPServer):
    """Answers every request the same way and counts them: "503", "drop" or "hang"."""

    daemon_threads = True

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.requests: list[str] = []
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _FakeHandler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeHandler(BaseHTTPRequestHandler):
    server: _FakeS3
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.requests.append(f"{self.command} {self.path}")
        if self.server.behaviour == "503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.server.behaviour == "drop":
            self.close_connection = True
            self.connection.close()  # the request was received; the answer is lost
        else:
            self.server.release.wait(30)
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = _answer


@pytest.fixture
def fake_s3(request, monkeypatch) -> Iterator[_FakeS3]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "fake")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    server = _FakeS3(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("fake_s3", ["503", "drop"], indirect=True)
def test_conditional_puts_are_sent_exactly_once(fake_s3):
    store = CloudStore.from_url(f"s3://bkt/p?endpoint={fake_s3.endpoint}&region=us-east-1&attempts=3")
    for condition in ({"if_none_match": True}, {"if_match": "0123abcd"}):
        fake_s3.requests.clear()
        with pytest.raises(StoreUnavailable) as info:
            store.put("manifest", b"v", **condition)  # type: ignore[arg-type]
        assert not isinstance(info.value, ConditionFailed)
        assert fake_s3.requests == ["PUT /bkt/p/manifest"], (condition, fake_s3.requests)
    # Unconditional requests are idempotent and retried (attempts=3: three tries).
    fake_s3.requests.clear()
    with pytest.raises(StoreUnavailable):
        store.put("segment", b"v")
    assert fake_s3.requests == ["PUT /bkt/p/segment"] * 3
    fake_s3.requests.clear()
    with pytest.raises(StoreUnavailable):
        store.get("segment")
    assert len(fake_s3.requests) == 3


@pytest.mark.parametrize("fake_s3", ["hang"], indirect=True)
def test_hung_server_times_out_on_conditional_put(fake_s3):
    store = CloudStore.from_url(f"s3://bkt/p?endpoint={fake_s3.endpoint}&read_timeout=1&attempts=1")
    for operation in (
        lambda: store.put("manifest", b"v2", if_match="0123abcd"),
        lambda: store.put("new", b"v", if_none_match=True),
        lambda: store.get("manifest"),
    ):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="timed out"):
            operation()
        assert time.monotonic() - started < 5
    assert fake_s3.requests == ["PUT /bkt/p/manifest", "PUT /bkt/p/new", "GET /bkt/p/manifest"]


def test_outage_raises_store_unavailable_and_recovers():
    """A stopped MinIO surfaces as StoreUnavailable within seconds; a restart heals it."""
    from support.minio import MinioServer

    with MinioServer(bucket="cloud-outage") as server, pytest.MonkeyPatch.context() as mp:
        for name, value in server.credentials.items():
            mp.setenv(name, value)
        store = CloudStore.from_url(server.store_url("db"))
        etag = store.put("manifest", b"v1", if_none_match=True)
        server.stop()
        _assert_unavailable(store, etag, "endpoint unreachable")
        server.start()
        assert store.get("manifest") == (b"v1", etag)
        e2 = store.put("manifest", b"v2", if_match=etag)
        assert store.get("manifest") == (b"v2", e2)
        with pytest.raises(ObjectNotFound):
            store.get("absent")


def test_a_secret_in_the_store_url_is_redacted_for_logs():
    from memoturn.storage.store.cloud_url import redact

    url = "az://c/p?account=a&key=c2VjcmV0Lw%3D%3D&endpoint=http://127.0.0.1:1/a"
    out = redact(url)
    assert "c2VjcmV0" not in out and "key=***" in out and "account=a" in out and "endpoint=http://127.0.0.1:1/a" in out
    assert redact("s3://b/p") == "s3://b/p"
