"""A node whose object store cannot be used says why: not ready, and 503 with the cause, never a traceback.

Each case is a real MinIO answering (or not): a wrong secret, a bucket that does not exist, an
endpoint nobody listens on. While the cause lasts, readiness probes the store again every few seconds.
"""

from __future__ import annotations

import socket
import urllib.parse

import pytest
from fastapi.testclient import TestClient
from memoturn.config import Settings
from memoturn.server.api.app import create_app
from memoturn.server.node import Node


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _url(minio, *, bucket: str | None = None, endpoint: str | None = None) -> str:
    query = urllib.parse.urlencode({"endpoint": endpoint or minio.endpoint, "region": minio.region})
    return f"s3://{bucket or minio.bucket}/misconfigured?{query}"


@pytest.mark.parametrize(
    ("case", "cause"),
    [("wrong-secret", "bad credentials"), ("missing-bucket", "bucket not found"), ("no-endpoint", "unreachable")],
)
def test_a_store_that_cannot_be_used_is_named_in_readiness_and_in_503s(tmp_path, minio, monkeypatch, case, cause):
    url = _url(minio)
    if case == "wrong-secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    elif case == "missing-bucket":
        url = _url(minio, bucket="no-such-bucket")
    else:
        url = _url(minio, endpoint=f"http://127.0.0.1:{_closed_port()}")
    node = Node(Settings(data_dir=str(tmp_path / "n"), store_url=url, node_id="mis"))
    with TestClient(create_app(node), raise_server_exceptions=False) as client:
        ready = client.get("/v1/ready")
        assert ready.status_code == 503 and cause in ready.json()["detail"], ready.text
        r = client.post("/v1/databases", json={"name": "x"})
        assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json"), r.text
        assert cause in r.json()["detail"] and "Traceback" not in r.text
