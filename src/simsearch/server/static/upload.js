// Upload of a JSONL or CSV/TSV file: parsed and checked in the browser, then sent to the
// collection's add or upsert route in batches that stay inside the server's request limits.
const BATCH_ITEMS = 200;
const BATCH_CHARS = 400_000;

/** Split one CSV/TSV text into rows of fields (quotes, doubled quotes, CRLF). */
export function parseDelimited(text, sep) {
  const rows = [];
  let row = [], field = "", quoted = false, i = 0;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i += 1; continue; }
      field += c; i += 1; continue;
    }
    if (c === '"' && field === "") { quoted = true; i += 1; continue; }
    if (c === sep) { row.push(field); field = ""; i += 1; continue; }
    if (c === "\n" || c === "\r") {
      row.push(field); rows.push(row); row = []; field = "";
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      continue;
    }
    field += c; i += 1;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows.filter((r) => !(r.length === 1 && r[0] === ""));
}

/** A CSV cell as a typed value: integers, floats, booleans; empty is missing (undefined). */
export function typedCell(text) {
  const t = text.trim();
  if (t === "") return undefined;
  if (/^[+-]?\d+$/.test(t) && Number.isSafeInteger(Number(t))) return Number(t);
  if (/^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$/.test(t) && Number.isFinite(Number(t))) return Number(t);
  if (/^(true|false)$/i.test(t)) return t.toLowerCase() === "true";
  return text;
}

/** Records ({line, record}) of a file's text, by its name's extension. */
export function parseFile(name, text) {
  const lower = name.toLowerCase();
  if (lower.endsWith(".csv") || lower.endsWith(".tsv")) {
    const rows = parseDelimited(text, lower.endsWith(".tsv") ? "\t" : ",");
    if (rows.length < 2) throw new Error(`${name}: a header row and at least one row are needed`);
    const header = rows[0].map((h) => h.trim());
    return rows.slice(1).map((cells, i) => {
      if (cells.length !== header.length) {
        throw new Error(`${name}:${i + 2}: ${cells.length} fields where the header has ${header.length}`);
      }
      const record = {};
      header.forEach((h, j) => { const v = typedCell(cells[j]); if (v !== undefined) record[h] = v; });
      return { line: i + 2, record };
    });
  }
  const records = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    let record;
    try { record = JSON.parse(line); } catch (err) {
      throw new Error(`${name}:${i + 1}: not valid JSON (${err.message})`);
    }
    if (record === null || typeof record !== "object" || Array.isArray(record)) {
      throw new Error(`${name}:${i + 1}: each line must be a JSON object`);
    }
    records.push({ line: i + 1, record });
  });
  return records;
}

/** Items (ids, texts, vectors, metadata) from records, checked before anything is sent. */
export function toItems(name, records, idField, textField) {
  if (!records.length) throw new Error(`${name}: no records`);
  const withVectors = records.filter(({ record }) => Array.isArray(record.vector)).length;
  if (withVectors && withVectors !== records.length) {
    throw new Error(`${name}: ${withVectors} of ${records.length} records have a vector; give all or none`);
  }
  const seen = new Set();
  return records.map(({ line, record }) => {
    const where = `${name}:${line}`;
    const rawId = record[idField];
    if (rawId === undefined || rawId === null || rawId === "") throw new Error(`${where}: no '${idField}' field`);
    const id = String(rawId);
    if (seen.has(id)) throw new Error(`${where}: the id '${id}' is repeated in the file`);
    seen.add(id);
    const text = record[textField];
    if (text !== undefined && typeof text !== "string") throw new Error(`${where}: '${textField}' is not a string`);
    if (text === undefined && !withVectors) throw new Error(`${where}: no '${textField}' field (and no vector)`);
    const metadata = {};
    for (const [k, v] of Object.entries(record)) {
      if (k !== idField && k !== textField && k !== "vector") metadata[k] = v;
    }
    return { id, text, vector: withVectors ? record.vector : undefined, metadata };
  });
}

function batches(items) {
  const out = [];
  let current = [], chars = 0;
  for (const item of items) {
    const size = (item.text || "").length;
    if (current.length && (current.length >= BATCH_ITEMS || chars + size > BATCH_CHARS)) {
      out.push(current); current = []; chars = 0;
    }
    current.push(item); chars += size;
  }
  if (current.length) out.push(current);
  return out;
}

/**
 * Send `items` to `collection` with `call(method, path, body)`, batch by batch; `progress`
 * is told how many are stored. Returns how many were stored; a failed batch throws an Error
 * whose message says how many were stored before it.
 */
export async function sendItems(call, collection, mode, items, progress) {
  let stored = 0;
  for (const batch of batches(items)) {
    const body = { ids: batch.map((i) => i.id), metadata: batch.map((i) => i.metadata) };
    if (batch[0].vector !== undefined) body.vectors = batch.map((i) => i.vector);
    if (batch.every((i) => i.text !== undefined)) body.texts = batch.map((i) => i.text);
    try {
      await call("POST", `/collections/${encodeURIComponent(collection)}/${mode}`, body);
    } catch (err) {
      err.message = `${stored} of ${items.length} stored, then: ${err.message}`;
      throw err;
    }
    stored += batch.length;
    progress(stored);
  }
  return stored;
}
