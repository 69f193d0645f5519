/**
 * The binary formats an embedded replica is served, decoded and verified exactly as the Python
 * replica does (`memoturn/storage/segment.py`, `snapshot.py`, `replica_feed.py`): a feed
 * (`MTFEED01`: header JSON, then the segment objects as stored), sealed segments (`MTSEG001`:
 * header, pages, SHA-256 trailer) and sealed snapshots (`MTSNP001`). All integers big-endian.
 */
import { createHash } from "node:crypto";

const SEGMENT_MAGIC = Buffer.from("MTSEG001");
const SNAPSHOT_MAGIC = Buffer.from("MTSNP001");
const FEED_MAGIC = Buffer.from("MTFEED01");
const DIGEST = 32;

/** Something failed verification (a seal, a checksum, the framing); the message says what. */
export class FormatCorrupt extends Error {
  override name = "FormatCorrupt";
}

export function sha256(data: Uint8Array): Buffer {
  return createHash("sha256").update(data).digest();
}

/** One committed transaction of a segment: the final image of each page it wrote. */
export interface Txn {
  txid: number;
  ts: number;
  dbPages: number;
  pages: Map<number, Buffer>;
}

export interface Segment {
  database: string;
  branch: string;
  epoch: number;
  timeline: number;
  pageSize: number;
  txns: Txn[];
}

export interface Snapshot {
  database: string;
  branch: string;
  epoch: number;
  txid: number;
  ts: number;
  pageSize: number;
  data: Buffer;
}

export interface FeedEntry {
  firstTxid: number;
  lastTxid: number;
  /** The last txid to apply from this segment (a rewind may cut one short). */
  applyTo: number;
  size: number;
  sha256: string;
}

export interface Feed {
  database: string;
  branch: string;
  timeline: number;
  headTxid: number;
  headTs: number | null;
  after: number;
  complete: boolean;
  /** When the branch was created: a database deleted and created again is another history. */
  createdAt: number;
  entries: FeedEntry[];
  blobs: Buffer[];
}

function int(v: unknown): number {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
  if (!Number.isFinite(n) || !Number.isInteger(n)) throw new TypeError(`not an integer: ${JSON.stringify(v)}`);
  return n;
}

function float(v: unknown): number {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
  if (!Number.isFinite(n)) throw new TypeError(`not a number: ${JSON.stringify(v)}`);
  return n;
}

function str(v: unknown): string {
  if (v === undefined || v === null) throw new TypeError("missing string");
  return String(v);
}

function header(data: Buffer, magicLength: number, end: number): { h: Record<string, unknown>; next: number } {
  const hlen = data.readUInt32BE(magicLength);
  const start = magicLength + 4;
  if (start + hlen > end) throw new TypeError("header longer than the object");
  const h: unknown = JSON.parse(data.subarray(start, start + hlen).toString("utf8"));
  if (typeof h !== "object" || h === null || Array.isArray(h)) throw new TypeError("header is not an object");
  return { h: h as Record<string, unknown>, next: start + hlen };
}

/** Verify and parse a sealed segment; {@link FormatCorrupt} on any defect. */
export function decodeSegment(data: Buffer, where = "segment"): Segment {
  if (data.length < SEGMENT_MAGIC.length + 4 + DIGEST || !data.subarray(0, 8).equals(SEGMENT_MAGIC)) {
    throw new FormatCorrupt(`${where}: not a Memoturn segment (bad magic or too short)`);
  }
  const body = data.subarray(0, data.length - DIGEST);
  if (!sha256(body).equals(data.subarray(data.length - DIGEST))) {
    throw new FormatCorrupt(`${where}: checksum mismatch`);
  }
  let seg: Segment;
  let meta: unknown[];
  let pos: number;
  let h: Record<string, unknown>;
  try {
    ({ h, next: pos } = header(body, SEGMENT_MAGIC.length, body.length));
    if (!Array.isArray(h["txns"])) throw new TypeError("txns is not a list");
    meta = h["txns"] as unknown[];
    seg = {
      database: str(h["database"]),
      branch: str(h["branch"]),
      epoch: int(h["epoch"]),
      timeline: h["timeline"] === undefined ? 0 : int(h["timeline"]),
      pageSize: int(h["page_size"]),
      txns: [],
    };
    const step = 4 + seg.pageSize;
    for (const m of meta) {
      const t = m as Record<string, unknown>;
      const txn: Txn = { txid: int(t["txid"]), ts: float(t["ts"]), dbPages: int(t["db_pages"]), pages: new Map() };
      const count = int(t["pages"]);
      for (let i = 0; i < count; i++) {
        if (pos + step > body.length) throw new FormatCorrupt(`${where}: truncated page data`);
        txn.pages.set(body.readUInt32BE(pos), body.subarray(pos + 4, pos + step));
        pos += step;
      }
      seg.txns.push(txn);
    }
  } catch (err) {
    if (err instanceof FormatCorrupt) throw err;
    throw new FormatCorrupt(`${where}: malformed header (${(err as Error).message})`);
  }
  if (pos !== body.length) throw new FormatCorrupt(`${where}: ${body.length - pos} trailing bytes`);
  const first = seg.txns[0];
  const last = seg.txns[seg.txns.length - 1];
  if (!first || !last) throw new FormatCorrupt(`${where}: no transactions`);
  for (let i = 1; i < seg.txns.length; i++) {
    const prev = seg.txns[i - 1]!.txid;
    const cur = seg.txns[i]!.txid;
    if (cur !== prev + 1) throw new FormatCorrupt(`${where}: txids ${prev} -> ${cur} are not contiguous`);
  }
  if (first.txid !== h["first_txid"] || last.txid !== h["last_txid"]) {
    throw new FormatCorrupt(`${where}: header txid range disagrees with its transactions`);
  }
  return seg;
}

/** Verify and parse a sealed snapshot. */
export function decodeSnapshot(data: Buffer, where = "snapshot"): Snapshot {
  if (data.length < SNAPSHOT_MAGIC.length + 4 + DIGEST || !data.subarray(0, 8).equals(SNAPSHOT_MAGIC)) {
    throw new FormatCorrupt(`${where}: not a Memoturn snapshot (bad magic or too short)`);
  }
  const end = data.length - DIGEST;
  if (!sha256(data.subarray(0, end)).equals(data.subarray(end))) {
    throw new FormatCorrupt(`${where}: checksum mismatch`);
  }
  let snap: Snapshot;
  let h: Record<string, unknown>;
  try {
    let next: number;
    ({ h, next } = header(data, SNAPSHOT_MAGIC.length, end));
    snap = {
      database: str(h["database"]),
      branch: str(h["branch"]),
      epoch: int(h["epoch"]),
      txid: int(h["txid"]),
      ts: float(h["ts"]),
      pageSize: int(h["page_size"]),
      data: data.subarray(next, end),
    };
  } catch (err) {
    throw new FormatCorrupt(`${where}: malformed header (${(err as Error).message})`);
  }
  if (snap.pageSize && (snap.data.length % snap.pageSize || snap.data.length / snap.pageSize !== h["db_pages"])) {
    throw new FormatCorrupt(`${where}: data size disagrees with header`);
  }
  return snap;
}

/** Split a feed into its header and segment objects; {@link FormatCorrupt} if the framing is wrong. */
export function decodeFeed(data: Buffer): Feed {
  if (data.length < FEED_MAGIC.length + 4 || !data.subarray(0, 8).equals(FEED_MAGIC)) {
    throw new FormatCorrupt("not a Memoturn replica feed (bad magic or too short)");
  }
  let feed: Feed;
  let pos: number;
  try {
    let h: Record<string, unknown>;
    ({ h, next: pos } = header(data, FEED_MAGIC.length, data.length));
    if (!Array.isArray(h["segments"])) throw new TypeError("segments is not a list");
    feed = {
      database: str(h["database"]),
      branch: str(h["branch"]),
      timeline: int(h["timeline"]),
      headTxid: int(h["head_txid"]),
      headTs: h["head_ts"] === null ? null : float(h["head_ts"]),
      after: int(h["after"]),
      complete: Boolean(h["complete"]),
      createdAt: float(h["created_at"]),
      entries: (h["segments"] as Record<string, unknown>[]).map((e) => ({
        firstTxid: int(e["first_txid"]),
        lastTxid: int(e["last_txid"]),
        applyTo: int(e["apply_to"]),
        size: int(e["size"]),
        sha256: str(e["sha256"]),
      })),
      blobs: [],
    };
  } catch (err) {
    throw new FormatCorrupt(`malformed feed header (${(err as Error).message})`);
  }
  for (const entry of feed.entries) {
    if (entry.size < 0 || pos + entry.size > data.length)
      throw new FormatCorrupt("feed is shorter than its header says");
    feed.blobs.push(data.subarray(pos, pos + entry.size));
    pos += entry.size;
  }
  if (pos !== data.length) throw new FormatCorrupt(`${data.length - pos} bytes after the last segment of the feed`);
  return feed;
}
