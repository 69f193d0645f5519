// Embedded replicas in Node (@memoturn/sdk/replica) against the real memoturnd that
// tests/test_typescript_sdk.py starts: two devices converge after writes from either; a replica
// far behind starts again from a snapshot; forged or corrupt segments are refused and the local
// file kept; a token of another namespace gets nothing; the offline mode keeps answering and says
// how stale it is. Fault injection (forged feeds, a node that goes away) sits between the replica
// and the real node: a `fetch` that rewrites what the node sent, and a local HTTP proxy that closes.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";

import { Memoturn, ProblemError } from "@memoturn/sdk";
import { EmbeddedReplica, ReplicaCorrupt, openReplica } from "@memoturn/sdk/replica";

import { URL, sleep, unique } from "./support.js";

const NAMESPACE = "tsr";
const TOKENS = JSON.parse(process.env["MEMOTURN_NS_TOKENS"] ?? "{}") as Record<string, string>;
const TOKEN = TOKENS[NAMESPACE];
if (!TOKEN) throw new Error("MEMOTURN_NS_TOKENS has no token of namespace tsr: run with pytest");

function tsr(options: { url?: string; retries?: number } = {}): Memoturn {
  return new Memoturn(options.url ?? URL, { token: TOKEN, retries: options.retries ?? 5 });
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "memoturn-replica-"));
}

async function poll<T>(condition: () => T | Promise<T>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(50);
  }
}

function kv(replica: EmbeddedReplica): unknown[][] {
  return replica.query("SELECT key, value FROM __memoturn_kv ORDER BY key").data.rows;
}

function memories(replica: EmbeddedReplica): [string, boolean][] {
  return replica.listMemories({ includeSuperseded: true }).data.memories.map((m) => [m.content, m.current]);
}

async function headTxid(mt: Memoturn, profile: string): Promise<number> {
  return (await mt.profile(NAMESPACE, profile).stats()).txid!;
}

test("two devices converge after writes from either, reads answered locally", async () => {
  const mt = tsr();
  const profile = unique("conv");
  const dir = tmp();
  const laptop = await openReplica(mt, NAMESPACE, profile, path.join(dir, "laptop", "conv.db"));
  const phone = await openReplica(mt, NAMESPACE, profile, path.join(dir, "phone", "conv.db"));
  try {
    assert.equal(laptop.txid, 0);
    assert.throws(() => laptop.kvGet("nothing"), { type: "key-not-found", status: 404 });

    // Text-only recall ranks by BM25, whose IDF is 0 for a term in half the rows or more: give it others.
    await laptop.addMany([
      { content: "Bob plays chess on Sundays", type: "fact" },
      { content: "Carol runs marathons", type: "fact" },
    ]);
    // A write through one device is readable there at once (read-your-writes), locally.
    const stored = await laptop.add("Alice prefers green tea", { type: "preference", subject: "drink" });
    assert.ok(laptop.txid >= stored.txid!);
    const hits = laptop.recall("what does Alice drink? green tea");
    assert.equal(hits.servedBy, "embedded-replica");
    assert.ok(hits.txid >= stored.txid!);
    assert.deepEqual(
      hits.data.results.map((h) => h.memory.content),
      ["Alice prefers green tea"],
    );
    assert.equal(hits.data.results[0]!.text_match, true);
    const put = await phone.kvPut("settings", { theme: "dark" });
    assert.deepEqual(phone.kvGet("settings").data.value, { theme: "dark" });
    assert.ok(phone.txid >= put.txid!);
    await phone.add("Alice now drinks black coffee", { type: "preference", subject: "drink" });
    const doc = await mt.database(`${NAMESPACE}--${profile}`).documents("notes").insert({ text: "hi" }, { id: "n1" });
    await laptop.waitFor(doc.txid);
    assert.deepEqual(laptop.document("notes", "n1").data.body, { text: "hi" });
    await laptop.kvDelete("nothing-here");

    // After a sync, both devices hold the same txid and the same data, which is the owner's.
    await laptop.sync();
    await phone.sync();
    assert.equal(laptop.txid, phone.txid);
    assert.equal(laptop.txid, await headTxid(mt, profile));
    assert.deepEqual(kv(laptop), [["settings", '{"theme":"dark"}']]);
    assert.deepEqual(kv(phone), kv(laptop));
    const expected: [string, boolean][] = [
      ["Alice prefers green tea", false],
      ["Alice now drinks black coffee", true],
      ["Bob plays chess on Sundays", true],
      ["Carol runs marathons", true],
    ];
    assert.deepEqual(memories(laptop).sort(), expected.sort());
    assert.deepEqual(memories(phone).sort(), expected.sort());
    assert.deepEqual(
      phone.recall("coffee").data.results.map((h) => h.memory.content),
      ["Alice now drinks black coffee"],
    );
    const remote = (await mt.profile(NAMESPACE, profile).stats()).data;
    assert.equal(laptop.stats().data.memories, remote.memories);
    assert.equal(laptop.stats().data.current, remote.current);
    const history = laptop.history(stored.data.memory.id).data.map((m) => m.content);
    assert.deepEqual(history, ["Alice prefers green tea", "Alice now drinks black coffee"]);

    // A client-supplied query vector adds similarity to the text search.
    // Carol's own stored vector finds Carol first, with no word in common.
    const [[blob]] = phone.query("SELECT embedding FROM __memoturn_memories WHERE content LIKE 'Carol%'").data.rows as [
      [Uint8Array],
    ];
    const carol = Array.from(new Float32Array(new Uint8Array(blob).buffer));
    assert.equal(carol.length, remote.embedding_dim);
    const vectorHits = phone.recall("zzz", { embedding: carol }).data.results;
    assert.equal(vectorHits[0]!.memory.content, "Carol runs marathons");
    assert.ok(Math.abs(vectorHits[0]!.similarity! - 1) < 1e-4);
    assert.equal(vectorHits[0]!.text_match, false);
    assert.throws(() => phone.recall("zzz", { embedding: [1, 2, 3] }), { status: 400, type: "dimension-mismatch" });

    // Local SQL is read-only; a write is refused as the server refuses bad SQL.
    assert.throws(
      () => laptop.query("DELETE FROM __memoturn_kv"),
      (err: unknown) => err instanceof ProblemError && err.status === 400 && err.type === "sql-error",
    );
    const stmt = await laptop.execute([
      "CREATE TABLE IF NOT EXISTS notes(body TEXT)",
      ["INSERT INTO notes(body) VALUES (?)", ["from the laptop"]],
    ]);
    assert.ok(laptop.txid >= stmt.txid!);
    assert.deepEqual(laptop.query("SELECT body FROM notes").data.rows, [["from the laptop"]]);

    // One replica holds a file at a time; reopened, it continues from its txid.
    assert.throws(() => new EmbeddedReplica(mt, NAMESPACE, profile, laptop.path), { type: "replica-in-use" });
    const held = laptop.txid;
    await laptop.close();
    const again = await openReplica(mt, NAMESPACE, profile, laptop.path, { offline: true });
    try {
      assert.equal(again.txid, held);
      assert.deepEqual(kv(again), kv(phone));
      const report = await again.goOnline();
      assert.equal(report.snapshot, false);
    } finally {
      await again.close();
    }
  } finally {
    await laptop.close();
    await phone.close();
  }
});

test("a replica far behind starts again from the snapshot when it moves fewer bytes", async () => {
  const mt = tsr();
  const profile = unique("far");
  const db = mt.database(`${NAMESPACE}--${profile}`);
  await mt.profile(NAMESPACE, profile).add("a profile is created by its first memory");
  await db.setPolicy({ snapshot_every_txids: 5, keep_snapshots: 1000 });
  const dir = tmp();
  const fallback = await openReplica(mt, NAMESPACE, profile, path.join(dir, "a", "far.db"));
  const segmentsOnly = await openReplica(mt, NAMESPACE, profile, path.join(dir, "b", "far.db"), {
    snapshotIfSmaller: false,
  });
  try {
    for (let i = 0; i < 40; i++) await db.kvPut("counter", i, { durability: "durable" });
    await poll(async () => {
      const r = await mt.request<{ snapshot: { txid: number } | null }>({
        method: "GET",
        path: `/v1/namespaces/${NAMESPACE}/profiles/${profile}/replica/manifest`,
      });
      return (r.data.snapshot?.txid ?? 0) > fallback.txid + 5;
    }, "a snapshot past the replicas' txid");
    const report = await fallback.sync();
    assert.equal(report.snapshot, true);
    const segments = await segmentsOnly.sync();
    assert.equal(segments.snapshot, false);
    assert.ok(segments.appliedTxns >= 40);
    assert.equal(fallback.txid, segmentsOnly.txid);
    assert.equal(fallback.kvGet("counter").data.value, 39);
    assert.equal(segmentsOnly.kvGet("counter").data.value, 39);
  } finally {
    await fallback.close();
    await segmentsOnly.close();
  }
});

// -- forged and corrupt feeds -------------------------------------------------------------

interface FeedParts {
  header: Record<string, unknown> & { segments: Record<string, unknown>[] };
  blobs: Buffer[];
}

function splitFeed(data: Buffer): FeedParts {
  const hlen = data.readUInt32BE(8);
  const header = JSON.parse(data.subarray(12, 12 + hlen).toString()) as FeedParts["header"];
  const blobs: Buffer[] = [];
  let pos = 12 + hlen;
  for (const s of header.segments) {
    blobs.push(Buffer.from(data.subarray(pos, pos + (s["size"] as number))));
    pos += s["size"] as number;
  }
  return { header, blobs };
}

function joinFeed(feed: FeedParts): Buffer {
  const h = Buffer.from(JSON.stringify(feed.header));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(h.length);
  return Buffer.concat([Buffer.from("MTFEED01"), len, h, ...feed.blobs]);
}

const sha = (b: Buffer): Buffer => createHash("sha256").update(b).digest();

/** Rewrite segment 0's header with `change` and seal it again (a validly sealed forgery). */
function reseal(feed: FeedParts, change: (h: Record<string, unknown>) => void): void {
  const blob = feed.blobs[0]!;
  const hlen = blob.readUInt32BE(8);
  const header = JSON.parse(blob.subarray(12, 12 + hlen).toString()) as Record<string, unknown>;
  change(header);
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(h.length);
  const body = Buffer.concat([Buffer.from("MTSEG001"), len, h, blob.subarray(12 + hlen, blob.length - 32)]);
  feed.blobs[0] = Buffer.concat([body, sha(body)]);
  listChecksum(feed);
}

/** The header lists the (forged) blob's checksum: only the seal or the contents can tell. */
function listChecksum(feed: FeedParts): void {
  const entry = feed.header.segments[0]!;
  entry["size"] = feed.blobs[0]!.length;
  entry["sha256"] = sha(feed.blobs[0]!).toString("hex");
}

const FORGERIES: [string, (feed: FeedParts) => void, RegExp][] = [
  ["a flipped byte", (f) => void (f.blobs[0]![f.blobs[0]!.length >> 1]! ^= 0xff), /checksum its manifest recorded/],
  [
    "a broken seal",
    (f) => {
      f.blobs[0]![f.blobs[0]!.length - 100]! ^= 0xff;
      listChecksum(f);
    },
    /checksum mismatch/,
  ],
  ["another database", (f) => reseal(f, (h) => (h["database"] = "tsr--someone-else")), /tsr--someone-else/],
  ["another branch", (f) => reseal(f, (h) => (h["branch"] = "other")), /\/other: refused/],
  [
    "a txid gap",
    (f) =>
      reseal(f, (h) => {
        const txns = h["txns"] as { txid: number }[];
        for (const t of txns) t.txid += 1;
        h["first_txid"] = (h["first_txid"] as number) + 1;
        h["last_txid"] = (h["last_txid"] as number) + 1;
        const entry = f.header.segments[0]!;
        entry["first_txid"] = h["first_txid"];
        entry["last_txid"] = h["last_txid"];
        entry["apply_to"] = (entry["apply_to"] as number) + 1;
        f.header["head_txid"] = (f.header["head_txid"] as number) + 1;
      }),
    /gap/,
  ],
];

for (const [name, forge, refusal] of FORGERIES) {
  test(`a forged or corrupt segment is refused and the local file kept: ${name}`, async () => {
    const mt = tsr();
    const profile = unique("forged");
    const db = mt.database(`${NAMESPACE}--${profile}`);
    let forging = false;
    const forgingFetch: typeof fetch = async (input, init) => {
      const r = await globalThis.fetch(input, init);
      if (!forging || !String(input).includes("/replica/segments") || r.status !== 200) return r;
      const feed = splitFeed(Buffer.from(await r.arrayBuffer()));
      if (feed.blobs.length) forge(feed);
      return new Response(joinFeed(feed), { status: 200, headers: r.headers });
    };
    const file = path.join(tmp(), "forged.db");
    const replica = await openReplica(mt, NAMESPACE, profile, file, { fetch: forgingFetch });
    try {
      await mt.profile(NAMESPACE, profile).add("a profile is created by its first memory");
      await db.kvPut("before", 1);
      await replica.sync();
      const before = replica.txid;
      const bytes = fs.readFileSync(file);
      await db.kvPut("after", 2);
      forging = true;
      await assert.rejects(
        replica.sync(),
        (err: unknown) => err instanceof ReplicaCorrupt && refusal.test(err.message),
      );
      assert.equal(replica.txid, before);
      assert.ok(fs.readFileSync(file).equals(bytes), "the local file is untouched");
      assert.equal(replica.kvGet("before").data.value, 1);
      assert.throws(() => replica.kvGet("after"), { type: "key-not-found" });
      assert.match(replica.staleness.lastError ?? "", refusal);
      forging = false;
      await replica.sync();
      assert.equal(replica.kvGet("after").data.value, 2);
      assert.equal(replica.staleness.lastError, null);
    } finally {
      await replica.close();
    }
  });
}

test("a token of another namespace gets nothing", async () => {
  const owner = tsr();
  const profile = unique("secret");
  await owner.profile(NAMESPACE, profile).add("the launch code is 0000");
  const base = `${URL}/v1/namespaces/${NAMESPACE}/profiles/${profile}/replica`;
  const dir = tmp();
  for (const [token, status] of [
    [TOKENS["tsrival"], 403],
    ["wrong", 401],
    [undefined, 401],
  ] as const) {
    for (const route of ["/manifest", "/snapshot", "/segments?after=0"]) {
      const r = await fetch(base + route, token ? { headers: { Authorization: `Bearer ${token}` } } : {});
      const body = Buffer.from(await r.arrayBuffer());
      assert.equal(r.status, status, `${route}: ${body.toString()}`);
      assert.ok(!body.includes("launch"));
    }
    const other = new Memoturn(URL, { ...(token ? { token } : {}), retries: 0 });
    const file = path.join(dir, String(token), "secret.db");
    await assert.rejects(openReplica(other, NAMESPACE, profile, file), { status });
    assert.ok(!fs.existsSync(file));
  }
  // The rival's own namespace works, and reaches only its own profile.
  const rival = new Memoturn(URL, { token: TOKENS["tsrival"]! });
  await rival.profile("tsrival", profile).add("rival's memory");
  const mine = await openReplica(rival, "tsrival", profile, path.join(dir, "rival", "own.db"));
  try {
    assert.equal(mine.stats().data.memories, 1);
    assert.deepEqual(
      mine.listMemories().data.memories.map((m) => m.content),
      ["rival's memory"],
    );
  } finally {
    await mine.close();
  }
});

/** A local HTTP proxy to the node: the node "goes away" when it closes. */
async function proxy(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(([k, v]) => typeof v === "string" && k !== "host" && k !== "connection"),
      ) as Record<string, string>;
      const body = chunks.length ? Buffer.concat(chunks) : undefined;
      fetch(URL + req.url, { method: req.method ?? "GET", headers, ...(body ? { body } : {}) })
        .then(async (r) => {
          const out = Buffer.from(await r.arrayBuffer());
          const h: Record<string, string> = {};
          r.headers.forEach((v, k) => {
            if (k !== "content-length" && k !== "transfer-encoding" && k !== "content-encoding") h[k] = v;
          });
          res.writeHead(r.status, h).end(out);
        })
        .catch((err: unknown) => res.writeHead(502).end(String(err)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

test("background sync, and the offline mode keeps answering and says how stale it is", async () => {
  const node = await proxy();
  const viaProxy = tsr({ url: node.url, retries: 1 });
  const direct = tsr();
  const profile = unique("bg");
  const file = path.join(tmp(), "device", "bg.db");
  const replica = await openReplica(viaProxy, NAMESPACE, profile, file, { syncIntervalMs: 100 });
  try {
    await direct.profile(NAMESPACE, profile).add("a profile is created by its first memory");
    const written = await direct.database(`${NAMESPACE}--${profile}`).kvPut("k", "v"); // not through the replica
    await poll(() => replica.txid >= written.txid!, "the background sync to apply the write");
    assert.equal(replica.kvGet("k").data.value, "v");

    await node.close(); // the node goes away: the replica keeps answering, and says how stale it is
    await poll(() => replica.staleness.offline, "the replica to notice it is offline");
    await sleep(200);
    const read = replica.kvGet("k");
    assert.equal(read.data.value, "v");
    assert.equal(read.txid, written.txid);
    const stale = read.staleness;
    assert.equal(stale.offline, true);
    assert.equal(stale.ownerTxid, written.txid);
    assert.equal(stale.behindTxids, 0);
    assert.ok(stale.secondsSinceSync !== null && stale.secondsSinceSync > 0);
    assert.match(stale.lastError ?? "", /unreachable/);
    await assert.rejects(replica.sync(), { type: "unreachable", status: 0 });
    await assert.rejects(replica.kvPut("k", "w"), { type: "unreachable" });
  } finally {
    await replica.close();
  }
  // Opened with no node at all, the file answers offline.
  const cold = await openReplica(viaProxy, NAMESPACE, profile, file, { offline: true });
  try {
    assert.equal(cold.kvGet("k").data.value, "v");
    assert.equal(cold.staleness.offline, true);
    assert.ok(cold.staleness.secondsSinceSync !== null);
  } finally {
    await cold.close();
  }
  // Opened online against a node that is gone, it opens offline rather than fail.
  const gone = await openReplica(viaProxy, NAMESPACE, profile, file);
  try {
    assert.equal(gone.offline, true);
    assert.equal(gone.kvGet("k").data.value, "v");
    assert.match(gone.staleness.lastError ?? "", /unreachable/);
  } finally {
    await gone.close();
  }
});
