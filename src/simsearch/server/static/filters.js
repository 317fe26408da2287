// The filter builder: rows of (field, operator, value) written into the raw JSON filter box,
// which is what a search sends. Field names come from the collection's field catalogue
// (info()["fields"]) when the server gives one, else from the metadata of the results seen.
const OPERATORS = [
  ["$eq", "="], ["$ne", "≠"], ["$gt", ">"], ["$gte", "≥"], ["$lt", "<"], ["$lte", "≤"],
  ["$in", "is one of"], ["$nin", "is none of"], ["$exists", "exists"], ["$missing", "is missing"],
  ["$contains", "contains"],
];
const NO_VALUE = new Set(["$exists", "$missing"]);
const LISTS = new Set(["$in", "$nin"]);
const NUMBER_TYPES = /int|float|num|double|real/i;
const STRING_TYPES = /str|text/i;

let catalogue = new Map();  // field -> {types, count, indexed}

/** Replace the known fields (a list of {field, types, count, indexed}) and their suggestions. */
export function setFields(fields) {
  catalogue = new Map(fields.map((f) => [f.field, f]));
  const list = document.getElementById("field-names");
  list.replaceChildren(...fields.map((f) => {
    const option = document.createElement("option");
    option.value = f.field;
    return option;
  }));
}

/** A typed JSON value from what was typed, read by the field's known types. */
export function typedValue(field, text) {
  const types = Object.keys((catalogue.get(field) || {}).types || {});
  const onlyStrings = types.length > 0 && types.every((t) => STRING_TYPES.test(t));
  const trimmed = text.trim();
  if (onlyStrings) return text;
  let parsed;
  try { parsed = JSON.parse(trimmed); } catch { return text; }
  if (typeof parsed === "number" && types.length && !types.some((t) => NUMBER_TYPES.test(t))) return text;
  return parsed;
}

function condition(row) {
  const field = row.querySelector(".field").value.trim();
  const op = row.querySelector(".op").value;
  const raw = row.querySelector(".value").value;
  if (!field) return null;
  if (op === "$exists") return { [field]: { $exists: true } };
  if (op === "$missing") return { [field]: { $exists: false } };
  if (LISTS.has(op)) {
    const values = raw.split(",").map((v) => v.trim()).filter((v) => v !== "").map((v) => typedValue(field, v));
    return { [field]: { [op]: values } };
  }
  const value = typedValue(field, raw);
  return op === "$eq" ? { [field]: value } : { [field]: { [op]: value } };
}

/** The filter the rows describe, or null when no row names a field. */
export function builtFilter() {
  const rows = [...document.querySelectorAll("#filter-rows .condition")];
  const parts = rows.map(condition).filter((c) => c !== null);
  if (!parts.length) return null;
  if (parts.length === 1) return parts[0];
  return { [document.getElementById("filter-join").value]: parts };
}

function writeFilter() {
  const where = builtFilter();
  document.getElementById("where").value = where === null ? "" : JSON.stringify(where);
}

/** Add one condition row (optionally for `field`) and focus it. */
export function addCondition(field = "") {
  const row = document.createElement("div");
  row.className = "condition";
  const name = document.createElement("input");
  name.className = "field";
  name.setAttribute("list", "field-names");
  name.placeholder = "field";
  name.value = field;
  name.setAttribute("aria-label", "field");
  const op = document.createElement("select");
  op.className = "op";
  op.setAttribute("aria-label", "operator");
  for (const [value, label] of OPERATORS) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = label;
    op.appendChild(option);
  }
  const value = document.createElement("input");
  value.className = "value";
  value.placeholder = "value";
  value.setAttribute("aria-label", "value");
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "ghost remove";
  remove.textContent = "×";
  remove.title = "Remove this condition";
  remove.addEventListener("click", () => { row.remove(); writeFilter(); });
  op.addEventListener("change", () => {
    value.hidden = NO_VALUE.has(op.value);
    value.placeholder = LISTS.has(op.value) ? "values, comma-separated" : "value";
  });
  for (const el of [name, op, value]) el.addEventListener("input", writeFilter);
  op.addEventListener("change", writeFilter);
  row.append(name, op, value, remove);
  document.getElementById("filter-rows").appendChild(row);
  (field ? value : name).focus();
  return row;
}

/** Remove every condition row (the raw filter box is left as it is). */
export function clearConditions() {
  document.getElementById("filter-rows").replaceChildren();
}

document.getElementById("add-condition").addEventListener("click", () => addCondition());
document.getElementById("filter-join").addEventListener("change", writeFilter);
