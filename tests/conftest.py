"""Shared fixtures: a real MinIO server for the session, and one store per test per backend."""

from __future__ import annotations

import os
import sys
import time
import uuid

import pytest

try:
    import memoturn  # noqa: F401 - imported only to see whether the package is installed
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "node"))

from memoturn.storage.store.file import FileStore
from support.minio import MinioServer


@pytest.fixture(scope="session")
def minio():
    """One MinIO process for the session; its credentials are exported for boto3's default chain."""
    with MinioServer() as server, pytest.MonkeyPatch.context() as mp:
        for name, value in server.credentials.items():
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        yield server


@pytest.fixture
def s3_store(minio):
    """The S3 store the node opens (CloudStore, obstore) on a prefix of its own, so tests never
    see each other's keys."""
    from memoturn.storage.store import open_store

    store = open_store(minio.store_url(f"t-{uuid.uuid4().hex[:12]}"))
    yield store
    store.close()


@pytest.fixture(scope="session")
def azurite():
    """One Azurite (Azure Blob emulator) process for the session."""
    from support.azurite import AzuriteServer

    with AzuriteServer() as server:
        yield server


@pytest.fixture
def azure_store(azurite):
    """The az:// store the node opens (CloudStore) on Azurite, on a prefix of its own."""
    from memoturn.storage.store import open_store

    store = open_store(azurite.store_url(f"t-{uuid.uuid4().hex[:12]}"))
    yield store
    store.close()


@pytest.fixture
def boto3_store(minio):
    """S3Store (boto3) on a prefix of its own: the backend the benchmarks compare with."""
    from memoturn.storage.store.s3 import S3Store

    store = S3Store.from_url(minio.store_url(f"b-{uuid.uuid4().hex[:12]}"))
    yield store
    store.close()


@pytest.fixture
def file_store(tmp_path):
    store = FileStore(str(tmp_path / "store"), fsync=False)
    yield store
    store.close()


@pytest.fixture(scope="session")
def etcd():
    """One real etcd process for the session (Debian's etcd-server)."""
    from support.etcd import EtcdServer

    with EtcdServer() as server:
        yield server


class ManualClock:
    """The wall clock expiries are judged by (``memoturn.clock.now``), moved by the test, not by sleeping."""

    def __init__(self) -> None:
        self.at = time.time()

    def now(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds


@pytest.fixture
def manual_clock(monkeypatch):
    from memoturn import clock

    fake = ManualClock()
    monkeypatch.setattr(clock, "now", fake.now)
    return fake


@pytest.fixture(autouse=True)
def _no_stray_settings(monkeypatch):
    """Settings read MEMOTURN_* from the environment: a developer's exported variable must not
    change what an in-process test configures (the subprocess tests pass their env explicitly)."""
    from memoturn.config import Settings

    for name in Settings.model_fields:
        monkeypatch.delenv(f"MEMOTURN_{name.upper()}", raising=False)
    monkeypatch.delenv("MEMOTURN_STORE", raising=False)
