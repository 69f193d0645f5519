import assert from "node:assert/strict";
import { test } from "node:test";

import { ProblemError } from "@memoturn/sdk";

import { client, sleep, unique } from "./support.js";

test("KV put, get, list, delete, with a ttl and a key holding slashes", async () => {
  const mt = client();
  const name = unique("kv");
  await mt.createDatabase(name);
  const db = mt.database(name);
  const put = await db.kvPut("users/1", { v: 1 });
  assert.equal(put.data.key, "users/1");
  const got = await db.kvGet("users/1", { minTxid: put.txid! });
  assert.deepEqual(got.data.value, { v: 1 });
  assert.ok(got.txid! >= put.txid!);
  assert.equal(got.servedBy, "primary");

  await db.kvPut("users/2", [1, 2, 3], { durability: "durable" });
  await db.kvPut("other", "x");
  const listed = await db.kvList({ prefix: "users/" });
  assert.deepEqual(
    listed.data.items.map((i) => i.key),
    ["users/1", "users/2"],
  );
  const page = await db.kvList({ limit: 1 });
  assert.equal(page.data.items.length, 1);
  assert.ok(page.data.next_cursor);
  const keysOnly = await db.kvList({ values: false });
  assert.equal(keysOnly.data.items.length, 3);

  const deleted = await db.kvDelete("users/1");
  assert.deepEqual([deleted.data.deleted, (await db.kvDelete("users/1")).data.deleted], [true, false]);

  const brief = await db.kvPut("brief", "gone soon", { ttl_seconds: 3 });
  const item = await db.kvGet("brief", { minTxid: brief.txid! });
  assert.ok(Math.abs(item.data.expires_at! - item.data.updated_at - 3) < 0.5);
  // expired: a 404 once the ttl has passed (polled, however slow the machine)
  let expired: unknown = null;
  for (let waited = 0; expired === null && waited < 60_000; waited += 250) {
    await sleep(250);
    expired = await db.kvGet("brief").then(
      () => null,
      (err: unknown) => err,
    );
  }
  assert.ok(expired instanceof ProblemError, String(expired));
  assert.deepEqual([expired.status, expired.type], [404, "key-not-found"]);
  assert.ok(Date.now() / 1000 >= item.data.expires_at!);
});

test("documents: insert, get, replace, patch, query with an index, delete", async () => {
  const mt = client();
  const name = unique("docs");
  await mt.createDatabase(name);
  const notes = mt.database(name).documents("notes");
  const a = await notes.insert({ title: "a", stars: 3, tags: ["x"] }, { id: "a" });
  assert.equal(a.data.id, "a");
  const b = await notes.insert({ title: "b", stars: 5 });
  assert.ok(b.data.id.length > 0);
  await notes.insert({ title: "c", stars: 1 }, { id: "c", durability: "durable" });
  const index = await notes.createIndex("stars");
  assert.equal(index.data.path, "stars");

  const got = await notes.get("a", { minTxid: index.data.txid });
  assert.deepEqual(got.data.body, { title: "a", stars: 3, tags: ["x"] });
  const replaced = await notes.replace("a", { title: "A", stars: 4 });
  assert.deepEqual(replaced.data.body, { title: "A", stars: 4 });
  const patched = await notes.patch("a", { stars: 2, title: null, seen: true });
  assert.deepEqual(patched.data.body, { stars: 2, seen: true });

  const page = await notes.query({ filter: { stars: { $gte: 2 } }, sort: [{ path: "stars", order: "desc" }] });
  assert.deepEqual(
    page.data.documents.map((d) => d.body["stars"]),
    [5, 2],
  );
  const first = await notes.query({ sort: [{ path: "stars" }], limit: 1 });
  assert.equal(first.data.documents[0]!.id, "c");
  assert.ok(first.data.next_cursor);

  const removed = await notes.delete("a");
  assert.ok(removed.txid! > patched.txid!);
  await assert.rejects(notes.get("a"), (err: unknown) => err instanceof ProblemError && err.status === 404);
});

test("vectors: create, upsert, query nearest with a metadata filter, delete", async () => {
  const mt = client();
  const name = unique("vec");
  await mt.createDatabase(name);
  const emb = mt.database(name).vectors("emb");
  const created = await emb.create(3);
  assert.equal(created.data.dimensions, 3);
  const up = await emb.upsert([
    { id: "x", vector: [1, 0, 0], metadata: { kind: "axis" } },
    { id: "y", vector: [0, 1, 0], metadata: { kind: "axis" } },
    { id: "xy", vector: [1, 1, 0], metadata: { kind: "diagonal" } },
  ]);
  assert.equal(up.data.upserted, 3);
  const near = await emb.query([1, 0.1, 0], { k: 2, minTxid: up.txid! });
  assert.deepEqual(
    near.data.results.map((h) => h.id),
    ["x", "xy"],
  );
  assert.ok(near.data.results[0]!.score > near.data.results[1]!.score);
  const axes = await emb.query([1, 1, 0], { k: 3, filter: { kind: "axis" } });
  assert.deepEqual(axes.data.results.map((h) => h.id).sort(), ["x", "y"]);
  await emb.delete("x");
  const after = await emb.query([1, 0, 0], { k: 3 });
  assert.ok(!after.data.results.some((h) => h.id === "x"));
  await assert.rejects(
    emb.delete("x"),
    (err: unknown) => err instanceof ProblemError && err.type === "vector-not-found",
  );
});

test("SQL: a transaction with parameters, then a read at the write's txid", async () => {
  const mt = client();
  const name = unique("sql");
  await mt.createDatabase(name);
  const db = mt.database(name);
  const out = await db.sql([
    "CREATE TABLE t(x, y)",
    ["INSERT INTO t VALUES (?, ?)", [5, "five"]],
    { sql: "INSERT INTO t VALUES (?, ?)", params: [6, null] },
    "SELECT x, y FROM t ORDER BY x",
  ]);
  assert.deepEqual(out.data.results[3]!.rows, [
    [5, "five"],
    [6, null],
  ]);
  assert.deepEqual(out.data.results[3]!.columns, ["x", "y"]);
  assert.equal(out.data.results[1]!.rows_affected, 1);
  const read = await db.sql("SELECT count(*) FROM t", { minTxid: out.txid! });
  assert.deepEqual(read.data.results[0]!.rows, [[2]]);

  // all or nothing: the failing statement rolls the insert back
  await assert.rejects(db.sql(["INSERT INTO t VALUES (7, 'seven')", "INSERT INTO nope VALUES (1)"]), ProblemError);
  const count = await db.sql("SELECT count(*) FROM t");
  assert.deepEqual(count.data.results[0]!.rows, [[2]]);
});
