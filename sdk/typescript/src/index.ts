/**
 * @memoturn/sdk: the TypeScript client of Memoturn (Node 20+ and browsers, no dependencies).
 *
 *     import { Memoturn } from "@memoturn/sdk";
 *     const mt = new Memoturn("http://127.0.0.1:7411");
 *     const alice = mt.profile("acme", "alice");
 *     const stored = await alice.add("Alice prefers green tea", { type: "preference", subject: "drink" });
 *     const hits = await alice.recall("what does Alice drink?", { minTxid: stored.txid ?? undefined });
 */
export { Memoturn, Database, DocumentCollection, VectorCollection, Profile } from "./client.js";
export type {
  Call,
  Durability,
  KVReadOptions,
  MemoryFields,
  MemoturnOptions,
  Params,
  ReadFrom,
  ReadOptions,
  Result,
  SQLStatement,
  WriteOptions,
} from "./client.js";
export { ProblemError } from "./errors.js";
export { RETRY_TYPES, connectionLost, delays, retryable } from "./retry.js";
export type * from "./types.js";
export type { components, operations, paths } from "./openapi.js";
