// NeuronExplorer front end: layer and unit pickers, the feature visualization and its facets,
// dataset examples with an activation overlay, the top words and a text query. Python computes
// everything; this module draws the synced state and sends the selection back.
import "./neuron.css";
import { decodeArray } from "./codecs.js";
import { colormapLUT } from "./colormap.js";
import { h, scoreBars } from "./dom.js";
import { imageRGBA, overlayRGBA } from "./render.js";
import { debouncedSaver } from "./sync.js";
import { parseUnit, stepLayer, stepUnit } from "./units.js";

const NAV_DEBOUNCE_MS = 150;

/** Put slice `index` of a decoded (n, H, W, 3) uint8 array on a canvas. */
function paintRGB(canvas, array, index) {
  const [, height, width] = array.shape;
  const size = height * width * 3;
  canvas.width = width;
  canvas.height = height;
  const rgb = array.data.subarray(index * size, (index + 1) * size);
  canvas.getContext("2d").putImageData(new ImageData(imageRGBA(rgb, width, height), width, height), 0, 0);
}

function render({ model, el }) {
  el.classList.add("cw-neuron");
  el.tabIndex = 0; // arrow keys navigate when the widget has the focus
  const errorBanner = h("div", { class: "cw-error", role: "alert", hidden: true });

  const layerSelect = h("select", { class: "cw-layer", "aria-label": "layer" });
  const unitInput = h("input", { class: "cw-unit", type: "number", min: "0", "aria-label": "unit" });
  const unitCount = h("span", { class: "cw-unit-count" });
  const previous = h("button", { class: "cw-prev", type: "button", text: "◀", title: "previous unit (←)" });
  const next = h("button", { class: "cw-next", type: "button", text: "▶", title: "next unit (→)" });
  const queryInput = h("input", { class: "cw-query", type: "search", placeholder: "text query: find units, Enter" });
  const queryResults = h("div", { class: "cw-query-results" });
  const header = h("div", { class: "cw-header" }, [
    h("label", { class: "cw-control" }, [h("span", { text: "layer" }), layerSelect]),
    h("label", { class: "cw-control" }, [h("span", { text: "unit" }), unitInput, unitCount]),
    previous,
    next,
    queryInput,
  ]);

  const main = h("canvas", { class: "cw-featvis", width: 1, height: 1 });
  const facets = h("div", { class: "cw-facets" });
  const progress = h("progress", { class: "cw-progress", max: "1", value: "0" });
  const examples = h("div", { class: "cw-examples" });
  const words = h("ol", { class: "cw-words" });
  el.replaceChildren(
    errorBanner,
    header,
    queryResults,
    h("div", { class: "cw-body" }, [
      h("section", { class: "cw-panel" }, [h("h4", { text: "feature visualization" }), main, progress, facets]),
      h("section", { class: "cw-panel" }, [h("h4", { text: "dataset examples" }), examples]),
      h("section", { class: "cw-panel" }, [h("h4", { text: "top words" }), words]),
    ]),
  );

  const save = debouncedSaver(model, NAV_DEBOUNCE_MS);
  // The unit shown right away while Python has not caught up yet.
  let pendingUnit = null;

  function currentUnit() {
    return pendingUnit ?? model.get("unit");
  }

  function setUnit(unit) {
    pendingUnit = unit;
    unitInput.value = String(unit);
    save("unit", unit);
  }

  function setLayer(layer) {
    if (layer === model.get("layer")) return;
    save.flush();
    pendingUnit = null;
    model.set("layer", layer);
    model.save_changes();
  }

  function showError() {
    const message = model.get("error");
    errorBanner.textContent = message;
    errorBanner.hidden = !message;
  }

  function drawHeader() {
    const names = model.get("layer_names") || [];
    if (layerSelect.options.length !== names.length || names.some((n, i) => layerSelect.options[i].value !== n)) {
      layerSelect.replaceChildren(...names.map((name) => h("option", { value: name, text: name })));
    }
    layerSelect.value = model.get("layer");
    const count = model.get("unit_count");
    unitInput.max = String(Math.max(0, count - 1));
    if (el.ownerDocument.activeElement !== unitInput) unitInput.value = String(currentUnit());
    unitCount.textContent = `of ${count}`;
  }

  function drawVisualization() {
    const images = decodeArray(model.get("visualization"));
    facets.replaceChildren();
    if (!images) {
      main.width = main.height = 1;
      return;
    }
    paintRGB(main, images, 0);
    for (let i = 1; i < images.shape[0]; i++) {
      const canvas = h("canvas", { class: "cw-facet" });
      paintRGB(canvas, images, i);
      facets.append(canvas);
    }
  }

  function drawExamples() {
    const crops = decodeArray(model.get("examples"));
    const maps = decodeArray(model.get("example_maps"));
    const values = model.get("example_values") || [];
    const sources = model.get("example_sources") || [];
    examples.replaceChildren();
    if (!crops) {
      examples.append(h("p", { class: "cw-empty", text: "no dataset examples for this layer" }));
      return;
    }
    const lut = colormapLUT("inferno");
    for (let i = 0; i < crops.shape[0]; i++) {
      const image = h("canvas", { class: "cw-example-image" });
      paintRGB(image, crops, i);
      const heat = h("canvas", { class: "cw-example-heat" });
      if (maps && i < maps.shape[0]) {
        const [, height, width] = maps.shape;
        heat.width = width;
        heat.height = height;
        const slice = maps.data.subarray(i * width * height, (i + 1) * width * height);
        heat.getContext("2d").putImageData(new ImageData(overlayRGBA(slice, width, height, { lut, opacity: 0.45 }), width, height), 0, 0);
      }
      const value = Number(values[i]);
      examples.append(
        h("figure", { class: "cw-example", title: String(sources[i] ?? "") }, [
          h("div", { class: "cw-example-stage" }, [image, heat]),
          h("figcaption", { text: Number.isFinite(value) ? value.toFixed(2) : "" }),
        ]),
      );
    }
  }

  function drawWords() {
    const pairs = model.get("top_words") || [];
    const scores = pairs.map(([, score]) => Number(score));
    const bars = scoreBars(scores);
    words.replaceChildren(
      ...pairs.map(([word, score], i) =>
        h("li", { class: "cw-word" }, [
          h("span", { class: "cw-word-text", text: String(word) }),
          bars[i],
          h("span", { class: "cw-word-score", text: Number(score).toFixed(2) }),
        ]),
      ),
    );
  }

  function drawQueryResults() {
    const results = model.get("query_results") || [];
    queryResults.replaceChildren(
      ...results.map(([unit, score]) => {
        const button = h("button", { class: "cw-query-unit", type: "button", text: `${unit}`, title: `score ${Number(score).toFixed(3)}` });
        button.addEventListener("click", () => setUnit(Number(unit)));
        return button;
      }),
    );
    queryResults.hidden = !results.length;
  }

  function drawBusy() {
    progress.value = model.get("progress");
    progress.hidden = !model.get("busy");
    el.classList.toggle("cw-is-busy", model.get("busy"));
  }

  // -- edits from the browser ---------------------------------------------------------------
  layerSelect.addEventListener("change", () => setLayer(layerSelect.value));
  unitInput.addEventListener("change", () => {
    const unit = parseUnit(unitInput.value, model.get("unit_count"));
    if (unit !== null) setUnit(unit);
  });
  previous.addEventListener("click", () => setUnit(stepUnit(currentUnit(), -1, model.get("unit_count"))));
  next.addEventListener("click", () => setUnit(stepUnit(currentUnit(), 1, model.get("unit_count"))));
  queryInput.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    model.set("query", queryInput.value);
    model.save_changes();
  });
  el.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
    const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    if (move[0]) setLayer(stepLayer(model.get("layer_names") || [], model.get("layer"), move[0]));
    else setUnit(stepUnit(currentUnit(), move[1], model.get("unit_count")));
  });

  // -- state from Python --------------------------------------------------------------------
  const handlers = [
    ["change:layer_names change:layer change:unit_count", drawHeader],
    ["change:unit", () => {
      if (pendingUnit === model.get("unit")) pendingUnit = null;
      drawHeader();
    }],
    ["change:visualization", drawVisualization],
    ["change:examples change:example_maps change:example_values change:example_sources", drawExamples],
    ["change:top_words", drawWords],
    ["change:query_results", drawQueryResults],
    ["change:busy change:progress", drawBusy],
    ["change:error", showError],
  ];
  const subscriptions = handlers.flatMap(([events, handler]) => events.split(" ").map((event) => [event, handler]));
  for (const [event, handler] of subscriptions) model.on(event, handler);
  queryInput.value = model.get("query");
  drawHeader();
  drawVisualization();
  drawExamples();
  drawWords();
  drawQueryResults();
  drawBusy();
  showError();
  return () => {
    save.cancel();
    for (const [event, handler] of subscriptions) model.off(event, handler);
  };
}

export default { render };
