import assert from "node:assert/strict";
import { test } from "node:test";

import { client, sleep, unique } from "./support.js";

test("add, recall with read-your-writes, history, stats, forget, list", async () => {
  const mt = client();
  const alice = mt.profile("acme", unique("alice"));
  const first = await alice.add("Alice prefers green tea", { type: "preference", subject: "drink", tags: ["food"] });
  assert.ok(first.txid !== null && first.txid > 0);
  assert.equal(first.data.memory.current, true);
  assert.equal(first.data.txid, first.txid);
  const second = await alice.add("Alice now drinks black coffee", {
    type: "preference",
    subject: "drink",
    durability: "durable",
  });
  assert.ok(second.txid! > first.txid!);

  const hits = await alice.recall("what does Alice drink?", { minTxid: second.txid! });
  assert.ok(hits.txid! >= second.txid!);
  assert.deepEqual(
    hits.data.results.map((h) => h.memory.content),
    ["Alice now drinks black coffee"],
  );
  assert.equal(typeof hits.data.results[0]!.score, "number");

  const history = await alice.history(second.data.memory.id);
  assert.deepEqual(
    history.data.map((m) => m.content),
    ["Alice prefers green tea", "Alice now drinks black coffee"],
  );
  assert.equal((await alice.get(first.data.memory.id)).data.superseded_by, second.data.memory.id);
  assert.equal((await alice.stats()).data.current, 1);

  const forgotten = await alice.forget(first.data.memory.id);
  assert.equal(forgotten.data, null);
  assert.ok(forgotten.txid! > second.txid!);
  const listed = await alice.list({ include_superseded: true });
  assert.deepEqual(
    listed.data.memories.map((m) => m.id),
    [second.data.memory.id],
  );
  assert.equal(listed.data.next_cursor ?? null, null);
});

test("recall as_of a time sees what was current then", async () => {
  const bob = client().profile("acme", unique("bob"));
  const old = await bob.add("Bob lives in Lisbon", { subject: "home" });
  await sleep(50);
  const now = await bob.add("Bob lives in Porto", { subject: "home" });
  const between = (old.data.memory.valid_from + now.data.memory.valid_from) / 2;

  const then = await bob.recall("where does Bob live?", { as_of: between, min_score: 0, minTxid: now.txid! });
  assert.deepEqual(
    then.data.results.map((h) => h.memory.content),
    ["Bob lives in Lisbon"],
  );
  const today = await bob.recall("where does Bob live?", { min_score: 0 });
  assert.deepEqual(
    today.data.results.map((h) => h.memory.content),
    ["Bob lives in Porto"],
  );
  const everything = await bob.recall("where does Bob live?", { include_superseded: true, min_score: 0 });
  assert.equal(everything.data.results.length, 2);
});

test("addMany, list by type and pages, listProfiles", async () => {
  const mt = client();
  const name = unique("carol");
  const carol = mt.profile("team", name);
  const batch = await carol.addMany([
    { content: "Carol's standup is at 9", type: "event" },
    { content: "Carol likes short answers", type: "preference" },
    { content: "Always cc Carol on releases", type: "instruction" },
  ]);
  assert.equal(batch.data.memories.length, 3);
  const events = await carol.list({ types: ["event"] });
  assert.deepEqual(
    events.data.memories.map((m) => m.type),
    ["event"],
  );
  const page = await carol.list({ limit: 2 });
  assert.equal(page.data.memories.length, 2);
  assert.ok(page.data.next_cursor);
  const rest = await carol.list({ limit: 2, cursor: page.data.next_cursor! });
  assert.equal(rest.data.memories.length, 1);
  const profiles = await mt.listProfiles("team", { limit: 1000 });
  assert.ok(profiles.data.profiles.includes(name));
  await carol.delete();
  const after = await mt.listProfiles("team", { limit: 1000 });
  assert.ok(!after.data.profiles.includes(name));
});

test("list filters: tags, since/until, as_of; forgetMatching with a dry run", async () => {
  const dan = client().profile("acme", unique("dan"));
  await dan.add("Dan ran 5 km", { type: "event", tags: ["sport"], event_time: "2026-01-10T08:00:00Z" });
  await dan.add("Dan swam 1 km", { type: "event", tags: ["sport"], event_time: "2026-02-10T08:00:00Z" });
  const keep = await dan.add("Dan reads before bed", { type: "fact", tags: ["habit"] });
  const january = await dan.list({ tags: ["sport"], since: "2026-01-01T00:00:00Z", until: "2026-01-31T00:00:00Z" });
  assert.deepEqual(
    january.data.memories.map((m) => m.content),
    ["Dan ran 5 km"],
  );
  const before = await dan.list({ as_of: keep.data.memory.recorded_at - 3600 });
  assert.deepEqual(before.data.memories, []);

  const dry = await dan.forgetMatching({ tags: ["sport"], dry_run: true });
  assert.deepEqual([dry.data.count, dry.data.dry_run], [2, true]);
  assert.equal((await dan.stats()).data.memories, 3);
  const gone = await dan.forgetMatching({ types: ["event"] });
  assert.equal(gone.data.count, 2);
  assert.deepEqual(
    (await dan.list()).data.memories.map((m) => m.id),
    [keep.data.memory.id],
  );
});

test("relationships: relate, neighbours, path, subgraph, recall expansion, unrelate", async () => {
  const eve = client().profile("acme", unique("eve"));
  const a = (await eve.add("Eve started the Lisbon project")).data.memory.id;
  const b = (await eve.add("Budget approval arrived in March")).data.memory.id;
  const c = (await eve.add("Memoturn was picked as the storage")).data.memory.id;
  const ab = await eve.relate(a, b, "follows", { weight: 0.9, properties: { why: "plan" } });
  assert.equal(ab.data.duplicate, false);
  assert.equal((await eve.relate(a, b, "follows")).data.duplicate, true);
  const bc = await eve.relate(b, c, "caused_by");

  const out = await eve.neighbours(a, { direction: "out", minTxid: bc.txid! });
  assert.deepEqual(
    out.data.results.map((n) => [n.memory.id, n.direction, n.relationship.type]),
    [[b, "out", "follows"]],
  );
  assert.deepEqual((await eve.relationship(ab.data.relationship.id)).data.properties, { why: "plan" });
  const path = await eve.path(a, c);
  assert.equal(path.data.found, true);
  assert.deepEqual(
    path.data.memories.map((m) => m.id),
    [a, b, c],
  );
  const onlyFollows = await eve.path(a, c, { types: ["follows"] });
  assert.equal(onlyFollows.data.found, false);
  const sub = await eve.subgraph(b, { depth: 1 });
  assert.deepEqual(sub.data.memories.map((r) => r.memory.id).sort(), [a, b, c].sort());
  assert.equal(sub.data.relationships.length, 2);

  // "Lisbon" matches only a; b joins the results through a's "follows" relationship
  const expanded = await eve.recall("Lisbon", { expand: ["follows"], expand_direction: "out" });
  assert.deepEqual(
    expanded.data.results.map((h) => [h.memory.id, h.via?.from ?? null]),
    [
      [a, null],
      [b, a],
    ],
  );

  const first = await eve.relationships({ limit: 1, minTxid: bc.txid! });
  assert.equal(first.data.relationships.length, 1);
  const second = await eve.relationships({ limit: 1, cursor: first.data.next_cursor });
  assert.equal(second.data.next_cursor, null);
  assert.deepEqual(
    [...first.data.relationships, ...second.data.relationships].map((r) => r.type).sort(),
    ["caused_by", "follows"],
  );

  const removed = await eve.unrelate(bc.data.relationship.id);
  assert.equal((await eve.neighbours(c)).data.results.length, 0);
  const then = await eve.neighbours(c, { as_of: bc.data.relationship.created_at + 0.0001, minTxid: removed.txid! });
  assert.equal(then.data.results.length, 1);
});

test("a profile on a branch: fork its database, write there, main is untouched", async () => {
  const mt = client();
  const name = unique("fay");
  const fay = mt.profile("acme", name);
  assert.equal((await fay.create()).data.memories, 0);
  await fay.add("Fay works remotely", { subject: "office" });
  const fork = await fay.database().fork("what-if");
  assert.equal(fork.data.parent?.branch, "main");
  const whatIf = mt.profile("acme", name, "what-if");
  assert.deepEqual(whatIf, fay.onBranch("what-if"));
  await whatIf.add("Fay moved to the Porto office", { subject: "office" });
  const there = await whatIf.list();
  assert.deepEqual(
    there.data.memories.map((m) => m.content),
    ["Fay moved to the Porto office"],
  );
  const here = await fay.list();
  assert.deepEqual(
    here.data.memories.map((m) => m.content),
    ["Fay works remotely"],
  );
  await whatIf.database().deleteBranch();
});
