/**
 * Reads of a profile's reserved tables in the local file, with the SQL of the server
 * (`memoturn/data/memories.py`, `kv.py`, `documents.py`), so a local answer has the server's shape.
 *
 * Recall is the server's hybrid recall minus the embedder: BM25 over the FTS table, fused by
 * reciprocal rank fusion with exact cosine similarity when the caller passes the query's
 * embedding (`embedding`); without one it is text-only (Node has no local embedding model).
 */

/** What the local reads need of a libSQL connection (the `libsql` package's `Database`). */
export interface Connection {
  prepare(sql: string): {
    raw(toggle?: boolean): { all(...params: unknown[]): unknown[] };
    columns(): { name: string }[];
  };
}

/** A local read refused: the server's problem type and HTTP status for the same refusal. */
export class LocalProblem extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    detail: string,
  ) {
    super(detail);
  }
}

export type Row = unknown[];

export function rows(conn: Connection, sql: string, params: unknown[] = []): Row[] {
  return conn
    .prepare(sql)
    .raw(true)
    .all(...params) as Row[];
}

function one(conn: Connection, sql: string, params: unknown[] = []): Row | undefined {
  return rows(conn, sql, params)[0];
}

/** The default relevance floor on a hit's cosine similarity (when its text did not match). */
export const DEFAULT_MIN_SCORE = 0.3;
const RRF_K = 60;
const MIN_BM25 = 1e-4;
const TYPE = /^[a-z][a-z0-9_-]{0,63}$/;
const META_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
const COLUMNS =
  "id, type, content, metadata, tags, subject, event_time, valid_from, valid_to, recorded_at, supersedes, superseded_by";
const STOPWORDS = new Set(
  `a about above after again against all am an and any are as at be because been before being below between both but
by can could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up very was we were what when where which while who whom why
will with would you your yours yourself yourselves`.split(/\s+/),
);

export interface Memory {
  id: string;
  type: string;
  content: string;
  metadata: Record<string, unknown>;
  tags: string[];
  subject: string | null;
  event_time: number | null;
  valid_from: number;
  valid_to: number | null;
  recorded_at: number;
  supersedes: string | null;
  superseded_by: string | null;
  current: boolean;
}

export interface RecallHit {
  memory: Memory;
  score: number;
  ranks: { bm25?: number; vector?: number };
  similarity: number | null;
  text_match: boolean;
  text_score: number | null;
}

export interface MemoryFilters {
  types?: string[];
  tags?: string[];
  /** Seconds since the epoch. */
  since?: number;
  until?: number;
  metadata?: Record<string, string | number | boolean | null>;
  asOf?: number;
  includeSuperseded?: boolean;
}

export interface RecallOptions extends MemoryFilters {
  limit?: number;
  /** Keep a hit whose text did not match only when its similarity reaches this (default 0.3; 0: off). */
  minScore?: number;
  /** The query's embedding, of the profile's dimension: adds vector similarity to the text search. */
  embedding?: number[];
  recencyHalfLifeDays?: number;
}

function memory(r: Row): Memory {
  return {
    id: r[0] as string,
    type: r[1] as string,
    content: r[2] as string,
    metadata: JSON.parse(r[3] as string) as Record<string, unknown>,
    tags: JSON.parse(r[4] as string) as string[],
    subject: r[5] as string | null,
    event_time: r[6] as number | null,
    valid_from: r[7] as number,
    valid_to: r[8] as number | null,
    recorded_at: r[9] as number,
    supersedes: r[10] as string | null,
    superseded_by: r[11] as string | null,
    current: r[8] === null,
  };
}

function exists(conn: Connection, table: string): boolean {
  return one(conn, "SELECT 1 FROM sqlite_schema WHERE name = ?", [table]) !== undefined;
}

export function hasMemories(conn: Connection): boolean {
  return exists(conn, "__memoturn_memories");
}

function filters(f: MemoryFilters): { where: string[]; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (f.types?.length) {
    for (const t of f.types) {
      if (!TYPE.test(t)) throw new LocalProblem(400, "invalid-type", `invalid memory type ${JSON.stringify(t)}`);
    }
    where.push(`m.type IN (${f.types.map(() => "?").join(",")})`);
    params.push(...f.types);
  }
  for (const tag of f.tags ?? []) {
    where.push("EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value = ?)");
    params.push(tag);
  }
  if (f.since !== undefined && f.until !== undefined && f.since > f.until) {
    throw new LocalProblem(400, "invalid-window", `since (${f.since}) is after until (${f.until})`);
  }
  if (f.since !== undefined) {
    where.push("COALESCE(m.event_time, m.recorded_at) >= ?");
    params.push(f.since);
  }
  if (f.until !== undefined) {
    where.push("COALESCE(m.event_time, m.recorded_at) <= ?");
    params.push(f.until);
  }
  for (const [key, value] of Object.entries(f.metadata ?? {})) {
    if (!META_KEY.test(key)) throw new LocalProblem(400, "invalid-filter", `invalid metadata filter key ${key}`);
    if (typeof value === "object" && value !== null) {
      throw new LocalProblem(400, "invalid-filter", "metadata filters compare scalar values");
    }
    where.push(`json_extract(m.metadata, '$."${key}"') IS ?`);
    params.push(typeof value === "boolean" ? Number(value) : value);
  }
  if (f.asOf !== undefined) {
    where.push("m.recorded_at <= ? AND m.valid_from <= ? AND (m.valid_to IS NULL OR m.valid_to > ?)");
    params.push(f.asOf, f.asOf, f.asOf);
  } else if (!f.includeSuperseded) {
    where.push("m.valid_to IS NULL");
  }
  return { where, params };
}

/** A safe FTS5 query: every content word quoted, OR-ed (the server's `fts_query`). */
export function ftsQuery(text: string): string | null {
  const words = (text.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? []).filter(
    (w) => ([...w].length > 1 || /^\p{Nd}+$/u.test(w)) && !STOPWORDS.has(w),
  );
  if (!words.length) return null;
  return [...new Set(words)].map((w) => `"${w}"`).join(" OR ");
}

export function getMemory(conn: Connection, id: string): Memory {
  const r = hasMemories(conn) ? one(conn, `SELECT ${COLUMNS} FROM __memoturn_memories WHERE id = ?`, [id]) : undefined;
  if (!r) throw new LocalProblem(404, "memory-not-found", `memory ${JSON.stringify(id)} not found`);
  return memory(r);
}

/** The supersession chain through `id`, oldest first. */
export function history(conn: Connection, id: string): Memory[] {
  const start = getMemory(conn, id);
  const chain = [start];
  for (let cur = start; cur.supersedes; ) chain.unshift((cur = getMemory(conn, cur.supersedes)));
  for (let cur = start; cur.superseded_by; ) chain.push((cur = getMemory(conn, cur.superseded_by)));
  return chain;
}

export function listMemories(conn: Connection, options: MemoryFilters & { limit?: number; after?: string }): Memory[] {
  const { where, params } = filters(options);
  if (!hasMemories(conn)) return [];
  if (options.after) {
    where.push("m.id > ?");
    params.push(options.after);
  }
  const sql = `SELECT ${COLUMNS} FROM __memoturn_memories m WHERE ${where.join(" AND ") || "1"} ORDER BY m.id LIMIT ?`;
  return rows(conn, sql, [...params, options.limit ?? 100]).map(memory);
}

export interface MemoryStats {
  memories: number;
  current: number;
  by_type: Record<string, number>;
  embedding_dim: number | null;
}

export function stats(conn: Connection): MemoryStats {
  if (!hasMemories(conn)) return { memories: 0, current: 0, by_type: {}, embedding_dim: null };
  const [total, current] = one(conn, "SELECT count(*), sum(valid_to IS NULL) FROM __memoturn_memories") ?? [0, 0];
  const byType = rows(conn, "SELECT type, count(*) FROM __memoturn_memories WHERE valid_to IS NULL GROUP BY type");
  const dim = one(conn, "SELECT value FROM __memoturn_meta WHERE key = 'embedding_dim'");
  return {
    memories: Number(total),
    current: Number(current ?? 0),
    by_type: Object.fromEntries(byType.map((r) => [r[0] as string, Number(r[1])])),
    embedding_dim: dim ? Number(dim[0]) : null,
  };
}

function vectorOf(blob: unknown): Float32Array | null {
  if (!(blob instanceof Uint8Array) || blob.byteLength % 4) return null;
  const copy = new Uint8Array(blob); // aligned
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}

function cosine(a: Float32Array, q: number[], qn: number): number {
  let dot = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    dot += x * q[i]!;
    n += x * x;
  }
  return dot / (Math.max(Math.sqrt(n), 1e-12) * qn);
}

/** Hybrid recall as the server answers it, over the local file (text-only without `embedding`). */
export function recall(conn: Connection, query: string, options: RecallOptions = {}): RecallHit[] {
  if (!hasMemories(conn)) return [];
  const { where, params } = filters(options);
  const limit = options.limit ?? 10;
  const minScore = options.minScore ?? DEFAULT_MIN_SCORE;
  const k = Math.max(50, limit * 5);
  const cond = where.length ? ` AND ${where.join(" AND ")}` : "";
  const ranks = new Map<number, { bm25?: number; vector?: number }>();
  const bm25 = new Map<number, number>();
  const similarity = new Map<number, number>();
  const fq = ftsQuery(query);
  if (fq) {
    const hits = rows(
      conn,
      "SELECT m.rowid, f.rank FROM __memoturn_memories_fts f JOIN __memoturn_memories m ON m.rowid = f.rowid" +
        ` WHERE __memoturn_memories_fts MATCH ?${cond} ORDER BY f.rank LIMIT ?`,
      [fq, ...params, k],
    ).filter((r) => -(r[1] as number) > MIN_BM25);
    hits.forEach((r, rank) => {
      ranks.set(r[0] as number, { bm25: rank });
      bm25.set(r[0] as number, -(r[1] as number));
    });
  }
  const q = options.embedding;
  if (q?.length) {
    const dim = one(conn, "SELECT value FROM __memoturn_meta WHERE key = 'embedding_dim'");
    if (dim && Number(dim[0]) !== q.length) {
      throw new LocalProblem(
        400,
        "dimension-mismatch",
        `this profile stores ${Number(dim[0])}-dimensional embeddings, not ${q.length}`,
      );
    }
    const qn = Math.sqrt(q.reduce((s, x) => s + x * x, 0));
    if (qn > 0) {
      const scored: [number, number][] = [];
      for (const r of rows(
        conn,
        `SELECT m.rowid, m.embedding FROM __memoturn_memories m WHERE m.embedding IS NOT NULL${cond}`,
        params,
      )) {
        const v = vectorOf(r[1]);
        if (v && v.length === q.length) scored.push([r[0] as number, Math.round(cosine(v, q, qn) * 1e6) / 1e6]);
      }
      scored.sort((a, b) => b[1] - a[1]);
      scored.forEach(([rowid, sim], rank) => {
        similarity.set(rowid, sim);
        if (rank < k) ranks.set(rowid, { ...ranks.get(rowid), vector: rank });
      });
    }
  }
  let scores = new Map<number, number>();
  for (const [rowid, r] of ranks) {
    scores.set(
      rowid,
      Object.values(r).reduce((s, rank) => s + 1 / (RRF_K + 1 + rank), 0),
    );
  }
  if (minScore > 0) {
    scores = new Map([...scores].filter(([r]) => bm25.has(r) || (similarity.get(r) ?? -1) >= minScore));
  }
  if (options.recencyHalfLifeDays && scores.size) {
    const now = Date.now() / 1000;
    const ids = [...scores.keys()];
    for (const [rowid, when] of rows(
      conn,
      `SELECT rowid, COALESCE(event_time, recorded_at) FROM __memoturn_memories WHERE rowid IN (${ids.map(() => "?").join(",")})`,
      ids,
    )) {
      const age = Math.max(0, now - (when as number)) / 86400;
      scores.set(rowid as number, scores.get(rowid as number)! * Math.pow(0.5, age / options.recencyHalfLifeDays));
    }
  }
  const top = [...scores].sort((a, b) => b[1] - a[1]).slice(0, limit);
  if (!top.length) return [];
  const byRowid = new Map(
    rows(
      conn,
      `SELECT ${COLUMNS}, rowid FROM __memoturn_memories WHERE rowid IN (${top.map(() => "?").join(",")})`,
      top.map(([r]) => r),
    ).map((r) => [r[12] as number, r]),
  );
  return top.flatMap(([r, score]) => {
    const row = byRowid.get(r);
    if (!row) return [];
    return [
      {
        memory: memory(row),
        score,
        ranks: ranks.get(r) ?? {},
        similarity: similarity.get(r) ?? null,
        text_match: bm25.has(r),
        text_score: bm25.get(r) ?? null,
      },
    ];
  });
}

export interface KVItem {
  key: string;
  value?: unknown;
  expires_at: number | null;
  updated_at: number;
}

export function kvGet(conn: Connection, key: string): KVItem | null {
  if (!exists(conn, "__memoturn_kv")) return null;
  const r = one(
    conn,
    "SELECT value, expires_at, updated_at FROM __memoturn_kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
    [key, Date.now() / 1000],
  );
  if (!r) return null;
  return { key, value: JSON.parse(r[0] as string), expires_at: r[1] as number | null, updated_at: r[2] as number };
}

export function kvList(conn: Connection, prefix: string, limit: number, values: boolean): KVItem[] {
  if (!exists(conn, "__memoturn_kv")) return [];
  return rows(
    conn,
    "SELECT key, value, expires_at, updated_at FROM __memoturn_kv WHERE key >= ? AND key < ? " +
      "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?",
    [prefix, prefix + "\u{10FFFF}", Date.now() / 1000, limit],
  ).map((r) => ({
    key: r[0] as string,
    ...(values ? { value: JSON.parse(r[1] as string) as unknown } : {}),
    expires_at: r[2] as number | null,
    updated_at: r[3] as number,
  }));
}

export interface Document {
  id: string;
  body: Record<string, unknown>;
  created_at: number;
  updated_at: number;
}

export function getDocument(conn: Connection, collection: string, id: string): Document {
  const r = exists(conn, "__memoturn_docs")
    ? one(conn, "SELECT id, json(body), created_at, updated_at FROM __memoturn_docs WHERE collection = ? AND id = ?", [
        collection,
        id,
      ])
    : undefined;
  if (!r) {
    throw new LocalProblem(
      404,
      "document-not-found",
      `document ${JSON.stringify(id)} not found in ${JSON.stringify(collection)}`,
    );
  }
  return {
    id: r[0] as string,
    body: JSON.parse(r[1] as string) as Record<string, unknown>,
    created_at: r[2] as number,
    updated_at: r[3] as number,
  };
}

export interface SQLRows {
  columns: string[];
  rows: unknown[][];
}

/** One statement on a connection in `query_only` mode (a write is refused: `400 sql-error`). */
export function select(conn: Connection, sql: string, params: unknown[]): SQLRows {
  try {
    const stmt = conn.prepare(sql);
    const columns = stmt.columns().map((c) => c.name);
    return { columns, rows: stmt.raw(true).all(...params) as unknown[][] };
  } catch (err) {
    throw new LocalProblem(400, "sql-error", `local SQL failed: ${(err as Error).message}`);
  }
}
