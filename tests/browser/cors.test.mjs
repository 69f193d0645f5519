// A page on another origin calls memoturnd with fetch(), in Debian's chromium driven by
// playwright-core; run by tests/test_cors.py. Environment:
//   MEMOTURN_URL            the node (it allows MEMOTURN_PAGE_ORIGIN, and no other origin)
//   MEMOTURN_TOKEN          its admin token
//   MEMOTURN_PAGE_URL       the page (a plain HTTP server on another origin)
//   MEMOTURN_OTHER_PAGE_URL a page on an origin the node does not allow
//   MEMOTURN_CHROMIUM_BIN, MEMOTURN_PLAYWRIGHT_CORE as for dashboard.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`set ${name}`);
  return v;
};
const NODE = env("MEMOTURN_URL");
const TOKEN = env("MEMOTURN_TOKEN");
const { chromium } = await import(pathToFileURL(join(env("MEMOTURN_PLAYWRIGHT_CORE"), "index.mjs")).href);

let context, profileDir;

before(async () => {
  profileDir = mkdtempSync(join(tmpdir(), "memoturn-chromium-cors-"));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: env("MEMOTURN_CHROMIUM_BIN"),
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await context?.close();
  rmSync(profileDir, { recursive: true, force: true });
});

// What the page's script does: a preflighted PUT (Authorization, Memoturn-Durability, JSON), then
// a GET that reads the exposed Memoturn-Txid header; the outcome or the error's text comes back.
async function fromPage(pageUrl) {
  const page = await context.newPage();
  await page.goto(pageUrl);
  const out = await page.evaluate(
    async ({ node, token }) => {
      try {
        const auth = { Authorization: `Bearer ${token}` };
        const created = await fetch(`${node}/v1/databases`, {
          method: "POST",
          headers: { ...auth, "Content-Type": "application/json" },
          body: JSON.stringify({ name: "from-a-page" }),
        });
        const put = await fetch(`${node}/v1/databases/from-a-page/kv/greeting`, {
          method: "PUT",
          headers: { ...auth, "Content-Type": "application/json", "Memoturn-Durability": "durable" },
          body: JSON.stringify({ value: { hello: "browser" } }),
        });
        const putTxid = put.headers.get("Memoturn-Txid");
        const got = await fetch(`${node}/v1/databases/from-a-page/kv/greeting`, {
          headers: { ...auth, "Memoturn-Min-Txid": putTxid },
        });
        const unauthorised = await fetch(`${node}/v1/databases/from-a-page/kv/greeting`);
        return {
          ok: true,
          created: created.status,
          put: put.status,
          putTxid,
          get: got.status,
          value: (await got.json()).value,
          getTxid: got.headers.get("Memoturn-Txid"),
          unauthorised: unauthorised.status,
        };
      } catch (e) {
        return { ok: false, error: String(e) };
      }
    },
    { node: NODE, token: TOKEN },
  );
  await page.close();
  return out;
}

test("a page on an allowed origin writes and reads through fetch, and sees Memoturn-Txid", async () => {
  const out = await fromPage(env("MEMOTURN_PAGE_URL"));
  assert.equal(out.ok, true, out.error);
  assert.ok([201, 409].includes(out.created), `create: ${out.created}`);
  assert.equal(out.put, 200);
  assert.match(out.putTxid, /^\d+$/);
  assert.equal(out.get, 200);
  assert.deepEqual(out.value, { hello: "browser" });
  assert.ok(Number(out.getTxid) >= Number(out.putTxid));
  assert.equal(out.unauthorised, 401); // CORS lets the page ask; the token still decides
});

test("a page on another origin is refused by the browser", async () => {
  const out = await fromPage(env("MEMOTURN_OTHER_PAGE_URL"));
  assert.equal(out.ok, false);
  assert.match(out.error, /Failed to fetch/);
});
