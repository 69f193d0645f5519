// Memoturn dashboard: a single-page app over the node's JSON API (docs/dashboard.md).
// No framework and no build step: DOM built with h(), routes in the URL's hash, the bearer
// token in sessionStorage (gone when the tab closes). Every API call names the token.

const TOKEN = "memoturn.token";
const NAMESPACE = "memoturn.namespace";
const CLUSTER_REFRESH_MS = 3000;
const main = document.getElementById("main");
let stopView = () => {}; // what the current view must undo when it is left (the cluster timer)

// -- small helpers ----------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "testid") el.dataset.testid = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const when = (ts) => (ts == null ? "—" : new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z");
const num = (x, digits = 4) => (x == null ? "—" : Number(x).toFixed(digits));
const rank = (r) => (r == null ? "—" : String(r + 1)); // the API's ranks count from 0
const enc = encodeURIComponent;

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.type = problem.type || "";
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

// Every page of a paged listing (databases, profiles), up to `pages` pages.
async function all(path, field, pages = 20) {
  const out = [];
  let cursor = null;
  for (let i = 0; i < pages; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", path + sep + "limit=1000" + (cursor ? `&cursor=${enc(cursor)}` : ""));
    out.push(...page[field]);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return out;
}

// -- log in -----------------------------------------------------------------------------

function loginView() {
  const token = h("input", { type: "password", name: "token", id: "token", autocomplete: "off", testid: "token" });
  const ns = h("input", { type: "text", name: "namespace", id: "namespace", placeholder: "only with a namespace token" });
  const form = h(
    "form",
    { onsubmit: (e) => (e.preventDefault(), logIn(token.value.trim(), ns.value.trim())) },
    h("label", { for: "token" }, "Bearer token (empty when the server runs without auth)", token),
    h("label", { for: "namespace" }, "Namespace", ns),
    h("button", { type: "submit", testid: "login" }, "Log in"),
  );
  return h("div", { class: "panel login" }, h("h2", {}, "Log in to Memoturn"), form);
}

async function logIn(token, namespace) {
  sessionStorage.setItem(TOKEN, token);
  try {
    // The admin token lists databases; a namespace token lists its namespace's profiles.
    if (namespace) await api("GET", `/v1/namespaces/${enc(namespace)}/profiles?limit=1`);
    else await api("GET", "/v1/databases?limit=1");
  } catch (err) {
    sessionStorage.removeItem(TOKEN);
    showError(err.status === 401 ? `Token refused: ${err.message}` : err.message);
    return;
  }
  if (namespace) sessionStorage.setItem(NAMESPACE, namespace);
  else sessionStorage.removeItem(NAMESPACE);
  showError("");
  location.hash = namespace ? `#/memories/${enc(namespace)}` : "#/memories";
  render();
}

function logOut() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(NAMESPACE);
  location.hash = "";
  render();
}

// -- memories: namespaces -> profiles -> memories ---------------------------------------

async function namespaces() {
  const own = sessionStorage.getItem(NAMESPACE);
  if (own) return [own];
  const names = await all("/v1/databases", "databases");
  return [...new Set(names.filter((n) => n.includes("--")).map((n) => n.split("--")[0]))].sort();
}

function pickList(items, href, active, testid) {
  if (!items.length) return h("p", { class: "muted" }, "none yet");
  return h(
    "ul",
    { class: "pick", testid },
    items.map((it) => h("li", {}, h("a", { href: href(it), class: it === active ? "active" : null }, it))),
  );
}

async function memoriesView(ns, profile) {
  const nsList = await namespaces();
  const profiles = ns ? await all(`/v1/namespaces/${enc(ns)}/profiles`, "profiles") : [];
  return h(
    "div",
    { class: "cols" },
    h("section", { class: "panel" }, h("h3", {}, "Namespaces"), pickList(nsList, (n) => `#/memories/${enc(n)}`, ns, "namespaces")),
    h(
      "section",
      { class: "panel" },
      h("h3", {}, "Profiles"),
      ns ? pickList(profiles, (p) => `#/memories/${enc(ns)}/${enc(p)}`, profile, "profiles") : h("p", { class: "muted" }, "pick a namespace"),
    ),
    h("section", { class: "panel" }, ns && profile ? await profileView(ns, profile) : h("p", { class: "muted" }, "pick a profile")),
  );
}

async function profileView(ns, profile) {
  const base = `/v1/namespaces/${enc(ns)}/profiles/${enc(profile)}`;
  const stats = await api("GET", base);
  const results = h("div", { testid: "results" });
  const chain = h("div", { testid: "chain" });
  const listing = h("div", { testid: "memories" });
  const query = h("input", { type: "search", name: "query", placeholder: "recall…", testid: "query", required: true });
  const asOf = h("input", { type: "datetime-local", name: "as_of", step: "1", testid: "as-of" });
  const superseded = h("input", { type: "checkbox", name: "include_superseded", testid: "include-superseded" });
  const asOfSeconds = () => (asOf.value ? new Date(asOf.value).getTime() / 1000 : null);

  const openChain = async (id) => {
    const versions = await api("GET", `${base}/memories/${enc(id)}/history`);
    chain.replaceChildren(chainView(versions));
    chain.scrollIntoView({ block: "nearest" });
  };
  const chainButton = (m) =>
    m.supersedes || m.superseded_by
      ? h("button", { type: "button", class: "quiet", testid: "open-chain", onclick: () => guarded(() => openChain(m.id)) }, "chain")
      : null;

  const search = async () => {
    const body = { query: query.value, limit: 20, include_superseded: superseded.checked };
    const t = asOfSeconds();
    if (t !== null) body.as_of = t;
    const out = await api("POST", `${base}/recall`, body);
    results.replaceChildren(hitsView(out.results, chainButton));
  };
  const list = async () => {
    const page = await api("GET", `${base}/memories?include_superseded=true&limit=200`);
    const t = asOfSeconds();
    // "As of" a time: the versions valid then (valid_from <= t < valid_to).
    const shown = page.memories.filter((m) =>
      t === null ? superseded.checked || m.current : m.valid_from <= t && (m.valid_to === null || m.valid_to > t),
    );
    listing.replaceChildren(memoryTable(shown, chainButton));
  };
  asOf.addEventListener("change", () => guarded(list));
  superseded.addEventListener("change", () => guarded(list));
  await list();

  return h(
    "div",
    {},
    h("h2", {}, `${ns} / ${profile}`),
    h(
      "div",
      { class: "stats" },
      h("div", { class: "stat" }, h("b", {}, stats.current), "current"),
      h("div", { class: "stat" }, h("b", {}, stats.memories), "memories (all versions)"),
      h("div", { class: "stat" }, h("b", {}, stats.head_txid), "head txid"),
      h("div", { class: "stat" }, h("b", {}, stats.embedding_dim ?? "—"), "embedding dim"),
    ),
    h(
      "form",
      { class: "row", onsubmit: (e) => (e.preventDefault(), guarded(search)) },
      h("label", {}, "Recall", query),
      h("label", {}, "As of (local time)", asOf),
      h("label", { class: "check" }, superseded, "include superseded"),
      h("button", { type: "submit", testid: "search" }, "Search"),
    ),
    results,
    chain,
    h("h3", {}, "Memories"),
    listing,
  );
}

function hitsView(hits, chainButton) {
  if (!hits.length) return h("p", { class: "muted", testid: "no-hits" }, "No memories matched.");
  return h(
    "table",
    { testid: "hits" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "#"),
        h("th", {}, "memory"),
        h("th", { class: "num", title: "rank of the BM25 text match (1 = best)" }, "text rank"),
        h("th", { class: "num", title: "rank by embedding distance (1 = nearest)" }, "vector rank"),
        h("th", { class: "num", title: "reciprocal rank fusion of both ranks: orders the hits" }, "fused score"),
        h("th", { class: "num", title: "cosine similarity of the query and the memory" }, "similarity"),
        h("th", { class: "num", title: "BM25 score of the text match" }, "BM25"),
        h("th", {}, ""),
      ),
    ),
    h(
      "tbody",
      {},
      hits.map((hit, i) =>
        h(
          "tr",
          { testid: "hit" },
          h("td", { class: "num" }, i + 1),
          h("td", { class: "text" }, hit.memory.content, " ", badges(hit.memory)),
          h("td", { class: "num", testid: "text-rank" }, rank(hit.ranks.bm25)),
          h("td", { class: "num", testid: "vector-rank" }, rank(hit.ranks.vector)),
          h("td", { class: "num", testid: "fused-score" }, num(hit.score)),
          h("td", { class: "num" }, num(hit.similarity, 3)),
          h("td", { class: "num" }, hit.text_match ? num(hit.text_score, 3) : "—"),
          h("td", {}, chainButton(hit.memory)),
        ),
      ),
    ),
  );
}

function badges(m) {
  return [
    h("span", { class: "badge" }, m.type),
    " ",
    h("span", { class: `badge ${m.current ? "current" : "superseded"}` }, m.current ? "current" : "superseded"),
    m.subject ? [" ", h("span", { class: "badge" }, `subject: ${m.subject}`)] : null,
  ];
}

function memoryTable(items, chainButton) {
  if (!items.length) return h("p", { class: "muted" }, "No memories here.");
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, h("th", {}, "memory"), h("th", {}, "valid from"), h("th", {}, "valid to"), h("th", {}, ""))),
    h(
      "tbody",
      {},
      items.map((m) =>
        h(
          "tr",
          { testid: "memory" },
          h("td", { class: "text" }, m.content, " ", badges(m)),
          h("td", {}, when(m.valid_from)),
          h("td", {}, when(m.valid_to)),
          h("td", {}, chainButton(m)),
        ),
      ),
    ),
  );
}

function chainView(versions) {
  return h(
    "div",
    { class: "panel" },
    h("h3", {}, `Supersession chain (${versions.length} versions, oldest first)`),
    h(
      "ol",
      { class: "chain", testid: "chain-versions" },
      versions.map((m) =>
        h(
          "li",
          { class: m.current ? "current" : null, testid: "version" },
          h("div", {}, m.content, " ", badges(m)),
          h("div", { class: "muted" }, `valid ${when(m.valid_from)} → ${m.valid_to ? when(m.valid_to) : "now"} · id ${m.id}`),
        ),
      ),
    ),
  );
}

// -- databases: branches and checkpoints on a timeline, KV, documents -------------------

async function databasesView(db, branch) {
  const own = sessionStorage.getItem(NAMESPACE);
  const names = own
    ? (await all(`/v1/namespaces/${enc(own)}/profiles`, "profiles")).map((p) => `${own}--${p}`)
    : await all("/v1/databases", "databases");
  return h(
    "div",
    { class: "cols2" },
    h("section", { class: "panel" }, h("h3", {}, "Databases"), pickList(names, (n) => `#/databases/${enc(n)}`, db, "databases")),
    h("section", { class: "panel" }, db ? await databaseView(db, branch || "main") : h("p", { class: "muted" }, "pick a database")),
  );
}

async function databaseView(db, branch) {
  const base = `/v1/databases/${enc(db)}`;
  const [info, listed] = await Promise.all([api("GET", `${base}?branch=${enc(branch)}`), api("GET", `${base}/branches`)]);
  const branches = listed.branches.sort((a, b) => a.created_at - b.created_at);
  const current = branches.find((b) => b.branch === branch) || branches[0];
  const reload = () => render();
  const act = (fn) => guarded(async () => (await fn(), reload()));
  const point = (txid, checkpoint) => {
    if (checkpoint.value) return { checkpoint: checkpoint.value };
    if (txid.value !== "") return { txid: Number(txid.value) };
    return {};
  };
  const cpOptions = () => [h("option", { value: "" }, "—"), Object.keys(current.checkpoints).map((c) => h("option", { value: c }, `${c} (txid ${current.checkpoints[c]})`))];

  const forkName = h("input", { name: "name", required: true, placeholder: "new branch", testid: "fork-name" });
  const forkTxid = h("input", { name: "txid", type: "number", min: "0", placeholder: "head", testid: "fork-txid" });
  const forkCp = h("select", { name: "checkpoint", testid: "fork-checkpoint" }, cpOptions());
  const rewTxid = h("input", { name: "txid", type: "number", min: "0", placeholder: "txid", testid: "rewind-txid" });
  const rewCp = h("select", { name: "checkpoint", testid: "rewind-checkpoint" }, cpOptions());
  const cpName = h("input", { name: "name", required: true, placeholder: "checkpoint name", testid: "checkpoint-name" });

  const actions = h(
    "div",
    { class: "actions" },
    h(
      "form",
      { class: "panel", testid: "fork-form", onsubmit: (e) => (e.preventDefault(), act(() => api("POST", `${base}/branches`, { name: forkName.value, parent: current.branch, ...point(forkTxid, forkCp) }))) },
      h("h3", {}, `Fork ${current.branch}`),
      h("div", { class: "row" }, h("label", {}, "Name", forkName), h("label", {}, "At txid", forkTxid), h("label", {}, "or checkpoint", forkCp)),
      h("button", { type: "submit", testid: "fork" }, "Fork"),
    ),
    h(
      "form",
      { class: "panel", testid: "rewind-form", onsubmit: (e) => (e.preventDefault(), act(() => api("POST", `${base}/branches/${enc(current.branch)}/rewind`, point(rewTxid, rewCp)))) },
      h("h3", {}, `Rewind ${current.branch}`),
      h("div", { class: "row" }, h("label", {}, "To txid", rewTxid), h("label", {}, "or checkpoint", rewCp)),
      h("button", { type: "submit", testid: "rewind" }, "Rewind"),
      " ",
      h(
        "button",
        { type: "button", class: "quiet", testid: "undo-rewind", disabled: !current.abandoned.length, onclick: () => act(() => api("POST", `${base}/branches/${enc(current.branch)}/undo-rewind`)) },
        "Undo last rewind",
      ),
    ),
    h(
      "form",
      { class: "panel", onsubmit: (e) => (e.preventDefault(), act(() => api("POST", `${base}/branches/${enc(current.branch)}/checkpoints`, { name: cpName.value }))) },
      h("h3", {}, `Checkpoint ${current.branch}`),
      h("div", { class: "row" }, h("label", {}, "Name (at the head)", cpName)),
      h("button", { type: "submit", testid: "checkpoint" }, "Checkpoint"),
    ),
  );

  const kv = await api("GET", `${base}/kv?branch=${enc(current.branch)}&limit=100`);
  const collections = await api("GET", `${base}/collections?branch=${enc(current.branch)}`);
  const docs = h("div", { testid: "documents" });
  const openCollection = (name) =>
    guarded(async () => {
      const page = await api("POST", `${base}/collections/${enc(name)}/query?branch=${enc(current.branch)}`, { limit: 100 });
      docs.replaceChildren(
        h("h3", {}, `${name}: ${page.documents.length} documents${page.next_cursor ? " (first page)" : ""}`),
        table(["id", "body", "updated"], page.documents.map((d) => [d.id, h("pre", {}, JSON.stringify(d.body, null, 2)), when(d.updated_at)]), "document"),
      );
    });

  return h(
    "div",
    {},
    h("h2", {}, db),
    h(
      "div",
      { class: "stats", testid: "branch-info" },
      h("div", { class: "stat" }, h("b", {}, current.branch), "branch"),
      h("div", { class: "stat" }, h("b", { testid: "head-txid" }, current.head_txid), "head txid"),
      h("div", { class: "stat" }, h("b", {}, info.shipped_txid), "shipped txid"),
      h("div", { class: "stat" }, h("b", {}, h("span", { class: `badge ${info.tier}` }, info.tier)), "tier"),
      h("div", { class: "stat" }, h("b", {}, `${info.snapshots} / ${info.segments}`), "snapshots / segments"),
    ),
    h("h3", {}, "Branches and checkpoints"),
    timeline(db, branches, current.branch),
    actions,
    h("h3", {}, `KV on ${current.branch}`),
    table(["key", "value", "expires"], kv.items.map((i) => [i.key, h("pre", {}, JSON.stringify(i.value)), when(i.expires_at)]), "kv"),
    kv.next_cursor ? h("p", { class: "muted" }, "first 100 keys") : null,
    h("h3", {}, `Document collections on ${current.branch}`),
    collections.collections.length
      ? h("ul", { class: "pick", testid: "collections" }, collections.collections.map((c) => h("li", {}, h("a", { href: "#", onclick: (e) => (e.preventDefault(), openCollection(c.name)) }, `${c.name} (${c.documents})`))))
      : h("p", { class: "muted" }, "no documents"),
    docs,
  );
}

// One lane per branch on a shared txid axis: the inherited part (to the fork point), its
// own txids, what the last rewinds cut off (dashed, undoable), and checkpoint marks.
function timeline(db, branches, selected) {
  const heads = branches.flatMap((b) => [b.head_txid, ...b.abandoned.map((a) => a.head_txid), ...Object.values(b.checkpoints)]);
  const max = Math.max(1, ...heads);
  const pct = (txid) => `${(100 * txid) / max}%`;
  const span = (cls, from, to) => {
    const el = h("div", { class: `bar ${cls}` });
    el.style.left = pct(from);
    el.style.width = `calc(${pct(Math.max(0, to - from))} + 2px)`;
    return el;
  };
  // Marks at one txid (a fork point, a checkpoint, the head) share one label.
  const marks = (points) => {
    const at = new Map();
    for (const [cls, txid, label] of points) at.set(txid, [...(at.get(txid) || []), [cls, label]]);
    return [...at].map(([txid, list]) => {
      const label = list.map(([, l]) => l).join(" · ");
      const cls = list.some(([c]) => c === "checkpoint") ? "checkpoint" : list[0][0];
      const el = h("div", { class: `mark ${cls}`, title: label }, h("span", {}, label));
      el.style.left = pct(txid);
      return el;
    });
  };
  return h(
    "div",
    { class: "timeline", testid: "timeline" },
    branches.map((b) => {
      const fork = b.parent ? b.parent.txid : 0;
      const track = h(
        "div",
        { class: "track" },
        b.parent ? span("base", 0, fork) : null,
        span("own", fork, b.head_txid),
        b.abandoned.map((a) => span("abandoned", a.from_txid, a.head_txid)),
        marks([
          ...(b.parent ? [["fork", fork, `from ${b.parent.branch}@${fork}`]] : []),
          ...Object.entries(b.checkpoints).map(([name, txid]) => ["checkpoint", txid, `${name}@${txid}`]),
          ["head", b.head_txid, `head ${b.head_txid}`],
        ]),
      );
      return h(
        "div",
        { class: `lane${b.branch === selected ? " selected" : ""}`, testid: "lane", "data-branch": b.branch },
        h("a", { class: "name", href: `#/databases/${enc(db)}/${enc(b.branch)}`, title: b.branch }, b.branch),
        track,
      );
    }),
    h("p", { class: "muted" }, `txid 0 … ${max}; light: inherited from the parent, dashed: cut off by a rewind (undo restores it)`),
  );
}

function table(headers, rows, testid) {
  if (!rows.length) return h("p", { class: "muted" }, "empty");
  return h(
    "table",
    { testid },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", { class: "text" }, c))))),
  );
}

// -- cluster: nodes, owners, tiers, lag, unshipped txids; refreshes itself --------------

async function clusterView() {
  const body = h("div", { testid: "cluster" });
  const stamp = h("span", { class: "refreshed muted", testid: "refreshed" });
  let refreshes = 0;
  const refresh = async () => {
    const s = await api("GET", "/v1/cluster/status");
    refreshes += 1;
    stamp.textContent = `refreshed ${new Date().toLocaleTimeString()} (every ${CLUSTER_REFRESH_MS / 1000} s, ${refreshes} so far)`;
    stamp.dataset.refreshes = String(refreshes);
    body.replaceChildren(
      h("h3", {}, `Nodes (${s.nodes.length}${s.clustered ? ", from etcd" : ", this node alone"})`),
      h(
        "div",
        { class: "nodes" },
        s.nodes.map((n) =>
          h(
            "div",
            { class: "panel", testid: "node" },
            h("b", {}, n.id),
            n.id === s.node_id ? [" ", h("span", { class: `badge ${s.ready ? "ok" : "down"}` }, s.ready ? "ready" : s.detail)] : null,
            h("div", { class: "muted" }, n.url || ""),
            h("div", {}, `owns ${s.branches.filter((b) => b.owner === n.id).length + Object.entries(s.owners).filter(([k, o]) => o === n.id && !s.branches.some((b) => b.key === k)).length} branches`),
          ),
        ),
      ),
      h(
        "div",
        { class: "stats" },
        h("div", { class: "stat" }, h("b", { testid: "unshipped" }, s.unshipped_txids), `unshipped txids on ${s.node_id}`),
        h("div", { class: "stat" }, h("b", {}, s.replica_lag_txids ?? "—"), "replica lag (txids, last apply)"),
      ),
      h("h3", {}, `Open branches on ${s.node_id}`),
      table(
        ["branch", "owner", "tier", "head txid", "shipped txid", "unshipped"],
        s.branches.map((b) => [b.key, b.owner, h("span", { class: `badge ${b.tier}` }, b.tier), b.head_txid, b.shipped_txid, b.unshipped_txids]),
        "branches",
      ),
      ...(s.clustered
        ? [
            h("h3", {}, "Owners (etcd)"),
            table(["branch", "owner"], Object.entries(s.owners).map(([k, o]) => [k, o]), "owners"),
            h("h3", {}, `Replica copies on ${s.node_id}`),
            table(["branch", "owner", "head txid", "stale", "checked"], s.replicas.map((r) => [r.key, r.owner, r.head_txid, r.stale ? "yes" : "no", `${r.checked_seconds_ago} s ago`]), "replicas"),
          ]
        : []),
    );
  };
  await refresh();
  const timer = setInterval(() => guarded(refresh), CLUSTER_REFRESH_MS);
  stopView = () => clearInterval(timer);
  return h("div", {}, h("h2", {}, "Cluster ", stamp), body);
}

// -- routing ----------------------------------------------------------------------------

async function guarded(fn) {
  try {
    await fn();
    showError("");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return logOut();
    showError(err.message || String(err));
  }
}

let rendering = 0;
async function render() {
  stopView();
  stopView = () => {};
  const loggedIn = sessionStorage.getItem(TOKEN) !== null;
  document.getElementById("nav").hidden = !loggedIn;
  document.getElementById("logout").hidden = !loggedIn;
  const own = sessionStorage.getItem(NAMESPACE);
  document.getElementById("who").textContent = loggedIn ? (own ? `namespace ${own}` : "admin") : "";
  if (!loggedIn) {
    main.replaceChildren(loginView());
    return;
  }
  const [view, a, b] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const name = ["memories", "databases", "cluster"].includes(view) ? view : "memories";
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === name);
  const ticket = ++rendering; // a slow view must not replace a newer one
  await guarded(async () => {
    const el = await (name === "databases" ? databasesView(a, b) : name === "cluster" ? clusterView() : memoriesView(a, b));
    if (ticket !== rendering) return stopView();
    el.dataset.view = name;
    main.replaceChildren(el);
  });
}

document.getElementById("logout").addEventListener("click", logOut);
window.addEventListener("hashchange", render);
render();
