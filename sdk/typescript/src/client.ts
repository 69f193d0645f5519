/**
 * The client: {@link Memoturn}, and the scopes it hands out ({@link Database}, {@link Profile},
 * {@link DocumentCollection}, {@link VectorCollection}), over the HTTP API with the global `fetch`.
 *
 * Every call resolves to a {@link Result}: the body and the `txid` the server reported
 * (`Memoturn-Txid`). Pass that txid back as `minTxid` for read-your-writes. Names the API defines
 * (body fields, query parameters) keep the API's spelling; the SDK's own options are camelCase.
 */
import { ProblemError } from "./errors.js";
import { connectionLost, delays, retryable } from "./retry.js";
import type {
  BatchOut,
  BranchInfo,
  BranchList,
  CheckpointList,
  CheckpointSet,
  DatabaseInfo,
  DatabaseList,
  Document,
  DocumentPage,
  DocumentQuery,
  ForgetIn,
  Forgotten,
  Health,
  IndexCreated,
  KVDeleted,
  KVItem,
  KVList,
  KVWritten,
  Memory,
  MemoryIn,
  MemoryList,
  Neighbours,
  PathIn,
  PathOut,
  Point,
  PolicyIn,
  ProfileList,
  ProfileStats,
  RecallIn,
  RecallOut,
  Related,
  Relationship,
  RelationshipPage,
  SQLResponse,
  Statement,
  Stored,
  SubgraphIn,
  SubgraphOut,
  VectorCollectionCreated,
  VectorItem,
  VectorResults,
  VectorsUpserted,
} from "./types.js";

/** `standard` (acknowledged once committed on the node) or `durable` (once in object storage). */
export type Durability = "standard" | "durable";
/** `primary` (strong, the default) or `replica` (bounded-stale; the answer says its txid). */
export type ReadFrom = "primary" | "replica";

/** A response body with the txid it was served at. */
export interface Result<T> {
  data: T;
  /** `Memoturn-Txid`: the txid the write committed at, or the read was served at. */
  txid: number | null;
  /** `Memoturn-Served-By` (KV reads): `primary` or `replica`. */
  servedBy: string | null;
}

export interface MemoturnOptions {
  /** Bearer token (`Authorization: Bearer ...`), when the server has auth on. */
  token?: string;
  /** Per attempt, in milliseconds (default 30000). */
  timeoutMs?: number;
  /** Retries of a transient refusal (default 5); the wait doubles from `backoffMs`, at most 2 s. */
  retries?: number;
  /** The first wait before a retry, in milliseconds (default 50). */
  backoffMs?: number;
  /** The default durability of writes (default: the node's). */
  durability?: Durability;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
}

export interface WriteOptions {
  durability?: Durability;
}

export interface ReadOptions {
  /** Wait (on the server) until the branch has reached this txid: read-your-writes. */
  minTxid?: number;
}

export interface KVReadOptions extends ReadOptions {
  readFrom?: ReadFrom;
}

export type Params = Record<string, string | number | boolean | string[] | null | undefined>;

/** One HTTP call of {@link Memoturn.request}: any route, with the SDK's headers, retries and errors. */
export interface Call {
  method: string;
  path: string;
  body?: unknown;
  params?: Params;
  headers?: Record<string, string>;
  /** Safe to send again after a connection error (a read, or a write that sets a value). */
  idempotent?: boolean;
}

/** The Memoturn request headers a call sets (`undefined` leaves one out). */
function memoturnHeaders(durability?: string, minTxid?: number, readFrom?: string): Record<string, string> {
  const h: Record<string, string> = {};
  if (durability) h["Memoturn-Durability"] = durability;
  if (minTxid !== undefined && minTxid !== null) h["Memoturn-Min-Txid"] = String(minTxid);
  if (readFrom) h["Memoturn-Read"] = readFrom;
  return h;
}

/** A path segment, escaped (a KV key's `/` arrives as `/`: the server decodes the path first). */
const seg = encodeURIComponent;

function query(params: Params | undefined): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v === undefined || v === null) continue;
    for (const item of Array.isArray(v) ? v : [v]) q.append(k, String(item));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Drops the members that are `undefined`, so the server applies its defaults. */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  }
  return String(err);
}

/** A Memoturn node or gateway. */
export class Memoturn {
  readonly url: string;
  readonly token: string | undefined;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly backoffMs: number;
  readonly durability: Durability | undefined;
  private readonly fetchImpl: typeof fetch;

  constructor(url = "http://127.0.0.1:7411", options: MemoturnOptions = {}) {
    this.url = url.replace(/\/+$/, "");
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retries = options.retries ?? 5;
    this.backoffMs = options.backoffMs ?? 50;
    this.durability = options.durability;
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** One call, retried by the rules of `retry.ts`; the answer, or a {@link ProblemError}. */
  async request<T>(call: Call): Promise<Result<T>> {
    const headers: Record<string, string> = { Accept: "application/json", ...call.headers };
    if (this.token) headers["Authorization"] = `Bearer ${this.token}`;
    if (call.body !== undefined) headers["Content-Type"] = "application/json";
    const url = this.url + call.path + query(call.params);
    const body = call.body === undefined ? undefined : JSON.stringify(call.body);
    for (const delay of delays(this.backoffMs, this.retries)) {
      const last = delay === null;
      let response: Response;
      let text: string;
      try {
        response = await this.fetchImpl(url, {
          method: call.method,
          headers,
          body,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        text = await response.text();
      } catch (err) {
        if (!call.idempotent || last) throw new ProblemError(0, "unreachable", `${this.url}: ${describe(err)}`);
        await sleep(delay);
        continue;
      }
      if (response.status < 400) return result<T>(response, text);
      const again =
        retryable(response.status, text) || (call.idempotent === true && connectionLost(response.status, text));
      if (!again || last) {
        throw ProblemError.fromResponse(response.status, response.statusText, text);
      }
      await sleep(delay);
    }
    throw new Error("unreachable: the last attempt returns or throws");
  }

  database(name: string, branch = "main"): Database {
    return new Database(this, name, branch);
  }

  /** A profile's memories, on its database's `main` branch unless told another. */
  profile(namespace: string, profile: string, branch = "main"): Profile {
    return new Profile(this, namespace, profile, branch);
  }

  health(): Promise<Result<Health>> {
    return this.request({ method: "GET", path: "/v1/health", idempotent: true });
  }

  createDatabase(name: string): Promise<Result<DatabaseInfo>> {
    return this.request({ method: "POST", path: "/v1/databases", body: { name } });
  }

  listDatabases(options: { limit?: number; cursor?: string } = {}): Promise<Result<DatabaseList>> {
    const params = { limit: options.limit ?? 100, cursor: options.cursor };
    return this.request({ method: "GET", path: "/v1/databases", params, idempotent: true });
  }

  describeDatabase(name: string, branch = "main"): Promise<Result<DatabaseInfo>> {
    return this.request({ method: "GET", path: `/v1/databases/${seg(name)}`, params: { branch }, idempotent: true });
  }

  deleteDatabase(name: string): Promise<Result<null>> {
    return this.request({ method: "DELETE", path: `/v1/databases/${seg(name)}` });
  }

  /** The profiles of a namespace (a page of names). */
  listProfiles(namespace: string, options: { limit?: number; cursor?: string } = {}): Promise<Result<ProfileList>> {
    return this.request({
      method: "GET",
      path: `/v1/namespaces/${seg(namespace)}/profiles`,
      params: { limit: options.limit ?? 100, cursor: options.cursor },
      idempotent: true,
    });
  }
}

function result<T>(response: Response, text: string): Result<T> {
  const txid = response.headers.get("Memoturn-Txid");
  const json = text !== "" && (response.headers.get("content-type") ?? "").startsWith("application/json");
  return {
    data: (json ? JSON.parse(text) : null) as T,
    txid: txid !== null && /^\d+$/.test(txid) ? Number(txid) : null,
    servedBy: response.headers.get("Memoturn-Served-By"),
  };
}

/** A SQL statement: its text, or its text and parameters (positional or named). */
export type SQLStatement = string | [string, Statement["params"]] | Statement;

/** KV, documents, vectors, SQL and branches of one database branch. */
export class Database {
  constructor(
    readonly client: Memoturn,
    readonly name: string,
    readonly branch: string,
  ) {}

  private get base(): string {
    return `/v1/databases/${seg(this.name)}`;
  }

  private durability(options: WriteOptions | undefined): string | undefined {
    return options?.durability ?? this.client.durability;
  }

  /** The same database on another branch. */
  onBranch(branch: string): Database {
    return new Database(this.client, this.name, branch);
  }

  documents(collection: string): DocumentCollection {
    return new DocumentCollection(this, collection);
  }

  vectors(collection: string): VectorCollection {
    return new VectorCollection(this, collection);
  }

  /** Name, branch, tier, head and shipped txids of this branch. */
  describe(): Promise<Result<DatabaseInfo>> {
    return this.client.describeDatabase(this.name, this.branch);
  }

  // -- KV ----------------------------------------------------------------------------

  kvPut(
    key: string,
    value: unknown,
    options: WriteOptions & { ttl_seconds?: number } = {},
  ): Promise<Result<KVWritten>> {
    return this.client.request({
      method: "PUT",
      path: `${this.base}/kv/${seg(key)}`,
      body: { value, ttl_seconds: options.ttl_seconds ?? null },
      params: { branch: this.branch },
      headers: memoturnHeaders(this.durability(options)),
      idempotent: true,
    });
  }

  kvGet(key: string, options: KVReadOptions = {}): Promise<Result<KVItem>> {
    return this.client.request({
      method: "GET",
      path: `${this.base}/kv/${seg(key)}`,
      params: { branch: this.branch },
      headers: memoturnHeaders(undefined, options.minTxid, options.readFrom),
      idempotent: true,
    });
  }

  kvDelete(key: string, options: WriteOptions = {}): Promise<Result<KVDeleted>> {
    return this.client.request({
      method: "DELETE",
      path: `${this.base}/kv/${seg(key)}`,
      params: { branch: this.branch },
      headers: memoturnHeaders(this.durability(options)),
      idempotent: true,
    });
  }

  kvList(
    options: KVReadOptions & { prefix?: string; limit?: number; cursor?: string; values?: boolean } = {},
  ): Promise<Result<KVList>> {
    return this.client.request({
      method: "GET",
      path: `${this.base}/kv`,
      params: {
        branch: this.branch,
        prefix: options.prefix ?? "",
        limit: options.limit ?? 100,
        cursor: options.cursor,
        values: options.values,
      },
      headers: memoturnHeaders(undefined, options.minTxid, options.readFrom),
      idempotent: true,
    });
  }

  // -- SQL ---------------------------------------------------------------------------

  /**
   * One statement, or several: `["CREATE TABLE t(x)", ["INSERT INTO t VALUES (?)", [5]]]`. They run
   * in one transaction (all or nothing) unless `transaction: false`; one result each.
   */
  sql(
    statements: string | SQLStatement[],
    options: WriteOptions & ReadOptions & { transaction?: boolean } = {},
  ): Promise<Result<SQLResponse>> {
    const list = typeof statements === "string" ? [statements] : statements;
    const body = {
      statements: list.map((s) =>
        typeof s === "string" ? { sql: s } : Array.isArray(s) ? { sql: s[0], params: s[1] } : s,
      ),
      transaction: options.transaction ?? true,
    };
    return this.client.request({
      method: "POST",
      path: `${this.base}/sql`,
      body,
      params: { branch: this.branch },
      headers: memoturnHeaders(this.durability(options), options.minTxid),
    });
  }

  // -- branches ----------------------------------------------------------------------

  /** A new branch from this one, at its head or at a point (txid, checkpoint or timestamp). */
  fork(name: string, options: Point & { ttl_seconds?: number } = {}): Promise<Result<BranchInfo>> {
    const body = defined({ name, parent: this.branch, ...options });
    return this.client.request({ method: "POST", path: `${this.base}/branches`, body });
  }

  branches(): Promise<Result<BranchList>> {
    return this.client.request({ method: "GET", path: `${this.base}/branches`, idempotent: true });
  }

  /** Deletes this branch (never `main`: that goes with the database). */
  deleteBranch(): Promise<Result<null>> {
    return this.client.request({ method: "DELETE", path: `${this.base}/branches/${seg(this.branch)}` });
  }

  /** Moves this branch's head back to a point; what was cut off can be brought back by {@link undoRewind}. */
  rewind(point: Point): Promise<Result<{ branch: string; head_txid: number }>> {
    return this.client.request({
      method: "POST",
      path: `${this.base}/branches/${seg(this.branch)}/rewind`,
      body: defined({ ...point }),
    });
  }

  undoRewind(): Promise<Result<{ branch: string; head_txid: number }>> {
    return this.client.request({ method: "POST", path: `${this.base}/branches/${seg(this.branch)}/undo-rewind` });
  }

  /** Names a txid of this branch (default: its head). */
  checkpoint(name: string, txid?: number): Promise<Result<CheckpointSet>> {
    return this.client.request({
      method: "POST",
      path: `${this.base}/branches/${seg(this.branch)}/checkpoints`,
      body: defined({ name, txid }),
    });
  }

  checkpoints(): Promise<Result<CheckpointList>> {
    return this.client.request({
      method: "GET",
      path: `${this.base}/branches/${seg(this.branch)}/checkpoints`,
      idempotent: true,
    });
  }

  deleteCheckpoint(name: string): Promise<Result<null>> {
    return this.client.request({
      method: "DELETE",
      path: `${this.base}/branches/${seg(this.branch)}/checkpoints/${seg(name)}`,
    });
  }

  /** Snapshot cadence, snapshots kept, point-in-time retention and segment merging of this branch. */
  setPolicy(policy: PolicyIn): Promise<Result<Record<string, unknown>>> {
    return this.client.request({
      method: "PUT",
      path: `${this.base}/branches/${seg(this.branch)}/policy`,
      body: policy,
      idempotent: true,
    });
  }

  gc(options: { grace_seconds?: number; dry_run?: boolean } = {}): Promise<Result<Record<string, unknown>>> {
    const body = defined({ dry_run: options.dry_run ?? false, grace_seconds: options.grace_seconds });
    return this.client.request({ method: "POST", path: `${this.base}/gc`, body });
  }
}

/** JSON documents of one collection of a database branch. */
export class DocumentCollection {
  constructor(
    readonly database: Database,
    readonly name: string,
  ) {}

  private path(suffix: string): string {
    return `/v1/databases/${seg(this.database.name)}/collections/${seg(this.name)}${suffix}`;
  }

  private call<T>(method: string, suffix: string, extra: Partial<Call> = {}): Promise<Result<T>> {
    return this.database.client.request({
      method,
      path: this.path(suffix),
      params: { branch: this.database.branch },
      ...extra,
    });
  }

  private writeHeaders(options: WriteOptions): Record<string, string> {
    return memoturnHeaders(options.durability ?? this.database.client.durability);
  }

  /** A new document (its `id` chosen by the server unless given). */
  insert(body: Record<string, unknown>, options: WriteOptions & { id?: string } = {}): Promise<Result<Document>> {
    return this.call("POST", "/documents", {
      body: defined({ id: options.id, body }),
      headers: this.writeHeaders(options),
    });
  }

  get(id: string, options: ReadOptions = {}): Promise<Result<Document>> {
    return this.call("GET", `/documents/${seg(id)}`, {
      headers: memoturnHeaders(undefined, options.minTxid),
      idempotent: true,
    });
  }

  replace(id: string, body: Record<string, unknown>, options: WriteOptions = {}): Promise<Result<Document>> {
    return this.call("PUT", `/documents/${seg(id)}`, {
      body: { body },
      headers: this.writeHeaders(options),
      idempotent: true,
    });
  }

  /** A JSON merge patch (RFC 7386): `null` removes a key. */
  patch(id: string, body: Record<string, unknown>, options: WriteOptions = {}): Promise<Result<Document>> {
    return this.call("PATCH", `/documents/${seg(id)}`, { body: { body }, headers: this.writeHeaders(options) });
  }

  delete(id: string, options: WriteOptions = {}): Promise<Result<null>> {
    // not retried on a connection error: once applied, a second delete would answer 404
    return this.call("DELETE", `/documents/${seg(id)}`, { headers: this.writeHeaders(options) });
  }

  /** Documents matching a filter, sorted, a page at a time (`next_cursor`). */
  query(query: Partial<DocumentQuery> = {}, options: ReadOptions = {}): Promise<Result<DocumentPage>> {
    return this.call("POST", "/query", {
      body: query,
      headers: memoturnHeaders(undefined, options.minTxid),
      idempotent: true,
    });
  }

  /** An index on a JSON path of the documents' bodies. */
  createIndex(path: string): Promise<Result<IndexCreated>> {
    return this.call("POST", "/indexes", { body: { path } });
  }
}

/** A vector collection of a database branch (cosine similarity). */
export class VectorCollection {
  constructor(
    readonly database: Database,
    readonly name: string,
  ) {}

  private call<T>(method: string, suffix: string, extra: Partial<Call> = {}): Promise<Result<T>> {
    return this.database.client.request({
      method,
      path: `/v1/databases/${seg(this.database.name)}/vectors/${seg(this.name)}${suffix}`,
      params: { branch: this.database.branch },
      ...extra,
    });
  }

  create(dimensions: number): Promise<Result<VectorCollectionCreated>> {
    return this.call("PUT", "", { body: { dimensions } });
  }

  upsert(items: VectorItem[], options: WriteOptions = {}): Promise<Result<VectorsUpserted>> {
    return this.call("POST", "/upsert", {
      body: { items },
      headers: memoturnHeaders(options.durability ?? this.database.client.durability),
      idempotent: true,
    });
  }

  /** The `k` nearest items, closest first; `filter` is a document-style filter on their metadata. */
  query(
    vector: number[],
    options: ReadOptions & { k?: number; filter?: Record<string, unknown> } = {},
  ): Promise<Result<VectorResults>> {
    return this.call("POST", "/query", {
      body: defined({ vector, k: options.k, filter: options.filter }),
      headers: memoturnHeaders(undefined, options.minTxid),
      idempotent: true,
    });
  }

  delete(id: string): Promise<Result<null>> {
    return this.call("DELETE", `/items/${seg(id)}`); // not retried: a second delete would answer 404
  }
}

/** Memory fields besides `content`, as the API names them. */
export type MemoryFields = Partial<Omit<MemoryIn, "content">>;

/** Options of the relationship walks (`neighbours`, `path`, `subgraph`), as the API names them. */
type Walk = Pick<PathIn, "types" | "as_of" | "include_superseded"> & ReadOptions;

/**
 * Typed memories of one profile (the database `{namespace}--{profile}`, created on first use),
 * on one branch of that database (`main`, or one forked with `profile.database().fork(name)`).
 */
export class Profile {
  readonly base: string;

  constructor(
    readonly client: Memoturn,
    readonly namespace: string,
    readonly profile: string,
    readonly branch = "main",
  ) {
    this.base = `/v1/namespaces/${seg(namespace)}/profiles/${seg(profile)}`;
  }

  /** The branch query (none on main, so main's requests are as they always were). */
  private get params(): Params {
    return this.branch === "main" ? {} : { branch: this.branch };
  }

  private call<T>(method: string, suffix: string, extra: Partial<Call> = {}): Promise<Result<T>> {
    const params = { ...this.params, ...extra.params };
    return this.client.request({ method, path: this.base + suffix, ...extra, params });
  }

  private headers(options: WriteOptions): Record<string, string> {
    return memoturnHeaders(options.durability ?? this.client.durability);
  }

  /** This profile's memories on another branch of its database. */
  onBranch(branch: string): Profile {
    return new Profile(this.client, this.namespace, this.profile, branch);
  }

  /** The profile's database on this branch, for branch operations (fork, checkpoint, rewind, ...). */
  database(): Database {
    return new Database(this.client, `${this.namespace}--${this.profile}`, this.branch);
  }

  /** Creates the profile's database now if it does not exist (a first memory does too); its stats. */
  create(): Promise<Result<ProfileStats>> {
    return this.call("PUT", "", { idempotent: true });
  }

  /** Stores a memory (type `fact` unless given); one with the same `subject` supersedes the current one. */
  add(content: string, fields: MemoryFields & WriteOptions = {}): Promise<Result<Stored>> {
    const { durability, ...rest } = fields;
    return this.call("POST", "/memories", {
      body: defined({ type: "fact", ...rest, content }),
      headers: this.headers({ durability }),
    });
  }

  addMany(memories: MemoryIn[], options: WriteOptions = {}): Promise<Result<BatchOut>> {
    return this.call("POST", "/memories/batch", { body: { memories }, headers: this.headers(options) });
  }

  /**
   * The memories most relevant to `query`, best first. `as_of` recalls what was current at a
   * time; `min_score` is the relevance floor (0 = off; omitted = the server's default), so an
   * empty `results` means nothing matched; `expand` adds the hits' neighbours along those
   * relationship types (one hop), each with `via` saying where it came from.
   */
  recall(query: string, options: Partial<Omit<RecallIn, "query">> & ReadOptions = {}): Promise<Result<RecallOut>> {
    const { minTxid, ...filters } = options;
    return this.call("POST", "/recall", {
      body: defined({ query, limit: 10, ...filters }),
      headers: memoturnHeaders(undefined, minTxid),
      idempotent: true,
    });
  }

  /**
   * A page of memories in id order (`next_cursor` is the next page's `cursor`). `since`/`until`
   * bound the event time (else record time); `as_of` asks what was current then. Times are unix
   * seconds or ISO 8601 strings.
   */
  list(
    options: {
      types?: string[];
      tags?: string[];
      since?: number | string;
      until?: number | string;
      as_of?: number | string;
      include_superseded?: boolean;
      limit?: number;
      cursor?: string;
    } = {},
  ): Promise<Result<MemoryList>> {
    return this.call("GET", "/memories", {
      params: {
        limit: options.limit ?? 100,
        include_superseded: options.include_superseded ?? false,
        type: options.types?.length ? options.types : undefined,
        tag: options.tags?.length ? options.tags : undefined,
        since: options.since === undefined ? undefined : String(options.since),
        until: options.until === undefined ? undefined : String(options.until),
        as_of: options.as_of === undefined ? undefined : String(options.as_of),
        cursor: options.cursor,
      },
      idempotent: true,
    });
  }

  get(memoryId: string): Promise<Result<Memory>> {
    return this.call("GET", `/memories/${seg(memoryId)}`, { idempotent: true });
  }

  /** A memory and the ones it superseded or that superseded it, oldest first. */
  history(memoryId: string): Promise<Result<Memory[]>> {
    return this.call("GET", `/memories/${seg(memoryId)}/history`, { idempotent: true });
  }

  forget(memoryId: string, options: WriteOptions = {}): Promise<Result<null>> {
    return this.call("DELETE", `/memories/${seg(memoryId)}`, { headers: this.headers(options), idempotent: true });
  }

  /**
   * Deletes every memory (superseded ones too) of these `types`, with all these `tags`, whose
   * event time (else record time) is within `since`..`until`; `dry_run` only says which would go.
   */
  forgetMatching(conditions: ForgetIn & WriteOptions): Promise<Result<Forgotten>> {
    const { durability, ...body } = conditions;
    return this.call("POST", "/memories/forget", {
      body: defined(body),
      headers: this.headers({ durability }),
      idempotent: true,
    });
  }

  stats(): Promise<Result<ProfileStats>> {
    return this.call("GET", "", { idempotent: true });
  }

  /** Deletes the profile (its database, every branch) and every memory in it. */
  delete(): Promise<Result<null>> {
    return this.client.request({ method: "DELETE", path: this.base });
  }

  // -- relationships: typed, directed links between this profile's memories ----------------

  /** Links `source -[type]-> target`; `duplicate` says an identical live link existed (returned unchanged). */
  relate(
    source: string,
    target: string,
    type = "relates_to",
    options: WriteOptions & { weight?: number; properties?: Record<string, unknown> } = {},
  ): Promise<Result<Related>> {
    const { durability, ...rest } = options;
    return this.call("POST", `/memories/${seg(source)}/relationships`, {
      body: defined({ target, type, ...rest }),
      headers: this.headers({ durability }),
    });
  }

  /** Removes a relationship (it stays visible `as_of` an earlier time). */
  unrelate(relationshipId: string, options: WriteOptions = {}): Promise<Result<null>> {
    return this.call("DELETE", `/relationships/${seg(relationshipId)}`, {
      headers: this.headers(options),
      idempotent: true,
    });
  }

  relationship(relationshipId: string, options: ReadOptions = {}): Promise<Result<Relationship>> {
    return this.call("GET", `/relationships/${seg(relationshipId)}`, {
      headers: memoturnHeaders(undefined, options.minTxid),
      idempotent: true,
    });
  }

  /** A page of the profile's live relationships in id order; pass `next_cursor` back for the next page. */
  relationships(
    options: ReadOptions & { limit?: number; cursor?: string | null } = {},
  ): Promise<Result<RelationshipPage>> {
    return this.call("GET", "/relationships", {
      params: { limit: options.limit ?? 100, cursor: options.cursor ?? undefined },
      headers: memoturnHeaders(undefined, options.minTxid),
      idempotent: true,
    });
  }

  /** The relationships of a memory (`direction` out, in or both) with the memory at their other end, newest first. */
  neighbours(
    memoryId: string,
    options: Walk & { direction?: "out" | "in" | "both"; limit?: number } = {},
  ): Promise<Result<Neighbours>> {
    return this.call("GET", `/memories/${seg(memoryId)}/relationships`, {
      params: {
        direction: options.direction ?? "both",
        limit: options.limit ?? 100,
        type: options.types?.length ? options.types : undefined,
        as_of: options.as_of === undefined || options.as_of === null ? undefined : String(options.as_of),
        include_superseded: options.include_superseded || undefined,
      },
      headers: memoturnHeaders(undefined, options.minTxid),
      idempotent: true,
    });
  }

  /** A shortest path `source` → `target` of at most `max_depth` hops (`found`, `memories`, `relationships`). */
  path(
    source: string,
    target: string,
    options: Walk & Pick<PathIn, "max_depth" | "direction"> = {},
  ): Promise<Result<PathOut>> {
    const { minTxid, ...walk } = options;
    return this.call("POST", "/relationships/path", {
      body: defined({ ...walk, from: source, to: target }),
      headers: memoturnHeaders(undefined, minTxid),
      idempotent: true,
    });
  }

  /** The memories within `depth` hops of a memory (at most `limit`) and the relationships among them. */
  subgraph(
    memoryId: string,
    options: Walk & Pick<SubgraphIn, "depth" | "limit" | "direction"> = {},
  ): Promise<Result<SubgraphOut>> {
    const { minTxid, ...walk } = options;
    return this.call("POST", "/relationships/subgraph", {
      body: defined({ ...walk, memory_id: memoryId }),
      headers: memoturnHeaders(undefined, minTxid),
      idempotent: true,
    });
  }
}
