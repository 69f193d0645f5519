import assert from "node:assert/strict";
import { test } from "node:test";

import { ProblemError } from "@memoturn/sdk";

import { client, unique } from "./support.js";

test("fork at a checkpoint, list and delete branches", async () => {
  const mt = client();
  const name = unique("br");
  await mt.createDatabase(name);
  const main = mt.database(name);
  await main.kvPut("a", 1);
  const one = await main.checkpoint("one");
  assert.equal(one.data.checkpoint, "one");
  assert.ok(one.data.txid >= 1);
  await main.kvPut("a", 2);

  const fork = await main.fork("exp", { checkpoint: "one" });
  assert.equal(fork.data.branch, "exp");
  assert.deepEqual(fork.data.parent, { branch: "main", txid: one.data.txid });
  const exp = main.onBranch("exp");
  assert.equal((await exp.kvGet("a")).data.value, 1);
  assert.equal((await main.kvGet("a")).data.value, 2);
  await exp.kvPut("b", "only on exp");
  await assert.rejects(main.kvGet("b"), (err: unknown) => err instanceof ProblemError && err.status === 404);
  assert.equal((await mt.database(name, "exp").describe()).data.branch, "exp");

  const burner = await main.fork("burner", { ttl_seconds: 3600 });
  assert.ok(burner.data.expires_at! > burner.data.created_at);

  const listed = await main.branches();
  assert.deepEqual(listed.data.branches.map((b) => b.branch).sort(), ["burner", "exp", "main"]);
  await exp.deleteBranch();
  assert.deepEqual((await main.branches()).data.branches.map((b) => b.branch).sort(), ["burner", "main"]);
  await assert.rejects(
    main.deleteBranch(),
    (err: unknown) => err instanceof ProblemError && err.type === "main-branch",
  );
});

test("checkpoints: set, list, delete; rewind to one and undo the rewind", async () => {
  const mt = client();
  const name = unique("rw");
  await mt.createDatabase(name);
  const db = mt.database(name);
  await db.kvPut("k", "before");
  const cp = await db.checkpoint("good");
  const bad = await db.kvPut("k", "after");
  assert.deepEqual((await db.checkpoints()).data.checkpoints, { good: cp.data.txid });

  const rewound = await db.rewind({ checkpoint: "good" });
  assert.equal(rewound.data.head_txid, cp.data.txid);
  assert.equal(rewound.txid, cp.data.txid);
  assert.equal((await db.kvGet("k")).data.value, "before");
  const info = (await db.branches()).data.branches.find((b) => b.branch === "main")!;
  assert.equal(info.abandoned.length, 1);

  const undone = await db.undoRewind();
  assert.equal(undone.data.head_txid, bad.txid);
  assert.equal((await db.kvGet("k")).data.value, "after");

  const byTxid = await db.rewind({ txid: cp.data.txid });
  assert.equal(byTxid.data.head_txid, cp.data.txid);

  await db.checkpoint("old", 1);
  await db.deleteCheckpoint("good");
  assert.deepEqual(Object.keys((await db.checkpoints()).data.checkpoints), ["old"]);
  await db.setPolicy({ keep_snapshots: 3 });
  const gc = await db.gc({ dry_run: true });
  assert.equal(typeof gc.data, "object");
});
