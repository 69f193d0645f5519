"""Document and vector-collection routes of a database (a profile is ``{ns}--{profile}``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from ...data import documents, vectors
from .models import Filter, Float, Int, Text
from .params import ERRORS, BranchDefaultWriter, BranchReader, BranchWriter
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
def insert(collection: str, body: DocumentIn, w: BranchWriter) -> Any:
    documents.check_collection(collection)
    return w.write(lambda c: documents.insert(c, collection, body.id, body.body, w.node.settings.max_value_bytes))


@router.get(DOCS + "/documents/{doc_id}", response_model=Document, tags=["documents"])
def get(collection: str, doc_id: str, r: BranchReader) -> Any:
    return r.read(lambda c: documents.get(c, collection, doc_id))


@router.put(DOCS + "/documents/{doc_id}", response_model=Document, tags=["documents"])
def replace(collection: str, doc_id: str, body: DocumentBody, w: BranchWriter) -> Any:
    return w.write(lambda c: documents.replace(c, collection, doc_id, body.body, w.node.settings.max_value_bytes))


@router.patch(DOCS + "/documents/{doc_id}", response_model=Document, tags=["documents"])
def patch(collection: str, doc_id: str, body: DocumentBody, w: BranchWriter) -> Any:
    """Apply a JSON merge patch (RFC 7386): null removes a key."""
    return w.write(lambda c: documents.patch(c, collection, doc_id, body.body, w.node.settings.max_value_bytes))


@router.delete(DOCS + "/documents/{doc_id}", status_code=204, tags=["documents"])
def delete(collection: str, doc_id: str, w: BranchWriter) -> Response:
    w.write(lambda c: documents.delete(c, collection, doc_id))
    return w.no_content()


class CollectionInfo(BaseModel):
    name: str
    documents: int = Field(description="How many documents it holds")


class CollectionList(BaseModel):
    collections: list[CollectionInfo] = Field(description="Each collection holding documents: its name and count")
    txid: int


class IndexCreated(BaseModel):
    index: str = Field(description="The SQLite index's name")
    path: str = Field(description="The indexed JSON path of the documents' body")
    txid: int


class VectorCollectionCreated(BaseModel):
    collection: str
    dimensions: int
    txid: int


class VectorsUpserted(BaseModel):
    upserted: int = Field(description="How many items were inserted or replaced")
    txid: int


class VectorHit(BaseModel):
    id: str
    score: float = Field(description="1 - cosine distance: higher is closer")
    metadata: dict[str, Any]


class VectorResults(BaseModel):
    results: list[VectorHit] = Field(description="The nearest items, closest first")
    txid: int


@router.get("/v1/databases/{db}/collections", response_model=CollectionList, tags=["documents"])
def list_collections(r: BranchReader) -> CollectionList:
    found = r.read(documents.collections)
    return CollectionList(collections=[CollectionInfo(**c) for c in found], txid=r.txid)


@router.post(DOCS + "/query", response_model=DocumentPage, tags=["documents"])
def query(collection: str, body: DocumentQuery, r: BranchReader) -> DocumentPage:
    documents.check_collection(collection)
    sort = [s.model_dump() for s in body.sort]
    items, nxt = r.read(
        lambda c: documents.query(c, collection, filter=body.filter, sort=sort, limit=body.limit, cursor=body.cursor)
    )
    return DocumentPage(documents=[Document(**d) for d in items], next_cursor=nxt, txid=r.txid)


@router.post(DOCS + "/indexes", status_code=201, response_model=IndexCreated, tags=["documents"])
def index(collection: str, body: IndexIn, w: BranchDefaultWriter) -> IndexCreated:
    documents.check_collection(collection)
    name = w.write(lambda c: documents.create_index(c, collection, body.path))
    return IndexCreated(index=name, path=body.path, txid=w.txid)


@router.put(VECS, status_code=201, response_model=VectorCollectionCreated, tags=["vectors"])
def create_vectors(collection: str, body: VectorCollectionIn, w: BranchDefaultWriter) -> VectorCollectionCreated:
    w.write(lambda c: vectors.create(c, collection, body.dimensions))
    return VectorCollectionCreated(collection=collection, dimensions=body.dimensions, txid=w.txid)


@router.post(VECS + "/upsert", response_model=VectorsUpserted, tags=["vectors"])
def upsert(collection: str, body: VectorUpsert, w: BranchWriter) -> VectorsUpserted:
    items = [i.model_dump() for i in body.items]
    n = w.write(lambda c: vectors.upsert(c, collection, items))
    return VectorsUpserted(upserted=n, txid=w.txid)


@router.post(VECS + "/query", response_model=VectorResults, tags=["vectors"])
def vector_query(collection: str, body: VectorQuery, r: BranchReader) -> VectorResults:
    hits = r.read(lambda c: vectors.query(c, collection, body.vector, body.k, body.filter))
    return VectorResults(results=[VectorHit(**h) for h in hits], txid=r.txid)


@router.delete(VECS + "/items/{item_id}", status_code=204, tags=["vectors"])
def delete_vector(collection: str, item_id: str, w: BranchDefaultWriter) -> Response:
    w.write(lambda c: vectors.remove(c, collection, item_id))
    return w.no_content()
