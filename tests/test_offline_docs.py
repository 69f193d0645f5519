"""/docs and /redoc work without internet: every asset they load is served by the node itself."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from memoturn.config import Settings
from memoturn.server.api.app import create_app
from memoturn.server.node import Node


def test_api_docs_load_only_assets_the_node_serves_even_with_auth_on(tmp_path, file_store):
    node = Node(Settings(data_dir=str(tmp_path / "n"), node_id="docs", admin_token="admin"), store=file_store)
    with TestClient(create_app(node)) as client:
        for page in ("/docs", "/redoc"):
            r = client.get(page)
            assert r.status_code == 200 and "text/html" in r.headers["content-type"]
            assets = re.findall(r"""(?:src|href)=["']?([^"' >]+)""", r.text)
            assert assets, r.text[:500]
            assert not [a for a in assets if a.startswith(("http://", "https://", "//"))], assets
            for asset in assets:
                got = client.get(asset)
                assert got.status_code == 200 and got.content, (page, asset, got.status_code)
        assert client.get("/openapi.json").json()["info"]["title"] == "Memoturn node API"
        assert client.get("/v1/databases").status_code == 401  # the docs' assets are open, nothing else
