// The Microscope site: an index of layers and units, one view per unit at `#layer/unit`, and a
// search box over the labels. Data come from data.js (`window.MICROSCOPE`); the page is loaded as
// a classic script from file://, so this module exports nothing: its pure helpers hang on
// `globalThis.microscopeHelpers` for the tests.

import { colormapLUT } from "./colormap.js";
import { h, scoreBars } from "./dom.js";
import { EXAMPLE_HEAT, gridCrop, overlayRGBA } from "./render.js";

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

globalThis.microscopeHelpers = { parseHash, unitHash, filterUnits, findUnit, decodeBytes };

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
    const atlas = !query && atlasView(layer);
    if (atlas) body.push(atlas);
    body.push(h("div", { class: "ms-grid", "data-layer": layer.name }, units.map((u) => card(layer.name, u))));
  }
  if (!shown) body.push(h("p", { class: "ms-muted ms-empty", text: `No unit's label matches "${query}".` }));
  return h("div", { class: "ms-index" }, body);
}

/** A base64 string as bytes. */
function decodeBytes(text) {
  const raw = atob(String(text || ""));
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** The unit's heat under an example's crop: its grid, coloured as the widgets colour it, cut
 * to the crop's box and scaled up cell by cell. */
function heatCanvas(example, lut, side) {
  const [rows, cols] = example.grid;
  const cells = h("canvas", { width: cols, height: rows });
  const rgba = overlayRGBA(decodeBytes(example.heat), cols, rows, { lut, ...EXAMPLE_HEAT });
  cells.getContext("2d").putImageData(new ImageData(rgba, cols, rows), 0, 0);
  const canvas = h("canvas", { width: side, height: side, "data-heat": "1" });
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  const [x, y, w, hgt] = gridCrop(example.box, example.view[0], example.view[1], rows, cols);
  context.drawImage(cells, x, y, w, hgt, 0, 0, side, side);
  return canvas;
}

function examplesRow(examples, which, lut) {
  if (!examples || !examples.length) return h("p", { class: "ms-muted", text: `no ${which} examples` });
  return h(
    "div",
    { class: "ms-examples", "data-which": which },
    examples.map((e, i) =>
      h("figure", { class: "ms-example" }, [
        h("div", { class: "ms-stage" }, [
          h("img", { src: e.file, alt: `${which} example ${i + 1}`, title: e.source || "" }),
          heatCanvas(e, lut, 128),
        ]),
        h("figcaption", { text: Number(e.value).toFixed(3) }),
      ]),
    ),
  );
}

function wordsList(words) {
  const bars = scoreBars(words.map(([, score]) => Number(score)), 120);
  return h(
    "ul",
    { class: "ms-words", "aria-label": "top words" },
    words.map(([word, score], i) => h("li", {}, [h("span", { text: word }), bars[i], h("span", { class: "ms-muted", text: Number(score).toFixed(3) })])),
  );
}

function unitView(layer, u, detail) {
  const lut = colormapLUT("inferno");
  const facets = (u.facets || [u.icon]).slice(1);
  const heat = h("input", { type: "checkbox", checked: true, class: "ms-heat-toggle" });
  const body = h("div", { class: "ms-details" });
  heat.addEventListener("change", () => body.classList.toggle("ms-heat-off", !heat.checked));
  if (detail === null) body.append(h("p", { class: "ms-muted", text: "Loading the unit's examples..." }));
  else if (detail instanceof Error) body.append(h("p", { class: "ms-error", text: detail.message }));
  else {
    body.append(
      h("h2", { text: `Top ${detail.top.length} dataset examples` }),
      examplesRow(detail.top, "top", lut),
      h("h2", { text: `Bottom ${detail.bottom.length} dataset examples` }),
      examplesRow(detail.bottom, "bottom", lut),
    );
  }
  return h("div", { class: "ms-unit-page" }, [
    h("p", {}, [h("a", { href: "#", text: "All units" }), h("span", { class: "ms-muted", text: ` / ${layer}` })]),
    h("div", { class: "ms-unit" }, [
      h("div", {}, [
        h("img", { class: "ms-vis", src: u.icon, alt: `feature visualization of unit ${u.unit}` }),
        h("div", { class: "ms-facets" }, facets.map((f, i) => h("img", { src: f, alt: `facet ${i + 2} of unit ${u.unit}` }))),
      ]),
      h("div", {}, [
        h("h2", { text: `${layer} / unit ${u.unit}` }),
        h("p", { class: "ms-label", text: u.label || "(no label)" }),
        h("p", { class: "ms-muted", text: `label confidence (z): ${Number(u.confidence).toFixed(2)}` }),
        detail && !(detail instanceof Error) ? wordsList(detail.words || []) : h("span"),
        h("label", {}, [heat, h("span", { text: " heat over the examples" })]),
      ]),
    ]),
    body,
  ]);
}

/** Load `units/<dir>/<unit>.js`, which calls `microscopeUnit(detail)`; `done(detail | Error)`. */
function loadUnit(dir, unit, done) {
  const script = document.createElement("script");
  window.microscopeUnit = (detail) => {
    if (detail && detail.unit === unit) done(detail);
  };
  script.src = `units/${dir}/${unit}.js`;
  script.onerror = () => done(new Error(`${script.src} is missing: rebuild the site to write it.`));
  script.onload = () => script.remove();
  document.head.append(script);
}

function atlasView(layer) {
  const a = layer.atlas;
  if (!a) return null;
  const filled = Math.round(Number(a.filled) * 100);
  return h("figure", { class: "ms-atlas" }, [
    h("img", { src: a.image, alt: `activation atlas of ${layer.name}` }),
    h("figcaption", {
      class: "ms-muted",
      text: `Activation atlas: ${a.activations} activations laid out by similarity, averaged in ${a.size} x ${a.size} cells (${filled}% filled), each cell's average drawn as a feature visualization.`,
    }),
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
    else if (!u) main.replaceChildren(indexView(data, query));
    else {
      const dir = data.layers.find((l) => l.name === where.layer).dir;
      main.replaceChildren(unitView(where.layer, u, null));
      const hash = location.hash;
      loadUnit(dir, u.unit, (detail) => {
        if (location.hash === hash) main.replaceChildren(unitView(where.layer, u, detail));
      });
    }
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
