/**
 * Names for the API's request and answer bodies: the generated schemas of `openapi.ts`
 * (every JSON answer of the server has one; tests/test_api_schema.py keeps it so).
 */
import type { components } from "./openapi.js";

type Schemas = components["schemas"];

export type Problem = Schemas["Problem"];
export type DatabaseInfo = Schemas["DatabaseInfo"];
export type DatabaseList = Schemas["DatabaseList"];
export type KVItem = Schemas["KVItem"];
export type KVList = Schemas["KVList"];
export type KVWritten = Schemas["KVWritten"];
export type KVDeleted = Schemas["KVDeleted"];
export type Statement = Schemas["Statement"];
export type SQLValue = Schemas["StatementResult"]["rows"][number][number];
export type SQLResponse = Schemas["SQLResponse"];
export type MemoryIn = Schemas["MemoryIn"];
export type Memory = Schemas["MemoryOut"];
export type Stored = Schemas["Stored"];
export type BatchOut = Schemas["BatchOut"];
export type RecallIn = Schemas["RecallIn"];
export type RecallOut = Schemas["RecallOut"];
export type Hit = Schemas["Hit"];
export type MemoryList = Schemas["MemoryList"];
export type ProfileStats = Schemas["ProfileStats"];
export type ProfileList = Schemas["ProfileList"];
export type Document = Schemas["Document"];
export type DocumentQuery = Schemas["DocumentQuery"];
export type DocumentPage = Schemas["DocumentPage"];
export type VectorItem = Schemas["VectorItem"];
export type PolicyIn = Schemas["PolicyIn"];
export type Health = Schemas["Health"];

/** Where a branch starts (fork) or goes back to (rewind): at most one of them; none is the head. */
export type Point = Schemas["Point"];
/** A branch's manifest, as `GET /v1/databases/{db}/branches` describes it. */
export type BranchInfo = Schemas["BranchInfo"];
export type BranchList = Schemas["BranchList"];
export type Rewound = Schemas["Rewound"];
export type CheckpointSet = Schemas["CheckpointSet"];
export type CheckpointList = Schemas["CheckpointList"];
export type Policy = Schemas["Policy"];
export type GCReport = Schemas["GCReport"];
export type CollectionList = Schemas["CollectionList"];
export type IndexCreated = Schemas["IndexCreated"];
export type VectorCollectionCreated = Schemas["VectorCollectionCreated"];
export type VectorsUpserted = Schemas["VectorsUpserted"];
/** `score` is 1 - cosine distance: higher is closer. */
export type VectorHit = Schemas["VectorHit"];
export type VectorResults = Schemas["VectorResults"];
export type ClusterStatus = Schemas["ClusterStatus"];
export type MintedToken = Schemas["MintedToken"];

export type ForgetIn = Schemas["ForgetIn"];
export type Forgotten = Schemas["Forgotten"];
export type Relationship = Schemas["RelationshipOut"];
export type Related = Schemas["Related"];
export type Neighbours = Schemas["Neighbours"];
export type RelationshipPage = Schemas["RelationshipPage"];
export type PathIn = Schemas["PathIn"];
export type PathOut = Schemas["PathOut"];
export type SubgraphIn = Schemas["SubgraphIn"];
export type SubgraphOut = Schemas["SubgraphOut"];
