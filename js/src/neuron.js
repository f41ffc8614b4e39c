// NeuronExplorer front end: layer and unit pickers, the feature visualization and its facets,
// dataset examples (neuron_examples.js), the top words and a text query. Python computes
// everything; this module draws the synced state and sends the selection back. What still shows
// an earlier unit (until Python's answer arrives) is dimmed and marked busy.
import "./neuron.css";
import { decodeArray } from "./codecs.js";
import { h, scoreBars } from "./dom.js";
import { errorBanner, paintArray, subscribe } from "./kit.js";
import { examplesPanel } from "./neuron_examples.js";
import { baselineBars, formatScore, showsSelection } from "./neuron_layout.js";
import { debouncedSaver } from "./sync.js";
import { parseUnit, stepLayer, stepUnit } from "./units.js";

const NAV_DEBOUNCE_MS = 150;
const WORD_TRACK_PX = 110;

/** `draw` run once after a burst of changes: Python sends the example traits together. */
function coalesced(draw) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      draw();
    });
  };
}

function render({ model, el }) {
  el.classList.add("cw-neuron");
  el.tabIndex = 0; // arrow keys navigate when the widget has the focus
  const banner = errorBanner(model);

  const layerSelect = h("select", { class: "cw-layer", "aria-label": "layer" });
  const unitInput = h("input", { class: "cw-unit", type: "number", min: "0", "aria-label": "unit" });
  const unitCount = h("span", { class: "cw-unit-count" });
  const previous = h("button", { class: "cw-prev", type: "button", text: "◀", title: "previous unit (←)" });
  const next = h("button", { class: "cw-next", type: "button", text: "▶", title: "next unit (→)" });
  // the unit's automatic label from a Microscope site, next to the unit it names
  const unitLabel = h("span", { class: "cw-unit-label" });
  const queryInput = h("input", { class: "cw-query", type: "search", placeholder: "text query: find units, Enter" });
  const queryHeading = h("div", { class: "cw-query-heading" });
  const queryChips = h("div", { class: "cw-query-chips" });
  const queryResults = h("div", { class: "cw-query-results" }, [queryHeading, queryChips]);
  const header = h("div", { class: "cw-header" }, [
    h("label", { class: "cw-control" }, [h("span", { text: "layer" }), layerSelect]),
    h("label", { class: "cw-control" }, [h("span", { text: "unit" }), unitInput, unitCount]),
    previous,
    next,
    unitLabel,
    queryInput,
  ]);

  const main = h("canvas", { class: "cw-featvis", width: 1, height: 1 });
  const busyLabel = h("span", { class: "cw-busy-label" });
  const busy = h("div", { class: "cw-busy", role: "status" }, [h("span", { class: "cw-spinner" }), busyLabel]);
  const stage = h("div", { class: "cw-featvis-stage" }, [main, busy]);
  const facets = h("div", { class: "cw-facets" });
  const progress = h("progress", { class: "cw-progress", max: "1", value: "0" });
  const progressText = h("span", { class: "cw-progress-text" });
  // quick drafts while browsing; "fine" redraws with more steps and several draws a step
  const detailButton = (detail, title) =>
    h("button", { class: "cw-which cw-detail", type: "button", text: detail, "data-detail": detail, title });
  const detailButtons = [
    detailButton("quick", "quick drafts while browsing units"),
    detailButton("fine", "redraw with more steps, each averaged over several random draws: clearer, some ten times slower"),
  ];
  const drawnWith = h("span", { class: "cw-drawn-with" });
  const detailControls = h("div", { class: "cw-detail-controls" }, [
    h("span", { class: "cw-toggle", role: "group", "aria-label": "visualization detail" }, detailButtons),
    drawnWith,
  ]);
  const examples = examplesPanel(model);
  const words = h("ol", { class: "cw-words" });
  const wordsNote = h("p", { class: "cw-words-note" });
  const panel = (name, title, children) => h("section", { class: `cw-panel ${name}` }, [h("h4", { text: title }), ...children]);
  const visualizationPanel = panel("cw-visualization-panel", "feature visualization", [stage, progress, progressText, facets, detailControls]);
  const examplesSection = panel("cw-examples-section", "dataset examples", [examples.element]);
  const wordsPanel = panel("cw-words-panel", "top words", [words, wordsNote]);
  const body = h("div", { class: "cw-body" }, [visualizationPanel, examplesSection, wordsPanel]);
  el.replaceChildren(banner.el, header, queryResults, body);

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
    drawStale();
  }

  function setLayer(layer) {
    if (layer === model.get("layer")) return;
    save.flush();
    pendingUnit = null;
    model.set("layer", layer);
    model.save_changes();
  }

  // What shows an earlier selection than the one picked is dimmed, with a busy cue, until
  // Python's answer for the new one arrives.
  function drawStale() {
    const layer = model.get("layer");
    const unit = currentUnit();
    const staleVisualization = !showsSelection(model.get("visualization_of"), layer, unit);
    visualizationPanel.classList.toggle("cw-stale", staleVisualization);
    busyLabel.textContent = staleVisualization ? `rendering unit ${unit}…` : "";
    examplesSection.classList.toggle("cw-stale", !showsSelection(model.get("examples_of"), layer, unit));
    wordsPanel.classList.toggle("cw-stale", !showsSelection(model.get("words_of"), layer, unit));
    // the label names Python's unit: dimmed while a newer pick waits for its own
    unitLabel.classList.toggle("cw-stale", unit !== model.get("unit"));
  }

  function drawUnitLabel() {
    const label = model.get("unit_label") || "";
    unitLabel.textContent = label;
    unitLabel.title = label && `automatic label from the Microscope site: ${label}`; // whole, when cut short
    unitLabel.hidden = !label;
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
    unitCount.textContent = `of ${count} (0 to ${Math.max(0, count - 1)})`;
    drawStale();
  }

  function drawVisualization() {
    const images = decodeArray(model.get("visualization"));
    facets.replaceChildren();
    if (!images) {
      main.width = main.height = 1;
      return;
    }
    paintArray(main, images, 0);
    for (let i = 1; i < images.shape[0]; i++) {
      const canvas = h("canvas", { class: "cw-facet" });
      paintArray(canvas, images, i);
      facets.append(canvas);
    }
  }

  function drawWords() {
    const pairs = model.get("top_words") || [];
    const scores = pairs.map(([, score]) => Number(score));
    const baseline = Number(model.get("word_baseline"));
    // from the vocabulary's mean, not from zero: close scores must not look the same
    const bars = scoreBars(scores, WORD_TRACK_PX, baselineBars(scores, baseline));
    words.replaceChildren(
      ...pairs.map(([word, score], i) =>
        h("li", { class: "cw-word" }, [
          h("span", { class: "cw-word-text", text: String(word), title: String(word) }),
          bars[i],
          h("span", { class: "cw-word-score", text: Number(score).toFixed(2) }),
        ]),
      ),
    );
    wordsNote.textContent = pairs.length ? `bars start at the vocabulary's mean score, ${baseline.toFixed(2)} (the tick)` : "";
  }

  function drawQueryResults() {
    const results = model.get("query_results") || [];
    queryHeading.textContent = model.get("query_heading");
    queryChips.replaceChildren(
      ...results.map(([unit, score]) => {
        const button = h("button", { class: "cw-query-unit", type: "button", title: `show unit ${unit}` }, [
          h("span", { class: "cw-chip-unit", text: `unit ${unit}` }),
          h("span", { class: "cw-chip-score", text: formatScore(score) }),
        ]);
        button.addEventListener("click", () => setUnit(Number(unit)));
        return button;
      }),
    );
    queryResults.hidden = !results.length;
  }

  function drawQuery() {
    const query = model.get("query");
    if (queryInput.value !== query) queryInput.value = query;
  }

  function drawDetail() {
    const detail = model.get("detail");
    for (const button of detailButtons) button.setAttribute("aria-pressed", String(button.dataset.detail === detail));
    const [steps, views] = model.get("drawn_with") || [];
    drawnWith.textContent = steps ? `${steps} steps × ${views} ${views === 1 ? "draw" : "draws"} each` : "";
  }

  function drawBusy() {
    const busy = model.get("busy");
    const fraction = model.get("progress");
    progress.value = fraction;
    progress.hidden = !busy;
    progressText.textContent = busy ? `optimizing ${Math.round(fraction * 100)}%` : "";
    el.classList.toggle("cw-is-busy", busy);
  }

  // -- edits from the browser ---------------------------------------------------------------
  layerSelect.addEventListener("change", () => setLayer(layerSelect.value));
  function commitTypedUnit() {
    // out of range goes to Python all the same: it refuses it and names the valid units
    const unit = parseUnit(unitInput.value);
    if (unit !== null && unit !== currentUnit()) setUnit(unit);
  }
  unitInput.addEventListener("change", commitTypedUnit);
  // Enter explicitly: in JupyterLab's notebook, Enter in an output's input fires no change event
  unitInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") commitTypedUnit();
  });
  previous.addEventListener("click", () => setUnit(stepUnit(currentUnit(), -1, model.get("unit_count"))));
  next.addEventListener("click", () => setUnit(stepUnit(currentUnit(), 1, model.get("unit_count"))));
  for (const button of detailButtons) {
    button.addEventListener("click", () => {
      if (model.get("detail") === button.dataset.detail) return;
      model.set("detail", button.dataset.detail);
      model.save_changes();
    });
  }
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
      // Python's unit wins over a typed one it refused, also in the focused box
      if (pendingUnit === null) unitInput.value = String(model.get("unit"));
      drawHeader();
    }],
    ["change:visualization", drawVisualization],
    ["change:visualization_of change:examples_of change:words_of", drawStale],
    [
      "change:examples change:example_maps change:example_images change:example_image_maps change:example_boxes" +
        " change:example_values change:example_sources",
      coalesced(examples.draw),
    ],
    ["change:example_set change:heat_overlay", examples.drawControls],
    ["change:top_words change:word_baseline", drawWords],
    ["change:query_results change:query_heading", drawQueryResults],
    ["change:query", drawQuery],
    ["change:busy change:progress", drawBusy],
    ["change:detail change:drawn_with", drawDetail],
    ["change:unit_label", drawUnitLabel],
    ["change:error", banner.update],
  ];
  const unsubscribe = subscribe(model, handlers);
  drawQuery();
  drawHeader();
  drawUnitLabel();
  drawVisualization();
  examples.draw();
  drawWords();
  drawQueryResults();
  drawBusy();
  drawDetail();
  banner.update();
  return () => {
    save.cancel();
    unsubscribe();
  };
}

export default { render };
