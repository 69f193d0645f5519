"""Operations routes: liveness, readiness and Prometheus metrics of the node."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from .models import Health
from .params import NodeDep
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["ops"])


@router.get("/v1/health", response_model=Health)
def health(node: NodeDep) -> Health:
    return Health(status="ok", node_id=node.settings.node_id)


@router.get("/v1/ready", response_model=Health, responses={503: {"model": Health}})
def ready(node: NodeDep) -> Any:
    ok, detail = node.ready()
    body = Health(status="ok" if ok else "unavailable", detail=detail, node_id=node.settings.node_id)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(node: NodeDep) -> PlainTextResponse:
    return PlainTextResponse(node.metrics.render(), media_type="text/plain; version=0.0.4")
