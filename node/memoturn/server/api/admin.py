"""Admin routes: mint and revoke the bearer tokens of namespaces (the admin token only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from .models import MintedToken, TokenRequest
from .params import ERRORS, NodeDep
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, responses=ERRORS, tags=["admin"])


@router.post("/v1/admin/tokens", status_code=201, response_model=MintedToken)
def mint_token(body: TokenRequest, node: NodeDep) -> Any:
    """Mint a token for one namespace (admin only), optionally expiring. The token is shown once."""
    return node.auth.mint(body.namespace, ttl_seconds=body.ttl_seconds, expires_at=body.expires_at)


@router.delete("/v1/admin/tokens/{token_sha256}", status_code=204)
def revoke_token(token_sha256: str, node: NodeDep) -> Response:
    node.auth.revoke(token_sha256)
    return Response(status_code=204)
