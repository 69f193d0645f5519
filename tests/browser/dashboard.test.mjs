// The dashboard (/ui/) in Debian's chromium, driven by playwright-core; run by tests/test_dashboard.py
// against a real memoturnd it has seeded. Environment:
//   MEMOTURN_URL, MEMOTURN_TOKEN        the node and its admin token
//   MEMOTURN_CHROMIUM_BIN               the browser (never downloaded)
//   MEMOTURN_PLAYWRIGHT_CORE            the playwright-core package directory (.ci/install-playwright-core)
//   MEMOTURN_SCREENSHOTS                where each page's screenshot goes
//   MEMOTURN_LOAD_FIGURES               where the first load's time and transfer size go (JSON)
//   MEMOTURN_SEED                       JSON: what the seed wrote (namespace, profile, database, checkpoint...)
// Any console error, page error, failed request or unexpected HTTP error fails the test.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`set ${name}`);
  return v;
};
const URL_ = env("MEMOTURN_URL");
const TOKEN = env("MEMOTURN_TOKEN");
const SHOTS = env("MEMOTURN_SCREENSHOTS");
const SEED = JSON.parse(env("MEMOTURN_SEED"));
const { chromium } = await import(pathToFileURL(join(env("MEMOTURN_PLAYWRIGHT_CORE"), "index.mjs")).href);

const WAIT = { timeout: 30_000 };
let context, page, profileDir;
const problems = []; // everything the page got wrong, checked after each test
let expected = new Set(); // "STATUS path" answers a step provokes on purpose

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  profileDir = mkdtempSync(join(tmpdir(), "memoturn-chromium-"));
  // A fresh profile directory per run: nothing cached or remembered from an earlier one.
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: env("MEMOTURN_CHROMIUM_BIN"),
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1400, height: 900 },
    timezoneId: "UTC", // the "as of" time the seed gives is typed into a local-time field
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    // Chromium logs an HTTP error answer as a console error too: allowed only when provoked.
    const status = /status of (\d{3})/.exec(msg.text());
    const where = msg.location().url ? new URL(msg.location().url).pathname : "";
    if (status && expected.has(`${status[1]} ${where}`)) return;
    problems.push(`console error: ${msg.text()} (${msg.location().url})`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("requestfailed", (req) => problems.push(`request failed: ${req.method()} ${req.url()} ${req.failure()?.errorText}`));
  page.on("response", (resp) => {
    const path = new URL(resp.url()).pathname;
    if (resp.status() >= 400 && !expected.has(`${resp.status()} ${path}`)) {
      problems.push(`HTTP ${resp.status()}: ${resp.request().method()} ${resp.url()}`);
    }
  });
  page.on("request", (req) => {
    if (!req.url().startsWith(URL_) && !req.url().startsWith("data:")) problems.push(`request off the node: ${req.url()}`);
  });
});

after(async () => {
  await context?.close();
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
});

async function clean(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  assert.deepEqual(problems, [], `the page reported problems during ${name}`);
}

test("first load: time and transfer size", async () => {
  await page.goto(`${URL_}/ui/`, { waitUntil: "load" });
  await page.getByTestId("token").waitFor(WAIT);
  const figures = await page.evaluate(timings);
  assert.ok(figures.transfer_bytes > 0 && figures.requests >= 3, JSON.stringify(figures));
  assert.ok(figures.files.every((f) => f.name.startsWith("/ui/")), JSON.stringify(figures.files));
  // Again in the same browser: the files revalidated (ETag), not fetched whole.
  await page.goto(`${URL_}/ui/`, { waitUntil: "load" });
  await page.getByTestId("token").waitFor(WAIT);
  const again = await page.evaluate(timings);
  figures.repeat_load = { load_event_ms: again.load_event_ms, transfer_bytes: again.transfer_bytes };
  if (process.env.MEMOTURN_LOAD_FIGURES) writeFileSync(process.env.MEMOTURN_LOAD_FIGURES, JSON.stringify(figures, null, 2));
  await clean("01-login");
});

// What the browser measured of the page's load (Navigation and Resource Timing).
function timings() {
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const all = [nav, ...resources];
  return {
    url: nav.name,
    load_event_ms: Math.round(nav.loadEventEnd - nav.startTime),
    dom_content_loaded_ms: Math.round(nav.domContentLoadedEventEnd - nav.startTime),
    requests: all.length,
    transfer_bytes: all.reduce((n, e) => n + e.transferSize, 0),
    decoded_bytes: all.reduce((n, e) => n + e.decodedBodySize, 0),
    response_end_ms: Math.round(nav.responseEnd - nav.startTime),
    files: all.map((e) => ({ name: new URL(e.name).pathname, transfer_bytes: e.transferSize, decoded_bytes: e.decodedBodySize })),
  };
}

test("a wrong token is refused, the right one logs in", async () => {
  expected = new Set(["401 /v1/databases"]);
  await page.getByTestId("token").fill("not-the-token");
  await page.getByTestId("login").click();
  await page.getByRole("alert").getByText("Token refused").waitFor(WAIT);
  expected = new Set();
  await page.getByTestId("token").fill(TOKEN);
  await page.getByTestId("login").click();
  await page.getByTestId("namespaces").getByText(SEED.namespace, { exact: true }).waitFor(WAIT);
  assert.equal(await page.getByRole("alert").isHidden(), true);
  await clean("02-namespaces");
});

test("search memories: every hit says why it ranked", async () => {
  await page.getByTestId("namespaces").getByText(SEED.namespace, { exact: true }).click();
  await page.getByTestId("profiles").getByText(SEED.profile, { exact: true }).click();
  await page.getByTestId("memory").first().waitFor(WAIT);
  await page.getByTestId("query").fill(SEED.query);
  await page.getByTestId("search").click();
  const first = page.getByTestId("hit").first();
  await first.waitFor(WAIT);
  assert.match(await first.innerText(), new RegExp(SEED.expected_hit));
  // The text rank, the vector rank and the fused score, as numbers.
  assert.match(await first.getByTestId("text-rank").innerText(), /^\d+$/);
  assert.match(await first.getByTestId("vector-rank").innerText(), /^\d+$/);
  assert.match(await first.getByTestId("fused-score").innerText(), /^0\.\d{4}$/);
  await clean("03-recall");
});

test("open a supersession chain", async () => {
  await page.getByTestId("hit").first().getByTestId("open-chain").click();
  const versions = page.getByTestId("chain-versions").getByTestId("version");
  await versions.first().waitFor(WAIT);
  assert.equal(await versions.count(), SEED.chain.length);
  for (const [i, content] of SEED.chain.entries()) assert.match(await versions.nth(i).innerText(), new RegExp(content));
  assert.match(await versions.last().innerText(), /current/);
  await clean("04-supersession-chain");
});

test("as of a past time, the older version is the one shown", async () => {
  await page.getByTestId("as-of").fill(SEED.as_of_local);
  await page.getByTestId("as-of").dispatchEvent("change");
  await page.getByTestId("memories").getByText(SEED.chain[0]).waitFor(WAIT);
  const shown = await page.getByTestId("memories").innerText();
  assert.ok(!shown.includes(SEED.chain.at(-1)), shown);
  await clean("05-as-of");
});

test("fork a branch, rewind it and undo the rewind", async () => {
  const head = () => page.getByTestId("head-txid").innerText();
  await page.goto(`${URL_}/ui/#/databases/${SEED.database}`);
  await page.getByTestId("timeline").waitFor(WAIT);
  assert.equal(await head(), String(SEED.head_txid));
  await page.getByTestId("kv").getByText(SEED.kv_key).waitFor(WAIT);
  await page.getByTestId("collections").getByText(SEED.collection, { exact: false }).click();
  await page.getByTestId("document").getByText(SEED.document_id).waitFor(WAIT);
  await clean("06-database");

  await page.getByTestId("fork-name").fill("experiment");
  await page.getByTestId("fork-checkpoint").selectOption(SEED.checkpoint);
  await page.getByTestId("fork").click();
  await page.locator('[data-testid=lane][data-branch="experiment"]').waitFor(WAIT);

  await page.getByTestId("rewind-checkpoint").selectOption(SEED.checkpoint);
  await page.getByTestId("rewind").click();
  await page.getByTestId("head-txid").getByText(String(SEED.checkpoint_txid), { exact: true }).waitFor(WAIT);
  await page.locator(".bar.abandoned").first().waitFor(WAIT);
  await clean("07-fork-and-rewind");

  await page.getByTestId("undo-rewind").click();
  await page.getByTestId("head-txid").getByText(String(SEED.head_txid), { exact: true }).waitFor(WAIT);

  await page.locator('[data-testid=lane][data-branch="experiment"] a').click();
  await page.getByTestId("branch-info").getByText("experiment").waitFor(WAIT);
  assert.equal(await head(), String(SEED.checkpoint_txid));
  await clean("08-branch");
});

test("the cluster view shows the node and refreshes itself", async () => {
  await page.getByRole("link", { name: "Cluster" }).click();
  const node = page.getByTestId("node").filter({ hasText: SEED.node_id });
  await node.waitFor(WAIT);
  assert.match(await node.innerText(), /ready/);
  await page.locator("[data-testid=branches]").getByText(`${SEED.database}/main`).waitFor(WAIT);
  await page.locator('[data-testid=refreshed][data-refreshes="2"]').waitFor(WAIT);
  await clean("09-cluster");
});

test("a namespace token sees its namespace only", async () => {
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByTestId("token").fill(SEED.namespace_token);
  await page.locator("#namespace").fill(SEED.namespace);
  await page.getByTestId("login").click();
  await page.getByTestId("profiles").getByText(SEED.namespace_profiles[0], { exact: true }).waitFor(WAIT);
  assert.equal(await page.getByTestId("namespaces").innerText(), SEED.namespace);
  assert.equal(await page.getByTestId("profiles").innerText(), SEED.namespace_profiles.join("\n"));
  await page.getByRole("link", { name: "Databases" }).click();
  await page.getByTestId("databases").waitFor(WAIT);
  const names = SEED.namespace_profiles.map((p) => `${SEED.namespace}--${p}`);
  assert.equal(await page.getByTestId("databases").innerText(), names.join("\n"));
  await clean("10-namespace-token");
});
