// The Microscope site: an index of layers and units, one view per unit at `#layer/unit`, and a
// search box over the labels. Data come from data.js (`window.MICROSCOPE`); the page is loaded as
// a classic script from file://, so this module exports nothing: its pure helpers hang on
// `globalThis.microscopeHelpers` for the tests.

import { h } from "./dom.js";

/** `#layer/unit` as `{layer, unit}`, or null for the index. Layer names may hold dots. */
function parseHash(hash) {
  const text = decodeURIComponent(String(hash || "").replace(/^#/, ""));
  const cut = text.lastIndexOf("/");
  if (cut <= 0) return null;
  const unit = Number(text.slice(cut + 1));
  if (!Number.isInteger(unit) || unit < 0 || text.slice(cut + 1).trim() === "") return null;
  return { layer: text.slice(0, cut), unit };
}

/** The address of one unit's view. */
function unitHash(layer, unit) {
  return `#${encodeURIComponent(layer).replace(/%2E/g, ".")}/${unit}`;
}

/** The units whose label holds every word of `query` (case-insensitive); all for an empty query. */
function filterUnits(units, query) {
  const words = String(query || "").toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return units.slice();
  return units.filter((u) => {
    const text = `${u.label || ""} ${u.unit}`.toLowerCase();
    return words.every((w) => text.includes(w));
  });
}

/** Find one unit's entry in the data, or null. */
function findUnit(data, layer, unit) {
  const found = (data.layers || []).find((l) => l.name === layer);
  return (found && found.units.find((u) => u.unit === unit)) || null;
}

globalThis.microscopeHelpers = { parseHash, unitHash, filterUnits, findUnit };

function card(layer, u) {
  return h("a", { class: "ms-card", href: unitHash(layer, u.unit), "data-unit": String(u.unit) }, [
    h("img", { src: u.icon, alt: `unit ${u.unit}`, loading: "lazy" }),
    h("div", { text: `unit ${u.unit}` }),
    h("div", { class: "ms-muted", text: u.label || "" }),
  ]);
}

function indexView(data, query) {
  const body = [];
  let shown = 0;
  for (const layer of data.layers) {
    const units = filterUnits(layer.units, query);
    shown += units.length;
    body.push(h("h2", { text: `${layer.name} (${units.length} of ${layer.units.length} units)` }));
    body.push(h("div", { class: "ms-grid", "data-layer": layer.name }, units.map((u) => card(layer.name, u))));
  }
  if (!shown) body.push(h("p", { class: "ms-muted ms-empty", text: `No unit's label matches "${query}".` }));
  return h("div", { class: "ms-index" }, body);
}

function unitView(data, layer, u) {
  const examples = u.examples.map((e, i) =>
    h("figure", { class: "ms-example" }, [
      h("img", { src: e.file, alt: `top example ${i + 1}`, title: e.source || "" }),
      h("figcaption", { text: Number(e.value).toFixed(3) }),
    ]),
  );
  return h("div", { class: "ms-unit-page" }, [
    h("p", {}, [h("a", { href: "#", text: "All units" }), h("span", { class: "ms-muted", text: ` / ${layer}` })]),
    h("div", { class: "ms-unit" }, [
      h("img", { class: "ms-vis", src: u.icon, alt: `feature visualization of unit ${u.unit}` }),
      h("div", {}, [
        h("h2", { text: `${layer} / unit ${u.unit}` }),
        h("p", { class: "ms-label", text: u.label || "(no label)" }),
        h("p", { class: "ms-muted", text: `label confidence (z): ${Number(u.confidence).toFixed(2)}` }),
      ]),
    ]),
    h("h2", { text: `Top ${u.examples.length} dataset examples` }),
    h("div", { class: "ms-examples" }, examples),
  ]);
}

function start(root, data) {
  let query = "";
  const search = h("input", { type: "search", placeholder: "Search labels", "aria-label": "Search labels" });
  const main = h("main");
  const header = h("header", {}, [
    h("h1", {}, [h("a", { href: "#", text: `Microscope: ${data.model}` })]),
    search,
  ]);
  function draw() {
    const where = parseHash(location.hash);
    const u = where && findUnit(data, where.layer, where.unit);
    if (where && !u) main.replaceChildren(h("p", { text: `No unit ${where.unit} in layer ${where.layer}.` }));
    else main.replaceChildren(u ? unitView(data, where.layer, u) : indexView(data, query));
    document.title = u ? `${where.layer} / ${u.unit}: ${u.label}` : `Microscope: ${data.model}`;
  }
  search.addEventListener("input", () => {
    query = search.value;
    if (parseHash(location.hash)) location.hash = "";
    else draw();
  });
  window.addEventListener("hashchange", draw);
  root.replaceChildren(header, main);
  draw();
}

if (typeof document !== "undefined" && document.getElementById("microscope")) {
  const root = document.getElementById("microscope");
  if (!window.MICROSCOPE) root.replaceChildren(h("p", { text: "data.js is missing or did not load." }));
  else start(root, window.MICROSCOPE);
}
