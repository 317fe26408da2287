// simsearch web page: pick a collection, search it, show ranked hits and a score histogram.
"use strict";

const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
// The key lives for this tab only (sessionStorage): localStorage would keep it on disk for
// any script of this origin to read later. A key stored there by an older page is dropped.
localStorage.removeItem("simsearch-key");
keyInput.value = sessionStorage.getItem("simsearch-key") || "";

function headers() {
  const h = { "Content-Type": "application/json" };
  if (keyInput.value) h["Authorization"] = "Bearer " + keyInput.value;
  return h;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body && JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = data.error ? data.error.message : JSON.stringify(data.detail || data);
    throw new Error(`${response.status}: ${message}`);
  }
  return data;
}

async function loadCollections() {
  const select = $("collection");
  const previous = select.value || localStorage.getItem("simsearch-collection");
  try {
    const collections = await call("GET", "/collections");
    select.replaceChildren(...collections.map((c) => {
      const option = document.createElement("option");
      option.value = c.name;
      option.textContent = `${c.name} (${c.count} items)`;
      return option;
    }));
    if (previous && collections.some((c) => c.name === previous)) select.value = previous;
    setStatus(collections.length ? "" : "No collection to search yet.");
  } catch (err) {
    select.replaceChildren();
    setStatus(err.message, true);
  }
}

function drawHistogram(scores) {
  const svg = $("histogram");
  svg.replaceChildren();
  if (!scores.length) { $("histogram-box").hidden = true; return; }
  $("histogram-box").hidden = false;
  const lo = Math.min(...scores), hi = Math.max(...scores);
  const bins = 20, counts = new Array(bins).fill(0);
  for (const s of scores) {
    const i = hi > lo ? Math.min(bins - 1, Math.floor(((s - lo) / (hi - lo)) * bins)) : bins - 1;
    counts[i] += 1;
  }
  const top = Math.max(...counts), w = 300 / bins;
  counts.forEach((c, i) => {
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    const h = (c / top) * 70;
    rect.setAttribute("x", String(i * w + 1));
    rect.setAttribute("y", String(75 - h));
    rect.setAttribute("width", String(w - 2));
    rect.setAttribute("height", String(h));
    rect.setAttribute("fill", "#2563eb");
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `${c} hit(s) from ${(lo + ((hi - lo) * i) / bins).toFixed(3)}`;
    rect.appendChild(title);
    svg.appendChild(rect);
  });
}

function renderHits(hits) {
  const list = $("results");
  list.replaceChildren();
  const scores = hits.map((h) => h.score);
  const lo = Math.min(...scores, 0), hi = Math.max(...scores, 1e-9);
  hits.forEach((hit, i) => {
    const item = document.createElement("li");
    item.className = "hit";
    const width = hi > lo ? ((hit.score - lo) / (hi - lo)) * 100 : 100;
    const relevance = typeof hit.relevance === "number" ? hit.relevance : null;
    item.innerHTML = `
      <div class="top">
        <span class="rank">${i + 1}.</span>
        <span class="id"></span>
        <div class="bars"><div class="bar" style="width:${width.toFixed(1)}%"></div>
          ${relevance === null ? "" : `<div class="bar relevance" style="width:${(relevance * 100).toFixed(1)}%"></div>`}</div>
        <span class="num">score ${hit.score.toFixed(4)}${relevance === null ? "" : `<br>relevance ${relevance.toFixed(2)}`}</span>
      </div>
      <p class="text"></p>
      <div class="meta"></div>`;
    item.querySelector(".id").textContent = hit.id;
    item.querySelector(".text").textContent = hit.text || "";
    item.querySelector(".meta").textContent = JSON.stringify(hit.metadata);
    list.appendChild(item);
  });
  drawHistogram(scores);
}

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("collection").value;
  if (!name) { setStatus("Choose a collection first.", true); return; }
  let where = null;
  if ($("where").value.trim()) {
    try { where = JSON.parse($("where").value); } catch { setStatus("The filter is not valid JSON.", true); return; }
  }
  localStorage.setItem("simsearch-collection", name);
  setStatus("Searching…");
  const started = performance.now();
  try {
    const data = await call("POST", `/collections/${encodeURIComponent(name)}/search`,
      { query: $("query").value, k: Number($("k").value) || 10, where });
    const hits = data.results[0];
    renderHits(hits);
    setStatus(`${hits.length} result(s) in ${Math.round(performance.now() - started)} ms`);
  } catch (err) {
    renderHits([]);
    setStatus(err.message, true);
  }
});

keyInput.addEventListener("change", () => {
  sessionStorage.setItem("simsearch-key", keyInput.value);
  loadCollections();
});

loadCollections();
