// simsearch web page: pick a collection, see its statistics and fields, browse its items or
// search them with a filter (built from the fields or typed as JSON), page through the
// results, upload a JSONL or CSV file and delete items. The page's state (collection, query, filter, k, page) lives
// in the URL, so a search can be reloaded, bookmarked and shared.
import { addCondition, clearConditions, setFields } from "./filters.js";
import { drawHistogram } from "./histogram.js";
import { parseFile, sendItems, toItems } from "./upload.js";

const PAGE_SIZE = 10;
const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
// The key lives for this tab only (sessionStorage): localStorage would keep it on disk for
// any script of this origin to read later. A key stored there by an older page is dropped.
localStorage.removeItem("simsearch-key");
keyInput.value = sessionStorage.getItem("simsearch-key") || "";

const state = { collection: "", query: "", where: "", k: 10, mode: "dense", page: 1 };
const MODES = ["dense", "lexical", "hybrid"];
let hits = [];          // a search: every hit, shown PAGE_SIZE at a time; browsing: the page
let total = 0;          // browsing: how many items match the filter
let browsing = false;   // an empty query browses the items in insertion order
let searched = null;    // the (collection, query, where, k) those hits answer
let latest = 0;         // the newest request: an answer to an older one is dropped
let info = null;        // the chosen collection's description

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers() {
  const h = { "Content-Type": "application/json" };
  if (keyInput.value) h["Authorization"] = "Bearer " + keyInput.value;
  return h;
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body && JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    throw new ApiError(response.status, error.code || "http_error", error.message || response.statusText);
  }
  return data;
}

/** What a person should read for an error: what went wrong and what to do. */
function explain(err, action) {
  if (!(err instanceof ApiError)) return `${action} failed: ${err.message}`;
  if (err.status === 401) {
    showKeyPrompt(keyInput.value ? "The key was not accepted. Check it and try again." : "");
    return "This server needs an API key: enter one above.";
  }
  if (err.status === 403) {
    return `This key may not do that (${action.toLowerCase()}): use a key with the right, ` +
      "from the server's key file.";
  }
  return err.message;
}

function setStatus(text, isError = false, target = "status") {
  $(target).textContent = text;
  $(target).className = isError ? "error" : "";
}

function showKeyPrompt(message = "") {
  $("key-prompt").hidden = false;
  $("key-prompt-error").textContent = message;
  $("key-prompt-input").focus();
}

// -- the URL ----------------------------------------------------------------------------------
function readUrl() {
  const params = new URLSearchParams(location.search);
  state.collection = params.get("collection") || "";
  state.query = params.get("q") || "";
  state.where = params.get("where") || "";
  state.k = Math.min(1000, Math.max(1, Number(params.get("k")) || 10));
  state.mode = MODES.includes(params.get("mode")) ? params.get("mode") : "dense";
  state.page = Math.max(1, Number(params.get("page")) || 1);
}

function writeUrl(push) {
  const params = new URLSearchParams();
  if (state.collection) params.set("collection", state.collection);
  if (state.query) params.set("q", state.query);
  if (state.where) params.set("where", state.where);
  if (state.k !== 10) params.set("k", String(state.k));
  if (state.mode !== "dense") params.set("mode", state.mode);
  if (state.page !== 1) params.set("page", String(state.page));
  const url = `${location.pathname}${params.toString() ? "?" + params : ""}`;
  if (url === `${location.pathname}${location.search}`) return;
  (push ? history.pushState : history.replaceState).call(history, null, "", url);
}

function showState() {
  $("query").value = state.query;
  $("where").value = state.where;
  $("k").value = String(state.k);
  $("mode").value = state.mode;
}

// -- collections ------------------------------------------------------------------------------
async function loadCollections() {
  const select = $("collection");
  let collections;
  try {
    collections = await call("GET", "/collections");
  } catch (err) {
    select.replaceChildren();
    setStatus(explain(err, "Listing the collections"), !(err instanceof ApiError && err.status === 401));
    return;
  }
  $("key-prompt").hidden = true;
  select.replaceChildren(...collections.map((c) => {
    const option = document.createElement("option");
    option.value = c.name;
    option.textContent = c.error ? `${c.name} (cannot be read)` : `${c.name} (${c.count} items)`;
    return option;
  }));
  const wanted = state.collection || localStorage.getItem("simsearch-collection");
  if (wanted && collections.some((c) => c.name === wanted)) select.value = wanted;
  state.collection = select.value;
  if (!collections.length) setStatus("No collection yet: create one with `simsearch ingest` or the API.");
  else setStatus("");
  await loadInfo();
  await refresh(false);
}

function humanBytes(n) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function row(table, label, value) {
  const tr = document.createElement("tr");
  const th = document.createElement("th");
  const td = document.createElement("td");
  th.textContent = label;
  td.textContent = value;
  tr.append(th, td);
  table.appendChild(tr);
}

async function loadInfo() {
  const stats = $("stats");
  stats.replaceChildren();
  info = null;
  if (!state.collection) { renderFields(); return; }
  try {
    info = await call("GET", `/collections/${encodeURIComponent(state.collection)}`);
  } catch (err) {
    setStatus(explain(err, "Reading the collection"), true);
    renderFields();
    return;
  }
  row(stats, "items", (info.count ?? 0).toLocaleString("en"));
  row(stats, "dimension", String(info.dim ?? "not set yet"));
  row(stats, "metric", info.metric || "");
  row(stats, "encoder", info.encoder ? `${info.encoder.name} (${info.encoder.version})` : "none (vectors only)");
  row(stats, "index", info.index || "");
  if (typeof info.size_bytes === "number") row(stats, "on disk", humanBytes(info.size_bytes));
  if (info.migration) row(stats, "upgrade", JSON.stringify(info.migration));
  const option = [...$("collection").options].find((o) => o.value === state.collection);
  if (option) option.textContent = `${state.collection} (${info.count} items)`;
  renderFields();
}

/** Fields from the collection's catalogue; without one, the fields of the hits seen. */
function knownFields() {
  if (info && Array.isArray(info.fields)) return { fields: info.fields, fromCatalogue: true };
  const counts = new Map();
  for (const hit of hits) {
    for (const [field, value] of Object.entries(hit.metadata || {})) {
      const entry = counts.get(field) || { field, types: {}, count: 0 };
      const type = Array.isArray(value) ? "list" : value === null ? "null" : typeof value;
      entry.types[type] = (entry.types[type] || 0) + 1;
      entry.count += 1;
      counts.set(field, entry);
    }
  }
  return { fields: [...counts.values()], fromCatalogue: false };
}

function renderFields() {
  const { fields, fromCatalogue } = knownFields();
  setFields(fields);
  const table = $("fields");
  table.replaceChildren();
  $("fields-note").textContent = fromCatalogue
    ? (fields.length ? "Click a field to filter on it." : "No item has metadata yet.")
    : (fields.length ? "Fields of the results shown (this server gives no field list). Click one to filter on it."
      : "Search to see the fields of the results.");
  if (!fields.length) return;
  // Whether a field has a payload index, where the catalogue tells it.
  const indexed = fields.some((f) => typeof f.indexed === "boolean");
  const head = document.createElement("tr");
  for (const label of ["field", "types", "items", ...(indexed ? ["indexed"] : [])]) {
    const th = document.createElement("th");
    th.textContent = label;
    head.appendChild(th);
  }
  table.appendChild(head);
  for (const f of fields) {
    const tr = document.createElement("tr");
    tr.className = "clickable";
    tr.title = `Add a condition on ${f.field}`;
    const types = Object.entries(f.types || {}).map(([t, n]) => `${t} ${n}`).join(", ");
    const cells = [f.field, types, String(f.count ?? ""), ...(indexed ? [f.indexed ? "yes" : "no"] : [])];
    for (const value of cells) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.appendChild(td);
    }
    tr.addEventListener("click", () => addCondition(f.field));
    table.appendChild(tr);
  }
}

// -- search and browse ------------------------------------------------------------------------
function parsedWhere() {
  if (!state.where.trim()) return null;
  try { return JSON.parse(state.where); } catch {
    setStatus("The filter is not valid JSON.", true);
    return undefined;
  }
}

/** Show what the state asks for: the search of the query, or (no query) the items. */
async function refresh(push) {
  if (!state.collection) return;
  if (state.query) await runSearch(push);
  else await runBrowse(push);
}

async function runBrowse(push) {
  const where = parsedWhere();
  if (where === undefined) return;
  writeUrl(push);
  browsing = true;
  searched = null;
  const mine = ++latest;
  const path = `/collections/${encodeURIComponent(state.collection)}`;
  try {
    const { count } = await call("POST", `${path}/count`, { where });
    const pageCount = Math.max(1, Math.ceil(count / PAGE_SIZE));
    const page = Math.min(state.page, pageCount);
    const { items } = await call("POST", `${path}/get`, {
      where, limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE, include: ["metadata", "text"],
    });
    if (mine !== latest) return;
    total = count;
    state.page = page;
    hits = items;
    renderPage();
    renderFields();
    setStatus(total ? `${total} item(s)${where ? " match the filter" : ""}, in the order they were added; type a query to rank them.`
      : (where ? "No item matches the filter." : "The collection is empty: upload a file to add items."));
  } catch (err) {
    if (mine !== latest) return;
    hits = [];
    total = 0;
    renderPage();
    setStatus(explain(err, "Listing the items"), true);
  }
}

async function runSearch(push) {
  if (!state.collection) { setStatus("Choose a collection first.", true); return; }
  const where = parsedWhere();
  if (where === undefined) return;
  writeUrl(push);
  browsing = false;
  const key = JSON.stringify([state.collection, state.query, state.where, state.k, state.mode]);
  if (searched === key) { renderPage(); return; }
  localStorage.setItem("simsearch-collection", state.collection);
  setStatus("Searching…");
  const started = performance.now();
  const mine = ++latest;
  try {
    const data = await call("POST", `/collections/${encodeURIComponent(state.collection)}/search`,
      { query: state.query, k: state.k, where, mode: state.mode });
    if (mine !== latest) return;
    hits = data.results[0];
    searched = key;
    renderPage();
    renderFields();
    setStatus(`${hits.length} result(s) in ${Math.round(performance.now() - started)} ms`);
  } catch (err) {
    if (mine !== latest) return;
    hits = [];
    searched = null;
    renderPage();
    setStatus(explain(err, "The search"), true);
  }
}

function pages() { return Math.max(1, Math.ceil((browsing ? total : hits.length) / PAGE_SIZE)); }

function renderPage() {
  state.page = Math.min(state.page, pages());
  const start = (state.page - 1) * PAGE_SIZE;
  const size = browsing ? total : hits.length;
  renderHits(browsing ? hits : hits.slice(start, start + PAGE_SIZE), start);
  $("pager").hidden = size <= PAGE_SIZE;
  $("page-info").textContent = `Page ${state.page} of ${pages()} · ${browsing ? "items" : "results"} ${start + 1}–${Math.min(start + PAGE_SIZE, size)} of ${size}`;
  $("prev-page").disabled = state.page <= 1;
  $("next-page").disabled = state.page >= pages();
  $("histogram-box").hidden = browsing || !hits.length;
  if (browsing) return;
  $("histogram-title").textContent = `Score distribution of all ${hits.length} result(s)`;
  drawHistogram($("histogram"), hits.map((h) => h.score));
}

function metadataTable(metadata) {
  const table = document.createElement("table");
  table.className = "meta";
  for (const [field, value] of Object.entries(metadata || {})) {
    row(table, field, typeof value === "string" ? value : JSON.stringify(value));
  }
  return table;
}

function renderHits(shown, offset) {
  const list = $("results");
  list.replaceChildren();
  const scores = hits.map((h) => h.score).filter((s) => typeof s === "number");
  const lo = Math.min(...scores, 0), hi = Math.max(...scores, 1e-9);
  shown.forEach((hit, i) => {
    const item = document.createElement("li");
    item.className = "hit";
    const scored = typeof hit.score === "number";
    const width = scored && hi > lo ? ((hit.score - lo) / (hi - lo)) * 100 : 100;
    const relevance = typeof hit.relevance === "number" ? hit.relevance : null;
    item.innerHTML = `
      <div class="top">
        <span class="rank">${offset + i + 1}.</span>
        <span class="id"></span>
        <div class="bars">${scored ? `<div class="bar" style="width:${width.toFixed(1)}%"></div>` : ""}
          ${relevance === null ? "" : `<div class="bar relevance" style="width:${(relevance * 100).toFixed(1)}%"></div>`}</div>
        <span class="num">${scored ? `score ${hit.score.toFixed(4)}` : ""}${relevance === null ? "" : `<br>relevance ${relevance.toFixed(2)}`}</span>
        <button type="button" class="danger delete" title="Delete this item (needs a write key)">Delete</button>
      </div>
      <p class="text"></p>`;
    const id = item.querySelector(".id");
    id.textContent = hit.id;
    id.title = hit.id;  // the whole id, however the column cuts it
    item.querySelector(".text").textContent = hit.text || "";
    if (Object.keys(hit.metadata || {}).length) item.appendChild(metadataTable(hit.metadata));
    item.querySelector(".delete").addEventListener("click", () => deleteItem(hit.id));
    list.appendChild(item);
  });
}

async function deleteItem(id) {
  if (!confirm(`Delete the item '${id}' from ${state.collection}? This cannot be undone.`)) return;
  try {
    const { deleted } = await call("POST", `/collections/${encodeURIComponent(state.collection)}/delete`, { ids: [id] });
    if (browsing) await runBrowse(false);
    else { hits = hits.filter((h) => h.id !== id); renderPage(); }
    setStatus(deleted ? `Deleted '${id}'.` : `'${id}' was already gone.`);
    await loadInfo();
  } catch (err) {
    setStatus(explain(err, "Deleting an item"), true);
  }
}

// -- upload -----------------------------------------------------------------------------------
async function upload() {
  const file = $("upload-file").files[0];
  if (!state.collection) { setStatus("Choose a collection first.", true, "upload-status"); return; }
  if (!file) { setStatus("Choose a file first.", true, "upload-status"); return; }
  let items;
  try {
    const records = parseFile(file.name, await file.text());
    items = toItems(file.name, records, $("upload-id-field").value.trim() || "id",
      $("upload-text-field").value.trim() || "text");
  } catch (err) {
    setStatus(`Nothing stored: ${err.message}`, true, "upload-status");
    return;
  }
  const mode = $("upload-mode").value;
  $("upload-button").disabled = true;
  setStatus(`Sending ${items.length} item(s)…`, false, "upload-status");
  try {
    const stored = await sendItems(call, state.collection, mode, items,
      (n) => setStatus(`${n} of ${items.length} stored…`, false, "upload-status"));
    setStatus(`Stored ${stored} item(s) from ${file.name} (${mode}).`, false, "upload-status");
    searched = null;  // the same search may now find the new items
    if (browsing) await runBrowse(false);
  } catch (err) {
    setStatus(err instanceof ApiError && (err.status === 401 || err.status === 403)
      ? `${err.message.split(", then:")[0]}, then: ${explain(err, "Adding items")}`
      : err.message, true, "upload-status");
  } finally {
    $("upload-button").disabled = false;
    await loadInfo();
  }
}

// -- events -----------------------------------------------------------------------------------
$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.query = $("query").value;
  state.where = $("where").value;
  state.k = Math.min(1000, Math.max(1, Number($("k").value) || 10));
  state.mode = $("mode").value;
  state.page = 1;
  refresh(true);
});

$("collection").addEventListener("change", async () => {
  state.collection = $("collection").value;
  state.page = 1;
  hits = [];
  searched = null;
  clearConditions();
  renderPage();
  await loadInfo();
  await refresh(true);
});

for (const [id, step] of [["prev-page", -1], ["next-page", 1]]) {
  $(id).addEventListener("click", () => {
    state.page = Math.min(pages(), Math.max(1, state.page + step));
    if (browsing) runBrowse(true);
    else { writeUrl(true); renderPage(); }
    $("results").scrollIntoView({ block: "start" });
  });
}

window.addEventListener("popstate", async () => {
  const before = state.collection;
  readUrl();
  showState();
  if (state.collection !== before) {
    $("collection").value = state.collection;
    await loadInfo();
  }
  await refresh(false);
});

function useKey(key) {
  keyInput.value = key;
  sessionStorage.setItem("simsearch-key", key);
  searched = null;
  loadCollections();
}

keyInput.addEventListener("change", () => useKey(keyInput.value));
$("key-prompt-form").addEventListener("submit", (event) => {
  event.preventDefault();
  useKey($("key-prompt-input").value);
  $("key-prompt-input").value = "";
});
$("upload-button").addEventListener("click", upload);

readUrl();
showState();
loadCollections();
