"""Document and vector-collection routes of a database (a profile is ``{ns}--{profile}``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from ...data import documents, vectors
from ...names import DEFAULT_BRANCH
from .models import Filter, Float, Int, Text
from .params import ERRORS, Branch, Durability, MinTxid, NodeDep, durable, set_txid
from .strict import StrictRoute


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Text | None = Field(None, min_length=1, max_length=256)
    body: dict[str, Any]


class DocumentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: dict[str, Any]


class Document(BaseModel):
    id: str
    body: dict[str, Any]
    created_at: float
    updated_at: float


class SortKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Text
    order: Text = "asc"


class DocumentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: Filter = Field(default_factory=dict)
    sort: list[SortKey] = Field(default_factory=list, max_length=8)
    limit: Int = Field(100, ge=1, le=1000)
    cursor: Text | None = None


class DocumentPage(BaseModel):
    documents: list[Document]
    next_cursor: str | None = None
    txid: int


class IndexIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Text


class VectorCollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dimensions: Int = Field(ge=1, le=4096)


class VectorItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Text = Field(min_length=1, max_length=256)
    vector: list[Float]
    metadata: dict[str, Any] = Field(default_factory=dict)


class VectorUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[VectorItem] = Field(min_length=1, max_length=1000)


class VectorQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vector: list[Float]
    k: Int = Field(10, ge=1, le=1000)
    filter: Filter | None = Field(None, description="Document-style filter on metadata")


DOCS = "/v1/databases/{db}/collections/{collection}"
VECS = "/v1/databases/{db}/vectors/{collection}"
router = APIRouter(route_class=StrictRoute, responses=ERRORS)


@router.post(DOCS + "/documents", status_code=201, response_model=Document, tags=["documents"])
def insert(
    db: str,
    collection: str,
    body: DocumentIn,
    response: Response,
    node: NodeDep,
    branch: Branch = DEFAULT_BRANCH,
    durability: Durability = None,
) -> Any:
    documents.check_collection(collection)
    doc, t = node.write(
        db,
        lambda c: documents.insert(c, collection, body.id, body.body, node.settings.max_value_bytes),
        branch=branch,
        durable=durable(durability),
    )
    set_txid(response, t)
    return doc


@router.get(DOCS + "/documents/{doc_id}", response_model=Document, tags=["documents"])
def get(
    db: str,
    collection: str,
    doc_id: str,
    response: Response,
    node: NodeDep,
    branch: Branch = DEFAULT_BRANCH,
    min_txid: MinTxid = None,
) -> Any:
    doc, t = node.read(db, lambda c: documents.get(c, collection, doc_id), branch=branch, min_txid=min_txid)
    set_txid(response, t)
    return doc


@router.put(DOCS + "/documents/{doc_id}", response_model=Document, tags=["documents"])
def replace(
    db: str,
    collection: str,
    doc_id: str,
    body: DocumentBody,
    response: Response,
    node: NodeDep,
    branch: Branch = DEFAULT_BRANCH,
    durability: Durability = None,
) -> Any:
    doc, t = node.write(
        db,
        lambda c: documents.replace(c, collection, doc_id, body.body, node.settings.max_value_bytes),
        branch=branch,
        durable=durable(durability),
    )
    set_txid(response, t)
    return doc


@router.patch(DOCS + "/documents/{doc_id}", response_model=Document, tags=["documents"])
def patch(
    db: str,
    collection: str,
    doc_id: str,
    body: DocumentBody,
    response: Response,
    node: NodeDep,
    branch: Branch = DEFAULT_BRANCH,
    durability: Durability = None,
) -> Any:
    """Apply a JSON merge patch (RFC 7386): null removes a key."""
    doc, t = node.write(
        db,
        lambda c: documents.patch(c, collection, doc_id, body.body, node.settings.max_value_bytes),
        branch=branch,
        durable=durable(durability),
    )
    set_txid(response, t)
    return doc


@router.delete(DOCS + "/documents/{doc_id}", status_code=204, tags=["documents"])
def delete(
    db: str, collection: str, doc_id: str, node: NodeDep, branch: Branch = DEFAULT_BRANCH, durability: Durability = None
) -> Response:
    _, t = node.write(db, lambda c: documents.delete(c, collection, doc_id), branch=branch, durable=durable(durability))
    return Response(status_code=204, headers={"Memoturn-Txid": str(t)})


@router.post(DOCS + "/query", response_model=DocumentPage, tags=["documents"])
def query(
    db: str,
    collection: str,
    body: DocumentQuery,
    response: Response,
    node: NodeDep,
    branch: Branch = DEFAULT_BRANCH,
    min_txid: MinTxid = None,
) -> DocumentPage:
    documents.check_collection(collection)
    sort = [s.model_dump() for s in body.sort]
    (items, nxt), t = node.read(
        db,
        lambda c: documents.query(c, collection, filter=body.filter, sort=sort, limit=body.limit, cursor=body.cursor),
        branch=branch,
        min_txid=min_txid,
    )
    set_txid(response, t)
    return DocumentPage(documents=[Document(**d) for d in items], next_cursor=nxt, txid=t)


@router.post(DOCS + "/indexes", status_code=201, tags=["documents"])
def index(
    db: str, collection: str, body: IndexIn, response: Response, node: NodeDep, branch: Branch = DEFAULT_BRANCH
) -> dict[str, Any]:
    documents.check_collection(collection)
    name, t = node.write(db, lambda c: documents.create_index(c, collection, body.path), branch=branch)
    set_txid(response, t)
    return {"index": name, "path": body.path, "txid": t}


@router.put(VECS, status_code=201, tags=["vectors"])
def create_vectors(
    db: str,
    collection: str,
    body: VectorCollectionIn,
    response: Response,
    node: NodeDep,
    branch: Branch = DEFAULT_BRANCH,
) -> dict[str, Any]:
    _, t = node.write(db, lambda c: vectors.create(c, collection, body.dimensions), branch=branch)
    set_txid(response, t)
    return {"collection": collection, "dimensions": body.dimensions, "txid": t}


@router.post(VECS + "/upsert", tags=["vectors"])
def upsert(
    db: str,
    collection: str,
    body: VectorUpsert,
    response: Response,
    node: NodeDep,
    branch: Branch = DEFAULT_BRANCH,
    durability: Durability = None,
) -> dict[str, Any]:
    items = [i.model_dump() for i in body.items]
    n, t = node.write(db, lambda c: vectors.upsert(c, collection, items), branch=branch, durable=durable(durability))
    set_txid(response, t)
    return {"upserted": n, "txid": t}


@router.post(VECS + "/query", tags=["vectors"])
def vector_query(
    db: str,
    collection: str,
    body: VectorQuery,
    response: Response,
    node: NodeDep,
    branch: Branch = DEFAULT_BRANCH,
    min_txid: MinTxid = None,
) -> dict[str, Any]:
    hits, t = node.read(
        db,
        lambda c: vectors.query(c, collection, body.vector, body.k, body.filter),
        branch=branch,
        min_txid=min_txid,
    )
    set_txid(response, t)
    return {"results": hits, "txid": t}


@router.delete(VECS + "/items/{item_id}", status_code=204, tags=["vectors"])
def delete_vector(db: str, collection: str, item_id: str, node: NodeDep, branch: Branch = DEFAULT_BRANCH) -> Response:
    _, t = node.write(db, lambda c: vectors.remove(c, collection, item_id), branch=branch)
    return Response(status_code=204, headers={"Memoturn-Txid": str(t)})
