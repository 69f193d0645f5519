// Problems, the retry rules (the Python SDK's), read-your-writes and auth. The retry tests run
// against a small HTTP server that injects the faults: a real memoturnd answers 503 or 409 only
// during an outage or an ownership move, which a test cannot time.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { Memoturn, ProblemError, connectionLost, delays, retryable } from "@memoturn/sdk";

import { TOKEN, URL, client, unique } from "./support.js";

function problem(err: unknown, status: number, type: string): boolean {
  assert.ok(err instanceof ProblemError, String(err));
  assert.equal(err.status, status, err.message);
  assert.equal(err.type, type, err.message);
  return true;
}

test("problems: 404 key-not-found, 403 reserved-table, 400 validation", async () => {
  const mt = client();
  const name = unique("err");
  await mt.createDatabase(name);
  const db = mt.database(name);
  await assert.rejects(db.kvGet("missing"), (err) => {
    problem(err, 404, "key-not-found");
    assert.match((err as ProblemError).detail, /missing/);
    assert.equal((err as ProblemError).message, `404 key-not-found: ${(err as ProblemError).detail}`);
    return true;
  });
  await assert.rejects(db.sql("SELECT * FROM __memoturn_kv"), (err) => problem(err, 403, "reserved-table"));
  await assert.rejects(mt.createDatabase(name), (err) => problem(err, 409, "already-exists"));
  await assert.rejects(mt.database("nope-" + name).describe(), (err) => problem(err, 404, "not-found"));
});

test("read-your-writes: Memoturn-Min-Txid is sent, and a txid never reached is a 412", async () => {
  const mt = client();
  const name = unique("ryw");
  await mt.createDatabase(name);
  const db = mt.database(name);
  const put = await db.kvPut("k", "v");
  const got = await db.kvGet("k", { minTxid: put.txid! });
  assert.ok(got.txid! >= put.txid!);
  const ahead = put.txid! + 1000;
  await assert.rejects(db.kvGet("k", { minTxid: ahead }), (err) => problem(err, 412, "min-txid-not-reached"));
  await assert.rejects(db.kvList({ minTxid: put.txid! + 1000 }), (err) => problem(err, 412, "min-txid-not-reached"));
  const profile = mt.profile("acme", unique("ryw"));
  const stored = await profile.add("Dana writes tests first");
  await assert.rejects(profile.recall("tests", { minTxid: stored.txid! + 1000 }), (err) =>
    problem(err, 412, "min-txid-not-reached"),
  );
});

test("auth: the token goes in Authorization; without one the server refuses", { skip: !TOKEN }, async () => {
  await assert.rejects(new Memoturn(URL).listDatabases(), (err) => {
    assert.ok(err instanceof ProblemError);
    assert.equal(err.status, 401);
    return true;
  });
  await assert.rejects(new Memoturn(URL, { token: "wrong" }).listDatabases(), (err) =>
    err instanceof ProblemError && err.status === 401,
  );
  const listed = await client().listDatabases({ limit: 1 });
  assert.equal(listed.data.databases.length, 1);

  // a namespace token, minted through `request` (a route the SDK has no method for)
  const minted = await client().request<{ token: string; namespace: string }>({
    method: "POST",
    path: "/v1/admin/tokens",
    body: { namespace: "tenant", ttl_seconds: 600 },
  });
  assert.equal(minted.data.namespace, "tenant");
  const tenant = new Memoturn(URL, { token: minted.data.token });
  const stored = await tenant.profile("tenant", unique("gus")).add("Gus keeps bees");
  assert.equal(stored.data.memory.content, "Gus keeps bees");
  await assert.rejects(tenant.profile("other", "gus").add("not mine"), (err) => {
    assert.ok(err instanceof ProblemError);
    assert.equal(err.status, 403);
    return true;
  });
});

test("an unreachable server: reads are retried, writes are not, then status 0 unreachable", async () => {
  let attempts = 0;
  const counting: typeof fetch = (input, init) => {
    attempts += 1;
    return fetch(input, init);
  };
  const mt = new Memoturn("http://127.0.0.1:9", { retries: 2, backoffMs: 1, fetch: counting });
  await assert.rejects(mt.database("x").kvGet("y"), (err) => {
    problem(err, 0, "unreachable");
    assert.match((err as ProblemError).detail, /^http:\/\/127\.0\.0\.1:9: /);
    return true;
  });
  assert.equal(attempts, 3);
  attempts = 0;
  await assert.rejects(mt.database("x").sql("SELECT 1"), (err) => problem(err, 0, "unreachable"));
  assert.equal(attempts, 1);
});

/** A server that answers each request with the next of `answers` (status, JSON body), then 200. */
interface Faulty {
  url: string;
  seen: IncomingMessage[];
  close: () => void;
}

async function faulty(answers: [number, unknown][]): Promise<Faulty> {
  const seen: IncomingMessage[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(req);
    req.resume();
    const [status, body] = answers.shift() ?? [200, { ok: true }];
    res.writeHead(status, { "content-type": "application/json", "Memoturn-Txid": "7" });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => server.close() };
}

test("retry rules: 503 and 409 not-owner are retried; a problem with a txid, or a 409 conflict, is not", async () => {
  const transient = await faulty([
    [503, { type: "store-unavailable", status: 503, detail: "store down" }],
    [409, { type: "not-owner", status: 409, detail: "moving" }],
  ]);
  try {
    const mt = new Memoturn(transient.url, { backoffMs: 1, token: "t" });
    const r = await mt.database("d").sql("INSERT INTO t VALUES (1)");
    assert.deepEqual(r.data, { ok: true });
    assert.equal(r.txid, 7);
    assert.equal(transient.seen.length, 3);
    assert.equal(transient.seen[0]!.headers["authorization"], "Bearer t");
  } finally {
    transient.close();
  }

  const committed = await faulty([[503, { type: "not-durable", status: 503, detail: "not yet durable", txid: 9 }]]);
  try {
    const mt = new Memoturn(committed.url, { backoffMs: 1, durability: "durable" });
    await assert.rejects(mt.database("d").kvPut("k", 1), (err) => {
      problem(err, 503, "not-durable");
      assert.equal((err as ProblemError).txid, 9);
      return true;
    });
    assert.equal(committed.seen.length, 1);
    assert.equal(committed.seen[0]!.headers["memoturn-durability"], "durable");
  } finally {
    committed.close();
  }

  const conflict = await faulty([[409, { type: "already-exists", status: 409, detail: "exists" }]]);
  try {
    await assert.rejects(new Memoturn(conflict.url, { backoffMs: 1 }).createDatabase("d"), (err) =>
      problem(err, 409, "already-exists"),
    );
    assert.equal(conflict.seen.length, 1);
  } finally {
    conflict.close();
  }

  const exhausted = await faulty(Array.from({ length: 10 }, () => [503, { type: "unavailable", detail: "down" }]));
  try {
    const mt = new Memoturn(exhausted.url, { retries: 2, backoffMs: 1 });
    await assert.rejects(mt.health(), (err) => problem(err, 503, "unavailable"));
    assert.equal(exhausted.seen.length, 3);
  } finally {
    exhausted.close();
  }
});

test("the gateway's 502 outcome-unknown is sent again for an idempotent call, and only for one", async () => {
  const lost: [number, unknown] = [502, { type: "outcome-unknown", status: 502, detail: "connection lost" }];
  const put = await faulty([lost]);
  try {
    const r = await new Memoturn(put.url, { backoffMs: 1 }).database("d").kvPut("k", 1);
    assert.equal(r.txid, 7);
    assert.deepEqual(put.seen.map((req) => req.method), ["PUT", "PUT"]);
  } finally {
    put.close();
  }
  const create = await faulty([lost]);
  try {
    await assert.rejects(new Memoturn(create.url, { backoffMs: 1 }).createDatabase("d"), (err) =>
      problem(err, 502, "outcome-unknown"),
    );
    assert.equal(create.seen.length, 1);
  } finally {
    create.close();
  }
  const other = await faulty([[502, { type: "bad-gateway" }]]);
  try {
    await assert.rejects(new Memoturn(other.url, { backoffMs: 1 }).database("d").kvPut("k", 1));
    assert.equal(other.seen.length, 1);
  } finally {
    other.close();
  }
  assert.equal(connectionLost(502, "not json"), false);
  assert.equal(connectionLost(504, JSON.stringify({ type: "outcome-unknown" })), false);
});

test("retry rules as functions: the backoff doubles to a 2 s cap; what is retryable", () => {
  assert.deepEqual([...delays(50, 7)], [50, 100, 200, 400, 800, 1600, 2000, null]);
  assert.deepEqual([...delays(50, 0)], [null]);
  assert.equal(retryable(503, "not json"), true);
  assert.equal(retryable(409, "not json"), false);
  assert.equal(retryable(409, JSON.stringify({ type: "lease-lost" })), true);
  assert.equal(retryable(409, JSON.stringify({ type: "fenced", txid: 3 })), false);
  assert.equal(retryable(503, JSON.stringify({ type: "anything" })), true);
  assert.equal(retryable(500, JSON.stringify({ type: "unavailable" })), false);
});
