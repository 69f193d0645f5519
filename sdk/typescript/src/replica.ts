/**
 * @memoturn/sdk/replica: embedded replicas for Node (20+): a profile's database as a local libSQL
 * file, read without a network hop, kept up to date from the owner's sealed segments.
 *
 *     import { Memoturn } from "@memoturn/sdk";
 *     import { openReplica } from "@memoturn/sdk/replica";
 *     const mt = new Memoturn("http://gateway:7400", { token: "..." });
 *     const alice = await openReplica(mt, "acme", "alice", "/home/me/.memoturn/alice.db", { syncIntervalMs: 5000 });
 *     await alice.add("Alice prefers green tea", { type: "preference" }); // to the owner, then synced
 *     const hits = alice.recall("what does Alice drink?");                  // from the local file
 *     hits.txid, hits.staleness;
 *
 * The same replica as the Python SDK's `memoturn.replica` (docs/replicas.md), with the same
 * local file and state file (`path.replica.json`), so either SDK can continue the other's file:
 *
 * * `sync()` asks for the segments after the local txid, verifies all of them (the SHA-256 the
 *   manifest recorded, each segment's seal, database and branch, txids, page size, an unbroken
 *   chain), then writes their pages into the file with it closed; anything forged or corrupt
 *   throws {@link ReplicaCorrupt} and leaves the file and its txid as they were. When the owner
 *   no longer stores those segments, when the snapshot moves fewer bytes, or when the history
 *   changed, it starts again from the newest snapshot, built beside the file and renamed in.
 * * Reads (recall, memories, KV, documents, read-only SQL) are synchronous calls on the file and
 *   return a {@link LocalResult}: the data, the local txid and the {@link Staleness}.
 * * Writes go to the owner through the client and resolve once the file holds their txid.
 * * `syncIntervalMs` syncs in the background; when the node cannot be reached the replica is
 *   offline and keeps answering reads, saying how stale they are.
 *
 * This entry point needs the `libsql` package (an optional dependency of @memoturn/sdk; or
 * `better-sqlite3`), which ships native binaries: the browser build (`@memoturn/sdk`) never loads it.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as nodePath from "node:path";

import type { Database, Memoturn, Profile } from "./client.js";
import { ProblemError } from "./errors.js";
import { RETRY_TYPES } from "./retry.js";
import {
  type Feed,
  FormatCorrupt,
  type Txn,
  decodeFeed,
  decodeSegment,
  decodeSnapshot,
  sha256,
} from "./replica/format.js";
import * as local from "./replica/local.js";

export type {
  Document,
  KVItem,
  Memory,
  MemoryFilters,
  MemoryStats,
  RecallHit,
  RecallOptions,
  SQLRows,
} from "./replica/local.js";

const STATE_FORMAT = 1;
const BRANCH = "main";
/** Answers that say the node could not be reached or could not answer now: the replica goes offline. */
const OFFLINE_STATUSES = new Set([0, 502, 503, 504]);
const RETRY = new Set([...RETRY_TYPES, "replica-object-gone"]);
const FRESH = new Set(["segments-gone", "snapshot-smaller"]);

/** What the node sent failed verification; nothing of it was applied. */
export class ReplicaCorrupt extends Error {
  readonly type = "replica-corrupt";
  override name = "ReplicaCorrupt";
}

/** How fresh the local answers are. */
export interface Staleness {
  /** The local txid. */
  txid: number;
  /** The owner's head when last asked (null: never reached). */
  ownerTxid: number | null;
  /** ownerTxid - txid, as last known. */
  behindTxids: number | null;
  /** Since the last successful sync (null: never synced). */
  secondsSinceSync: number | null;
  /** The last attempt to reach the node failed (or the replica was opened offline). */
  offline: boolean;
  lastError: string | null;
}

/** A read answered from the local file: `txid` is the local one. */
export interface LocalResult<T> {
  data: T;
  txid: number;
  servedBy: "embedded-replica";
  staleness: Staleness;
}

export interface SyncReport {
  /** The local txid after the sync. */
  txid: number;
  appliedTxns: number;
  /** Started again from a snapshot. */
  snapshot: boolean;
  /** Bytes received from the node. */
  bytes: number;
  ms: number;
}

export interface ReplicaOptions {
  /** Sync in the background every this many milliseconds. */
  syncIntervalMs?: number;
  /** Open the file without contacting the node (`goOnline()` syncs). */
  offline?: boolean;
  /** How long one sync may wait for the node (default 30000). */
  syncTimeoutMs?: number;
  /** Start again from the snapshot when it moves fewer bytes than the segments (default true). */
  snapshotIfSmaller?: boolean;
  /** The `fetch` for the replica routes (default: the global one). */
  fetch?: typeof fetch;
}

/** The state file `path.replica.json`, in the Python replica's format (snake_case keys). */
interface State {
  database: string;
  branch: string;
  txid: number;
  timeline: number;
  created_at: number;
  page_size: number;
  owner_txid: number | null;
  synced_at: number | null;
  dirty: boolean;
}

interface Built {
  txns: Txn[];
  txid: number;
  pageSize: number;
}

interface SqliteDatabase extends local.Connection {
  exec(sql: string): unknown;
  close(): unknown;
}

type Driver = new (path: string) => SqliteDatabase;

let driver: Driver | undefined;

/** The libSQL binding (`libsql`, else `better-sqlite3`), loaded on first use. */
function sqlite(): Driver {
  if (driver) return driver;
  const require = createRequire(import.meta.url);
  const errors: string[] = [];
  for (const name of ["libsql", "better-sqlite3"]) {
    try {
      driver = require(name) as Driver;
      return driver;
    } catch (err) {
      errors.push(`${name}: ${(err as Error).message.split("\n")[0]}`);
    }
  }
  throw new Error(`@memoturn/sdk/replica needs the libsql package (npm install libsql): ${errors.join("; ")}`);
}

function emptyState(database: string, extra: Partial<State> = {}): State {
  return {
    database,
    branch: BRANCH,
    txid: 0,
    timeline: 0,
    created_at: 0,
    page_size: 0,
    owner_txid: null,
    synced_at: null,
    dirty: false,
    ...extra,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function dropSidecars(path: string): void {
  for (const suffix of ["-wal", "-shm"]) fs.rmSync(path + suffix, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A profile of `client`'s server, replicated into the libSQL file `path` (see the module docs). */
export class EmbeddedReplica {
  readonly client: Memoturn;
  readonly namespace: string;
  readonly profile: string;
  readonly database: string;
  readonly path: string;
  readonly remote: Profile;
  readonly remoteDb: Database;
  readonly syncTimeoutMs: number;
  snapshotIfSmaller: boolean;
  bytesReceived = 0;
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;
  private state: State;
  private conn: SqliteDatabase | null = null;
  private isOffline: boolean;
  private lastError: string | null = null;
  private syncing: Promise<unknown> = Promise.resolve();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  private lockHeld = false;

  /** Use {@link openReplica} (it syncs); the constructor only takes the file. */
  constructor(client: Memoturn, namespace: string, profile: string, path: string, options: ReplicaOptions = {}) {
    this.client = client;
    this.namespace = namespace;
    this.profile = profile;
    this.remote = client.profile(namespace, profile);
    this.remoteDb = this.remote.database();
    this.database = this.remoteDb.name;
    this.path = nodePath.resolve(
      path.startsWith("~/") ? nodePath.join(process.env["HOME"] ?? "", path.slice(2)) : path,
    );
    this.syncTimeoutMs = options.syncTimeoutMs ?? 30_000;
    this.snapshotIfSmaller = options.snapshotIfSmaller ?? true;
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.isOffline = options.offline ?? false;
    this.base = `/v1/namespaces/${encodeURIComponent(namespace)}/profiles/${encodeURIComponent(profile)}/replica`;
    fs.mkdirSync(nodePath.dirname(this.path), { recursive: true });
    this.lock();
    try {
      this.state = this.loadState();
      this.open();
    } catch (err) {
      this.release();
      throw err;
    }
  }

  // -- lifecycle ------------------------------------------------------------------------

  /**
   * One replica at a time holds a file: `path.lock` holds the holder's pid (Node has no flock;
   * a lock left by a process that is gone is taken over).
   */
  private lock(): void {
    const lockPath = this.path + ".lock";
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(lockPath, String(process.pid), { flag: "wx", mode: 0o600 });
        this.lockHeld = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const holder = Number.parseInt(fs.readFileSync(lockPath, "utf8"), 10);
      if (Number.isInteger(holder) && holder > 0 && (holder === process.pid || isAlive(holder))) break;
      fs.rmSync(lockPath, { force: true }); // left behind (or an empty lock of the Python SDK's flock)
    }
    throw new ProblemError(400, "replica-in-use", `${this.path} is open in another embedded replica`);
  }

  /** Stops background syncs, closes the file and releases its lock. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.syncing.catch(() => undefined);
    this.release();
  }

  private release(): void {
    this.closeConn();
    if (this.lockHeld) {
      fs.rmSync(this.path + ".lock", { force: true });
      this.lockHeld = false;
    }
  }

  /** The txid the local file holds. */
  get txid(): number {
    return this.state.txid;
  }

  get offline(): boolean {
    return this.isOffline;
  }

  /** Stop talking to the node (background syncs pause); reads keep being answered. */
  goOffline(): void {
    this.isOffline = true;
  }

  /** Talk to the node again, starting with a sync. */
  goOnline(): Promise<SyncReport> {
    this.isOffline = false;
    return this.sync();
  }

  get staleness(): Staleness {
    const s = this.state;
    return {
      txid: s.txid,
      ownerTxid: s.owner_txid,
      behindTxids: s.owner_txid === null ? null : Math.max(0, s.owner_txid - s.txid),
      secondsSinceSync: s.synced_at === null ? null : Math.max(0, Date.now() / 1000 - s.synced_at),
      offline: this.isOffline,
      lastError: this.lastError,
    };
  }

  /** Syncs every `intervalMs` until {@link close} (a timer that does not keep the process alive). */
  startBackgroundSync(intervalMs: number): void {
    const tick = (): void => {
      this.timer = setTimeout(() => {
        if (this.closed) return;
        const skip = this.isOffline && this.lastError === null; // offline on purpose
        (skip ? Promise.resolve() : this.sync().then(() => undefined))
          .catch(() => undefined)
          .finally(() => {
            if (!this.closed) tick();
          });
      }, intervalMs);
      this.timer.unref();
    };
    if (this.timer === null && !this.closed) tick();
  }

  // -- the local file -------------------------------------------------------------------

  private get statePath(): string {
    return this.path + ".replica.json";
  }

  private loadState(): State {
    let raw: Partial<State> & { format?: unknown };
    try {
      raw = JSON.parse(fs.readFileSync(this.statePath, "utf8")) as typeof raw;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return emptyState(this.database);
      raw = { database: this.database, dirty: true };
    }
    delete raw.format;
    const state = emptyState(this.database, raw);
    if (state.database !== this.database || state.branch !== BRANCH) {
      throw new ProblemError(
        400,
        "replica-mismatch",
        `${this.path} is a replica of ${state.database}/${state.branch}, not ${this.database}`,
      );
    }
    if (state.dirty || (state.txid && !fs.existsSync(this.path))) {
      // A sync stopped half-way (or the file went): the next sync starts from a snapshot.
      return emptyState(this.database, { owner_txid: state.owner_txid, synced_at: state.synced_at, dirty: true });
    }
    return state;
  }

  private saveState(state: State): void {
    const tmp = this.statePath + ".tmp";
    const fd = fs.openSync(tmp, "w");
    try {
      fs.writeSync(fd, JSON.stringify({ format: STATE_FORMAT, ...state }));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.statePath);
    this.state = state;
  }

  /** Open the local file query-only (there is nothing to read before the first transaction). */
  private open(): void {
    if (this.state.dirty || !this.state.txid || !fs.existsSync(this.path)) return;
    const Driver = sqlite();
    const conn = new Driver(this.path);
    conn.exec("PRAGMA query_only=ON");
    this.conn = conn;
  }

  private closeConn(): void {
    if (this.conn !== null) {
      this.conn.close();
      this.conn = null;
    }
  }

  // -- talking to the node --------------------------------------------------------------

  /** GET one replica route, retrying what provably did not run and waiting for `minTxid`. */
  private async route(
    suffix: string,
    params: Record<string, string> = {},
    minTxid?: number,
  ): Promise<Response & { bytes: Buffer }> {
    const headers: Record<string, string> = { Accept: "application/octet-stream, application/json" };
    if (this.client.token) headers["Authorization"] = `Bearer ${this.client.token}`;
    if (minTxid !== undefined) headers["Memoturn-Min-Txid"] = String(minTxid);
    const q = new URLSearchParams(params).toString();
    const url = `${this.client.url}${this.base}${suffix}${q ? `?${q}` : ""}`;
    const deadline = Date.now() + this.syncTimeoutMs;
    let delay = 0;
    for (let attempts = 1; ; attempts++) {
      let err: ProblemError;
      try {
        const r = await this.fetchImpl(url, { headers, signal: AbortSignal.timeout(this.client.timeoutMs) });
        const bytes = Buffer.from(await r.arrayBuffer());
        if (r.status < 400) {
          this.bytesReceived += bytes.length;
          return Object.assign(r, { bytes });
        }
        err = ProblemError.fromResponse(r.status, r.statusText, bytes.toString("utf8"));
        if (!(err.type === "min-txid-not-reached" || r.status === 503 || RETRY.has(err.type))) throw err;
      } catch (e) {
        if (e instanceof ProblemError) throw e;
        const cause = (e as { cause?: unknown }).cause;
        const why = cause instanceof Error ? `${(e as Error).message} (${cause.message})` : (e as Error).message;
        err = new ProblemError(0, "unreachable", `${this.client.url}: ${why}`);
      }
      if (Date.now() >= deadline || (err.type !== "min-txid-not-reached" && attempts > this.client.retries)) throw err;
      delay = Math.min(500, delay ? delay * 2 : this.client.backoffMs);
      await sleep(delay);
    }
  }

  private async feed(after: number, minTxid: number | undefined): Promise<Feed> {
    const r = await this.route(
      "/segments",
      { after: String(after), snapshot_if_smaller: String(this.snapshotIfSmaller) },
      minTxid,
    );
    try {
      return decodeFeed(r.bytes);
    } catch (err) {
      throw new ReplicaCorrupt(`feed of ${this.database} after txid ${after}: ${(err as Error).message}`);
    }
  }

  /** The transactions of `feed` that continue txid `after`, every one verified; else {@link ReplicaCorrupt}. */
  private verify(feed: Feed, after: number, pageSize: number, timeline: number): Built {
    const where = `${this.database} after txid ${after}`;
    if (feed.database !== this.database || feed.branch !== BRANCH) {
      throw new ReplicaCorrupt(`${where}: the node sent the segments of ${feed.database}/${feed.branch}`);
    }
    if (feed.entries.length !== feed.blobs.length) throw new ReplicaCorrupt(`${where}: the feed is incomplete`);
    const built: Built = { txns: [], txid: after, pageSize };
    let expected = after + 1;
    feed.entries.forEach((entry, i) => {
      const blob = feed.blobs[i]!;
      const name = `segment ${entry.firstTxid}-${entry.lastTxid} of ${this.database}`;
      if (sha256(blob).toString("hex") !== entry.sha256) {
        throw new ReplicaCorrupt(`${name} does not match the checksum its manifest recorded`);
      }
      let seg;
      try {
        seg = decodeSegment(blob, name);
      } catch (err) {
        if (err instanceof FormatCorrupt) throw new ReplicaCorrupt(err.message);
        throw err;
      }
      if (seg.database !== this.database || seg.branch !== BRANCH) {
        throw new ReplicaCorrupt(`${name} is a segment of ${seg.database}/${seg.branch}: refused`);
      }
      const first = seg.txns[0]!.txid;
      const last = seg.txns[seg.txns.length - 1]!.txid;
      if (first !== entry.firstTxid || last !== entry.lastTxid) {
        throw new ReplicaCorrupt(`${name} holds txids ${first}-${last}`);
      }
      if (seg.timeline > feed.timeline || seg.timeline > timeline) {
        throw new ReplicaCorrupt(`${name} is of timeline ${seg.timeline}, after the branch's ${feed.timeline}`);
      }
      if (built.pageSize && seg.pageSize !== built.pageSize) {
        throw new ReplicaCorrupt(`${name} has ${seg.pageSize}-byte pages, the file ${built.pageSize}-byte ones`);
      }
      built.pageSize = seg.pageSize;
      for (const txn of seg.txns) {
        if (txn.txid < expected) continue;
        if (txn.txid > entry.applyTo) break;
        if (txn.txid !== expected) {
          throw new ReplicaCorrupt(`${name}: txid ${txn.txid} does not follow ${expected - 1} (a gap): refused`);
        }
        if (txn.dbPages < 1 || [...txn.pages.keys()].some((p) => p < 1)) {
          throw new ReplicaCorrupt(`${name}: txid ${txn.txid} names an impossible page`);
        }
        built.txns.push(txn);
        expected += 1;
      }
    });
    built.txid = expected - 1;
    if (feed.complete && built.txid !== feed.headTxid) {
      throw new ReplicaCorrupt(`${where}: the segments end at txid ${built.txid}, the head is ${feed.headTxid}`);
    }
    if (!feed.complete && built.txid === after) {
      throw new ReplicaCorrupt(`${where}: an incomplete feed carried no transaction`);
    }
    return built;
  }

  private static writePages(fd: number, built: Built): void {
    for (const txn of built.txns) {
      for (const [pgno, page] of txn.pages) fs.writeSync(fd, page, 0, page.length, (pgno - 1) * built.pageSize);
      fs.ftruncateSync(fd, txn.dbPages * built.pageSize);
    }
    fs.fsyncSync(fd);
  }

  // -- sync -----------------------------------------------------------------------------

  /**
   * Bring the local file up to the owner's head (at least `minTxid`).
   *
   * Rejects with a {@link ProblemError} when the node refuses or cannot be reached (then the
   * replica is offline, and reads go on), with {@link ReplicaCorrupt} when what it sent fails
   * verification. Either way the local file stays as it was. One sync runs at a time.
   */
  sync(options: { minTxid?: number } = {}): Promise<SyncReport> {
    const run = this.syncing.catch(() => undefined).then(() => this.syncOnce(options.minTxid));
    this.syncing = run;
    return run;
  }

  private async syncOnce(minTxid: number | undefined): Promise<SyncReport> {
    if (this.closed) throw new ProblemError(400, "replica-closed", `the replica of ${this.database} is closed`);
    const t0 = performance.now();
    const received = this.bytesReceived;
    let outcome: [number, boolean];
    try {
      outcome = await this.syncSteps(minTxid);
    } catch (err) {
      if (err instanceof ProblemError && OFFLINE_STATUSES.has(err.status)) this.isOffline = true;
      this.lastError = err instanceof Error ? err.message : String(err);
      throw err;
    }
    this.isOffline = false;
    this.lastError = null;
    return {
      txid: this.state.txid,
      appliedTxns: outcome[0],
      snapshot: outcome[1],
      bytes: this.bytesReceived - received,
      ms: performance.now() - t0,
    };
  }

  private async syncSteps(minTxid: number | undefined): Promise<[number, boolean]> {
    if (this.state.dirty || !this.state.txid) return [await this.fresh(minTxid), true];
    let applied = 0;
    for (;;) {
      let feed: Feed;
      try {
        feed = await this.feed(this.state.txid, minTxid);
      } catch (err) {
        if (err instanceof ProblemError && FRESH.has(err.type)) return [await this.fresh(minTxid), true];
        throw err;
      }
      if (feed.timeline !== this.state.timeline || feed.createdAt !== this.state.created_at) {
        // Rewound, or deleted and created again: the local txids are another history.
        return [await this.fresh(minTxid), true];
      }
      const built = this.verify(feed, this.state.txid, this.state.page_size, feed.timeline);
      if (built.txns.length) {
        // No await from here to the commit: no read sees the file half-written.
        this.closeConn();
        // Dirty until the pages are on disk: a failure or crash in between makes the next
        // sync start from a snapshot rather than read a torn file.
        this.saveState({ ...this.state, dirty: true });
        dropSidecars(this.path);
        const fd = fs.openSync(this.path, "r+");
        try {
          EmbeddedReplica.writePages(fd, built);
        } finally {
          fs.closeSync(fd);
        }
        this.commit(built, feed);
        applied += built.txns.length;
      } else {
        this.saveState({ ...this.state, ...this.seen(feed) });
      }
      if (feed.complete) return [applied, false];
      minTxid = undefined;
    }
  }

  private seen(feed: Feed): Pick<State, "owner_txid" | "synced_at"> {
    return { owner_txid: feed.headTxid, synced_at: Date.now() / 1000 };
  }

  /** Record the applied txid and reopen the file. */
  private commit(built: Built, feed: Feed): void {
    this.saveState(
      emptyState(this.database, {
        txid: built.txid,
        timeline: feed.timeline,
        created_at: feed.createdAt,
        page_size: built.pageSize,
        ...this.seen(feed),
      }),
    );
    this.open();
  }

  /**
   * Build the file again from the newest snapshot and the segments after it, beside the old
   * one, and rename it into place only once all of it verified.
   */
  private async fresh(minTxid: number | undefined): Promise<number> {
    const tmp = this.path + ".fresh";
    for (let round = 0; round < 3; round++) {
      let base = 0;
      let history: [number, number] | null = null;
      let pageSize = 0;
      let data: Buffer = Buffer.alloc(0);
      try {
        [base, history, pageSize, data] = this.verifiedSnapshot(await this.route("/snapshot"));
      } catch (err) {
        if (!(err instanceof ProblemError)) throw err;
        if (err.type === "not-found") {
          // No such profile yet: nothing to hold.
          this.closeConn();
          this.saveState(emptyState(this.database, { owner_txid: 0, synced_at: Date.now() / 1000 }));
          return 0;
        }
        if (err.type !== "no-snapshot") throw err;
      }
      let applied = 0;
      const fd = fs.openSync(tmp, "w");
      let renamed = false;
      try {
        fs.writeSync(fd, data);
        let txid = base;
        let feed: Feed | null = null;
        let restart = false;
        while (feed === null || !feed.complete) {
          try {
            feed = await this.feed(txid, minTxid);
          } catch (err) {
            if (err instanceof ProblemError && FRESH.has(err.type)) {
              restart = true; // a newer snapshot landed meanwhile: start over from it
              break;
            }
            throw err;
          }
          history ??= [feed.timeline, feed.createdAt];
          if (feed.timeline !== history[0] || feed.createdAt !== history[1]) {
            restart = true; // rewound (or deleted and created again) meanwhile: start over
            break;
          }
          const built = this.verify(feed, txid, pageSize, feed.timeline);
          EmbeddedReplica.writePages(fd, built);
          txid = built.txid;
          pageSize = built.pageSize;
          applied += built.txns.length;
        }
        if (!restart && feed !== null) {
          fs.closeSync(fd);
          this.closeConn();
          dropSidecars(this.path);
          fs.renameSync(tmp, this.path);
          renamed = true;
          this.commit({ txns: [], txid, pageSize }, feed);
          return applied;
        }
      } finally {
        if (!renamed) {
          try {
            fs.closeSync(fd);
          } catch {
            // closed already
          }
          fs.rmSync(tmp, { force: true });
        }
      }
    }
    throw new ProblemError(
      409,
      "replica-history-changed",
      `${this.database} kept being rewound or recreated during the sync; sync again`,
    );
  }

  /** The snapshot's txid, history (timeline, database creation time), page size and file bytes. */
  private verifiedSnapshot(r: Response & { bytes: Buffer }): [number, [number, number], number, Buffer] {
    const where = `snapshot of ${this.database}`;
    if (sha256(r.bytes).toString("hex") !== r.headers.get("Memoturn-Sha256")) {
      throw new ReplicaCorrupt(`${where} does not match the checksum its manifest recorded`);
    }
    let snap;
    try {
      snap = decodeSnapshot(r.bytes, where);
    } catch (err) {
      throw new ReplicaCorrupt((err as Error).message);
    }
    if (snap.database !== this.database || snap.branch !== BRANCH) {
      throw new ReplicaCorrupt(`${where} is a snapshot of ${snap.database}/${snap.branch}: refused`);
    }
    if (String(snap.txid) !== r.headers.get("Memoturn-Txid")) {
      throw new ReplicaCorrupt(`${where} holds txid ${snap.txid}, not ${r.headers.get("Memoturn-Txid")}`);
    }
    const timeline = Number(r.headers.get("Memoturn-Timeline") ?? NaN);
    const createdAt = Number(r.headers.get("Memoturn-Created-At") ?? NaN);
    if (!Number.isInteger(timeline) || !Number.isFinite(createdAt)) {
      throw new ReplicaCorrupt(`${where} came without its timeline and creation time`);
    }
    return [snap.txid, [timeline, createdAt], snap.pageSize, snap.data];
  }

  /** Sync until the local file holds `txid` (a write's); no-op if it already does. */
  async waitFor(txid: number | null | undefined): Promise<void> {
    if (txid === null || txid === undefined) await this.sync();
    else if (this.state.txid < txid) await this.sync({ minTxid: txid });
  }

  // -- local reads ----------------------------------------------------------------------

  /** `fn(conn)` on the local file; `empty` while it holds nothing yet (or a 404 of type `missing`). */
  private read<T>(fn: (conn: local.Connection) => T, empty: T, missing?: string): LocalResult<T> {
    const txid = this.state.txid;
    if (this.conn === null && missing !== undefined) {
      throw new ProblemError(404, missing, `${this.database} holds nothing yet (txid ${txid})`, txid);
    }
    let data: T;
    try {
      data = this.conn !== null ? fn(this.conn) : empty;
    } catch (err) {
      if (err instanceof local.LocalProblem) throw new ProblemError(err.status, err.type, err.message, txid);
      throw err;
    }
    return { data, txid, servedBy: "embedded-replica", staleness: this.staleness };
  }

  /**
   * Recall from the local file (`{results, txid}`, as the server answers): BM25 text search,
   * fused with vector similarity when `embedding` (the query's, of the profile's dimension) is given.
   */
  recall(query: string, options: local.RecallOptions = {}): LocalResult<{ results: local.RecallHit[]; txid: number }> {
    const txid = this.state.txid;
    return this.read((c) => ({ results: local.recall(c, query, options), txid }), { results: [], txid });
  }

  get(memoryId: string): LocalResult<local.Memory> {
    return this.read((c) => local.getMemory(c, memoryId), null as never, "memory-not-found");
  }

  history(memoryId: string): LocalResult<local.Memory[]> {
    return this.read((c) => local.history(c, memoryId), [], "memory-not-found");
  }

  /** Memories in id order (`{memories}`). */
  listMemories(
    options: local.MemoryFilters & { limit?: number; after?: string } = {},
  ): LocalResult<{ memories: local.Memory[] }> {
    return this.read((c) => ({ memories: local.listMemories(c, options) }), { memories: [] });
  }

  stats(): LocalResult<local.MemoryStats> {
    return this.read(local.stats, { memories: 0, current: 0, by_type: {}, embedding_dim: null });
  }

  /** A KV item (`{key, value, expires_at, updated_at}`); 404 `key-not-found` if absent. */
  kvGet(key: string): LocalResult<local.KVItem> {
    const result = this.read((c) => local.kvGet(c, key), null, "key-not-found");
    if (result.data === null) {
      throw new ProblemError(
        404,
        "key-not-found",
        `key ${JSON.stringify(key)} not found in ${this.database}`,
        result.txid,
      );
    }
    return result as LocalResult<local.KVItem>;
  }

  kvList(prefix = "", options: { limit?: number; values?: boolean } = {}): LocalResult<{ items: local.KVItem[] }> {
    return this.read((c) => ({ items: local.kvList(c, prefix, options.limit ?? 100, options.values ?? true) }), {
      items: [],
    });
  }

  document(collection: string, id: string): LocalResult<local.Document> {
    return this.read((c) => local.getDocument(c, collection, id), null as never, "document-not-found");
  }

  /** One read-only SQL statement on the local file (`{columns, rows}`); a write is `400 sql-error`. */
  query(sql: string, params: unknown[] = []): LocalResult<local.SQLRows> {
    return this.read((c) => local.select(c, sql, params), { columns: [], rows: [] });
  }

  // -- writes: to the owner, then synced --------------------------------------------------

  private async synced<T extends { txid: number | null }>(write: Promise<T>): Promise<T> {
    const result = await write;
    await this.waitFor(result.txid);
    return result;
  }

  add(...args: Parameters<Profile["add"]>): ReturnType<Profile["add"]> {
    return this.synced(this.remote.add(...args));
  }

  addMany(...args: Parameters<Profile["addMany"]>): ReturnType<Profile["addMany"]> {
    return this.synced(this.remote.addMany(...args));
  }

  forget(...args: Parameters<Profile["forget"]>): ReturnType<Profile["forget"]> {
    return this.synced(this.remote.forget(...args));
  }

  kvPut(...args: Parameters<Database["kvPut"]>): ReturnType<Database["kvPut"]> {
    return this.synced(this.remoteDb.kvPut(...args));
  }

  kvDelete(...args: Parameters<Database["kvDelete"]>): ReturnType<Database["kvDelete"]> {
    return this.synced(this.remoteDb.kvDelete(...args));
  }

  /** SQL that writes, run by the owner; resolves once the local file holds its txid. */
  execute(...args: Parameters<Database["sql"]>): ReturnType<Database["sql"]> {
    return this.synced(this.remoteDb.sql(...args));
  }
}

/**
 * Open (or create) the embedded replica of `namespace`/`profile` at `path` and sync it (unless
 * `offline`; an unreachable node leaves it offline, serving what the file holds);
 * `syncIntervalMs` starts a background sync.
 */
export async function openReplica(
  client: Memoturn,
  namespace: string,
  profile: string,
  path: string,
  options: ReplicaOptions = {},
): Promise<EmbeddedReplica> {
  const replica = new EmbeddedReplica(client, namespace, profile, path, options);
  try {
    if (!options.offline) {
      try {
        await replica.sync();
      } catch (err) {
        if (!(err instanceof ProblemError && OFFLINE_STATUSES.has(err.status))) throw err;
      }
    }
    if (options.syncIntervalMs !== undefined) replica.startBackgroundSync(options.syncIntervalMs);
  } catch (err) {
    await replica.close();
    throw err;
  }
  return replica;
}
