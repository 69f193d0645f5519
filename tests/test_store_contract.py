"""The ObjectStore contract, run against every backend: file; S3 on a real MinIO through the node's
client (obstore) and through boto3; Azure Blob on a real Azurite. (GCS: fake-gcs-server cannot take
obstore's uploads, see tests/test_emulators.py.)

The conditional-write tests are the ones the manifest compare-and-swap relies on: of N
concurrent ``If-None-Match: *`` creators exactly one wins, and of N concurrent ``If-Match``
replacers from the same ETag exactly one wins; the rest get ConditionFailed.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from memoturn.storage.store import ConditionFailed, ObjectNotFound, ObjectStore, StoreUnavailable, open_store

N = 16


@pytest.fixture(params=["file", "s3", "boto3", "azure"])
def store(request) -> ObjectStore:
    return request.getfixturevalue(f"{request.param}_store")


# -- get / put / delete -----------------------------------------------------------------------


def test_put_get_roundtrip(store):
    etag = store.put("a/b/c.json", b'{"x": 1}')
    data, got_etag = store.get("a/b/c.json")
    assert data == b'{"x": 1}'
    assert got_etag == etag
    assert '"' not in etag
    if not store.url.startswith("az://"):  # Azure's ETag is opaque; S3's single-part ETag (and file's) is the MD5
        assert etag == hashlib.md5(b'{"x": 1}').hexdigest()


def test_binary_and_empty_objects(store):
    blob = bytes(range(256)) * 1000
    store.put("bin", blob)
    store.put("empty", b"")
    assert store.get("bin")[0] == blob
    assert store.get("empty")[0] == b""


def test_unconditional_put_overwrites(store):
    first = store.put("k", b"one")
    second = store.put("k", b"two")
    assert first != second
    assert store.get("k") == (b"two", second)


def test_get_missing(store):
    with pytest.raises(ObjectNotFound):
        store.get("nope")
    store.put("dir/x", b"1")
    with pytest.raises(ObjectNotFound):
        store.get("dir/y")


def test_delete(store):
    store.put("d/x", b"1")
    store.delete("d/x")
    with pytest.raises(ObjectNotFound):
        store.get("d/x")
    store.delete("d/x")  # absent: not an error
    store.delete("never/existed")
    assert store.list("d/").keys == []


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/./b", "../x", "a/.."])
def test_invalid_keys(store, key):
    with pytest.raises(ValueError):
        store.put(key, b"x")
    with pytest.raises(ValueError):
        store.get(key)


# -- conditional writes -------------------------------------------------------------------------


def test_if_none_match_creates_once(store):
    etag = store.put("m", b"v1", if_none_match=True)
    with pytest.raises(ConditionFailed):
        store.put("m", b"v2", if_none_match=True)
    assert store.get("m") == (b"v1", etag)


def test_if_match_replaces_only_current_etag(store):
    e1 = store.put("m", b"v1", if_none_match=True)
    e2 = store.put("m", b"v2", if_match=e1)
    assert e2 != e1
    with pytest.raises(ConditionFailed):
        store.put("m", b"v3", if_match=e1)  # stale
    assert store.get("m") == (b"v2", e2)
    e3 = store.put("m", b"v3", if_match=f'"{e2}"')  # a quoted ETag is accepted too
    assert store.get("m") == (b"v3", e3)


def test_if_match_on_missing_key_fails(store):
    with pytest.raises(ConditionFailed):
        store.put("absent", b"x", if_match=hashlib.md5(b"x").hexdigest())
    with pytest.raises(ObjectNotFound):
        store.get("absent")


def test_if_none_match_after_delete_creates_again(store):
    store.put("m", b"v1", if_none_match=True)
    store.delete("m")
    store.put("m", b"v2", if_none_match=True)
    assert store.get("m")[0] == b"v2"


def test_conditions_are_exclusive(store):
    with pytest.raises(ValueError):
        store.put("m", b"x", if_match="abc", if_none_match=True)


def _race(store: ObjectStore, key: str, payloads: list[bytes], **condition) -> list[object]:
    """Run one conditional put per payload, all released at once; return etag or exception."""
    barrier = threading.Barrier(len(payloads))

    def attempt(data: bytes) -> object:
        barrier.wait()
        try:
            return store.put(key, data, **condition)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            return exc

    with ThreadPoolExecutor(len(payloads)) as pool:
        return list(pool.map(attempt, payloads))


def _assert_one_winner(store: ObjectStore, key: str, payloads: list[bytes], results: list[object]):
    winners = [i for i, r in enumerate(results) if isinstance(r, str)]
    losers = [r for r in results if not isinstance(r, str)]
    assert len(winners) == 1, results
    assert all(isinstance(r, ConditionFailed) for r in losers), losers
    assert store.get(key) == (payloads[winners[0]], results[winners[0]])


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_creates_exactly_one_wins(store, round_):
    payloads = [f"creator-{i}".encode() for i in range(N)]
    results = _race(store, f"race/create-{round_}", payloads, if_none_match=True)
    _assert_one_winner(store, f"race/create-{round_}", payloads, results)


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_replaces_exactly_one_wins(store, round_):
    key = f"race/replace-{round_}"
    base = store.put(key, b"base", if_none_match=True)
    payloads = [f"replacer-{i}".encode() for i in range(N)]
    results = _race(store, key, payloads, if_match=base)
    _assert_one_winner(store, key, payloads, results)


def _process_attempt(url: str, key: str, data: bytes, condition: dict, barrier) -> str:
    store = open_store(url)  # its own store: own file descriptors
    barrier.wait()
    try:
        return "won:" + store.put(key, data, **condition)
    except ConditionFailed:
        return "lost"
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        return f"error:{type(exc).__name__}:{exc}"
    finally:
        store.close()


def test_file_concurrent_conditional_writes_across_processes(file_store):
    """The same races with one process per writer: no in-process lock can help the file store.

    (For S3 the server arbitrates; the threaded races above already use one connection each.)
    """
    store = file_store
    # fork is cheap (spawn re-imports everything per worker); each worker opens its own store,
    # so the processes share nothing but the directory and its lock files.
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager, ctx.Pool(N) as pool:
        for key, condition_of in [
            ("xproc/create", lambda: {"if_none_match": True}),
            ("xproc/replace", lambda: {"if_match": store.put("xproc/replace", b"base")}),
        ]:
            condition = condition_of()
            barrier = manager.Barrier(N)
            payloads = [f"proc-{i}".encode() for i in range(N)]
            results = pool.starmap(_process_attempt, [(store.url, key, p, condition, barrier) for p in payloads])
            winners = [i for i, r in enumerate(results) if r.startswith("won:")]
            assert len(winners) == 1, results
            assert all(r == "lost" for i, r in enumerate(results) if i != winners[0]), results
            assert store.get(key) == (payloads[winners[0]], results[winners[0]][4:])


# -- list ---------------------------------------------------------------------------------------


def _fill(store: ObjectStore) -> list[str]:
    keys = ["a/1", "a/2", "a/sub/3", "a/sub/4", "ab", "b/x/y/z", "c"]
    for k in keys:
        store.put(k, k.encode())
    return keys


def test_list_all_sorted_and_relative(store):
    keys = _fill(store)
    page = store.list("")
    assert page.keys == sorted(keys)
    assert page.prefixes == []
    assert page.next_cursor is None


def test_list_prefix_is_a_string_prefix(store):
    _fill(store)
    assert store.list("a").keys == ["a/1", "a/2", "a/sub/3", "a/sub/4", "ab"]
    assert store.list("a/").keys == ["a/1", "a/2", "a/sub/3", "a/sub/4"]
    assert store.list("a/s").keys == ["a/sub/3", "a/sub/4"]
    assert store.list("zzz").keys == []
    assert store.list("nothing/here/").keys == []


def test_list_pagination(store):
    keys = sorted(_fill(store))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list("", start_after=cursor, limit=2)
        assert len(page.keys) <= 2
        seen += page.keys
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == keys
    assert pages == 4


def test_list_start_after(store):
    _fill(store)
    assert store.list("", start_after="a/sub/3").keys == ["a/sub/4", "ab", "b/x/y/z", "c"]
    assert store.list("a/", start_after="a/1").keys == ["a/2", "a/sub/3", "a/sub/4"]


def test_list_delimiter(store):
    _fill(store)
    page = store.list("", delimiter="/")
    assert page.keys == ["ab", "c"]
    assert page.prefixes == ["a/", "b/"]
    page = store.list("a/", delimiter="/")
    assert page.keys == ["a/1", "a/2"]
    assert page.prefixes == ["a/sub/"]
    page = store.list("b/", delimiter="/")
    assert (page.keys, page.prefixes) == ([], ["b/x/"])


def test_list_delimiter_pagination(store):
    """Paging one entry at a time through keys and common prefixes visits each exactly once."""
    _fill(store)
    entries: list[str] = []
    cursor = None
    for _ in range(20):
        page = store.list("", delimiter="/", start_after=cursor, limit=1)
        assert len(page.keys) + len(page.prefixes) <= 1
        entries += page.keys + page.prefixes
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert entries == ["a/", "ab", "b/", "c"]
    # Resuming from inside a common prefix does not return that prefix again.
    page = store.list("", delimiter="/", start_after="a/sub/3")
    assert (page.keys, page.prefixes) == (["ab", "c"], ["b/"])


def test_iter_keys_and_delete_prefix(store):
    for i in range(25):
        store.put(f"many/{i:03d}", b"x")
    store.put("other", b"y")
    assert list(store.iter_keys("many/")) == [f"many/{i:03d}" for i in range(25)]
    assert store.delete_prefix("many/") == 25
    assert store.list("").keys == ["other"]


def test_list_sizes_and_usage(store):
    """Each listed key carries the size that was put; usage() sums them across pages."""
    blobs = {f"u/{i:04d}": b"x" * (i * 37) for i in range(1200)}  # more than one 1000-key page
    blobs["u/sub/big"] = bytes(range(256)) * 40
    for key, data in blobs.items():
        store.put(key, data)
    store.put("elsewhere", b"12345")
    page = store.list("u/", limit=10)
    assert len(page.sizes) == len(page.keys) == 10
    assert page.sizes == [len(blobs[k]) for k in page.keys]
    page = store.list("u/", delimiter="/")
    assert page.sizes == [len(blobs[k]) for k in page.keys]
    assert store.usage("u/") == (len(blobs), sum(len(d) for d in blobs.values()))
    assert store.usage() == (len(blobs) + 1, sum(len(d) for d in blobs.values()) + 5)


# -- S3 specifics -------------------------------------------------------------------------------


def test_s3_prefixes_isolate_stores(minio, boto3_store):
    from memoturn.storage.store.s3 import S3Store

    other = S3Store.from_url(minio.store_url(boto3_store.prefix + "nested"))
    other.put("k", b"inner")
    boto3_store.put("k", b"outer")
    assert other.get("k")[0] == b"inner"
    assert other.list("").keys == ["k"]
    assert boto3_store.list("").keys == ["k", "nested/k"]
    other.close()


def test_s3_endpoint_from_environment(minio, monkeypatch):
    from memoturn.storage.store.s3 import S3Store

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", minio.endpoint)
    store = S3Store.from_url(f"s3://{minio.bucket}/env-endpoint")
    assert store.url.startswith(f"s3://{minio.bucket}/env-endpoint?")
    store.put("k", b"v")
    assert store.get("k")[0] == b"v"
    store.close()
    opened = open_store(f"s3://{minio.bucket}/env-endpoint")  # the node's store honours it too
    assert opened.get("k")[0] == b"v"
    opened.close()


def test_s3_url_validation():
    from memoturn.storage.store.s3 import S3Store

    with pytest.raises(ValueError):
        S3Store.from_url("s3:///no-bucket")
    with pytest.raises(ValueError):
        S3Store.from_url("s3://bucket/p?endpont=http://typo")


def test_s3_outage_raises_store_unavailable_and_recovers():
    """A stopped server surfaces as StoreUnavailable within seconds; a restart heals it."""
    from memoturn.storage.store.s3 import S3Store
    from support.minio import MinioServer

    with MinioServer(bucket="outage") as server, pytest.MonkeyPatch.context() as mp:
        for name, value in server.credentials.items():
            mp.setenv(name, value)
        store = S3Store.from_url(server.store_url("db"))
        etag = store.put("manifest", b"v1", if_none_match=True)

        server.stop()
        operations = [
            lambda: store.get("manifest"),
            lambda: store.put("manifest", b"v2", if_match=etag),
            lambda: store.put("new", b"x", if_none_match=True),
            lambda: store.put("seg", b"x"),
            lambda: store.list(""),
            lambda: store.delete("manifest"),
        ]
        for operation in operations:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                operation()
            assert time.monotonic() - started < 8, "an outage must surface quickly"

        server.start()
        assert store.get("manifest") == (b"v1", etag)  # same data dir: nothing lost
        e2 = store.put("manifest", b"v2", if_match=etag)
        assert store.get("manifest") == (b"v2", e2)
        store.close()


def test_s3_hung_server_times_out_instead_of_hanging():
    """A frozen server (TCP accepted, never answered) surfaces after the read timeout."""
    from memoturn.storage.store.s3 import S3Store
    from support.minio import MinioServer

    with MinioServer(bucket="hung") as server, pytest.MonkeyPatch.context() as mp:
        for name, value in server.credentials.items():
            mp.setenv(name, value)
        store = S3Store.from_url(server.store_url("db") + "&read_timeout=1&attempts=1")
        etag = store.put("manifest", b"v1", if_none_match=True)
        server.pause()
        try:
            for operation in [
                lambda: store.get("manifest"),
                lambda: store.put("manifest", b"v2", if_match=etag),
            ]:
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    operation()
                assert time.monotonic() - started < 5
        finally:
            server.resume()
        # The timed-out CAS may still land once the server thaws: its outcome is unknown,
        # which is why StoreUnavailable (not ConditionFailed) reports it. Re-read and go on.
        data, current = store.get("manifest")
        assert data in (b"v1", b"v2")
        store.put("manifest", b"v3", if_match=current)
        store.close()
