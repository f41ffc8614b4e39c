// ActivationGridWidget front end: the image with its grid of positions, beside it either every
// position's feature visualization (icons) or the image with a signed heat of the positions'
// attribution to one class; hover, click or arrow keys pick a position, and its card
// (grid_card.js) lists its strongest units and classes. Python computes everything.
import "./grid.css";
import { decodeArray } from "./codecs.js";
import { h } from "./dom.js";
import { errorBanner, subscribe } from "./kit.js";
import { positionCard } from "./grid_card.js";
import { cellAt, cellSize, column, extent, legendLabels, stepPosition } from "./grid_layout.js";
import { paintGrid, paintHeat, paintIcons, paintLegend, pictureOf } from "./grid_paint.js";

const TARGET_PX = 288; // the grid's side; a cell is never under 48 px

/** `draw` run once after a burst of changes: Python sends a new grid's traits together. */
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

function stage(name) {
  const base = h("canvas", { class: "cw-base" });
  const overlay = h("canvas", { class: "cw-overlay" });
  const note = h("div", { class: "cw-note", hidden: true });
  const label = h("div", { class: "cw-caption" });
  const box = h("div", { class: "cw-stage" }, [base, overlay, note]);
  return { element: h("figure", { class: `cw-figure ${name}` }, [label, box]), box, base, overlay, note, label };
}

function render({ model, el }) {
  el.classList.add("cw-activation-grid");
  el.tabIndex = 0; // the arrow keys move the selected position when the widget has the focus
  const banner = errorBanner(model);
  const layerSelect = h("select", { class: "cw-layer", "aria-label": "layer" });
  const modeButtons = [["icons", "icons"], ["attribution", "image + attribution"]].map(([mode, text]) =>
    h("button", { class: "cw-mode", type: "button", text, "data-mode": mode }));
  const classSelect = h("select", { class: "cw-class", "aria-label": "class" });
  const progress = h("progress", { class: "cw-progress", max: "1", value: "0" });
  const progressText = h("span", { class: "cw-progress-text" });
  const busy = h("span", { class: "cw-busy", role: "status" }, [h("span", { class: "cw-spinner" }), progress, progressText]);
  const header = h("div", { class: "cw-header" }, [
    h("label", { class: "cw-control" }, [h("span", { text: "layer" }), layerSelect]),
    h("span", { class: "cw-toggle", role: "group", "aria-label": "what the right panel shows" }, modeButtons),
    h("label", { class: "cw-control cw-class-control" }, [h("span", { text: "class" }), classSelect]),
    busy,
  ]);
  const imageStage = stage("cw-image-figure");
  const sideStage = stage("cw-side-figure");
  const legendBar = h("canvas", { class: "cw-legend-bar", width: 200, height: 10 });
  const legendLabelsRow = h("div", { class: "cw-legend-labels" });
  const legend = h("div", { class: "cw-legend" }, [legendBar, legendLabelsRow, h("div", {
    class: "cw-legend-caption",
    text: "how much each position moves the class's logit over an average place in this image: red towards it, blue away",
  })]);
  paintLegend(legendBar);
  sideStage.element.append(legend);
  const card = positionCard(model);
  const panels = h("div", { class: "cw-panels" }, [imageStage.element, sideStage.element]);
  el.replaceChildren(banner.el, header, h("div", { class: "cw-body" }, [panels, card.element]));

  const ratio = Math.max(1, Math.round(globalThis.devicePixelRatio || 1));
  let hovered = null;
  const grid = () => ((model.get("grid") || []).length === 2 ? model.get("grid") : null);
  const cell = () => cellSize(grid(), { target: TARGET_PX });
  const selected = () => model.get("position") ?? null;
  const themeColour = (name, fallback) => getComputedStyle(el).getPropertyValue(name).trim() || fallback;

  function size(canvas, width, height) {
    canvas.width = Math.max(1, Math.round(width * ratio));
    canvas.height = Math.max(1, Math.round(height * ratio));
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.imageSmoothingEnabled = true;
    context.imageSmoothingQuality = "high";
    return context;
  }

  function caption(target, text, width) {
    target.label.textContent = text;
    target.label.title = text;
    target.label.style.width = `${width + 2}px`;
  }

  function drawStages() {
    const shape = grid();
    const image = decodeArray(model.get("image"));
    const side = cell();
    const [width, height] = shape ? [shape[1] * side, shape[0] * side] : [TARGET_PX, TARGET_PX];
    const base = size(imageStage.base, width, height);
    if (image) base.drawImage(pictureOf(image), 0, 0, width, height);
    caption(imageStage, shape ? `image · ${shape[0]} × ${shape[1]} positions of ${model.get("layer")}` : "image", width);
    const context = size(sideStage.base, width, height);
    context.fillStyle = themeColour("--cw-bg-alt", "#eeeeee");
    context.fillRect(0, 0, width, height);
    const names = model.get("classes") || [];
    const index = model.get("class_index");
    const heat = model.get("mode") === "attribution" && names.length > 0;
    const icons = decodeArray(model.get("icons"));
    const values = column(decodeArray(model.get("attribution")), index);
    if (heat) caption(sideStage, `attribution to “${names[index] ?? ""}”`, width);
    else caption(sideStage, "each position's activations, visualized", width);
    sideStage.note.hidden = heat || (!!icons && !!shape);
    if (shape && heat) paintHeat(context, image, values, shape, side);
    else if (shape && icons) paintIcons(context, icons, shape, side);
    legend.hidden = !heat;
    legendLabelsRow.replaceChildren(...legendLabels(extent(values)).map((text) => h("span", { text })));
    drawOverlays();
  }

  function drawOverlays() {
    const shape = grid();
    const accent = themeColour("--cw-accent", "#1976d2");
    for (const { overlay, base } of [imageStage, sideStage]) {
      const context = size(overlay, base.width / ratio, base.height / ratio);
      if (shape) paintGrid(context, shape, cell(), hovered, selected(), accent);
    }
    card.draw(hovered ?? selected(), !hovered && !!selected());
  }

  function drawHeader() {
    const names = model.get("layer_names") || [];
    if (layerSelect.options.length !== names.length || names.some((n, i) => layerSelect.options[i].value !== n)) {
      layerSelect.replaceChildren(...names.map((name) => h("option", { value: name, text: name })));
    }
    layerSelect.value = model.get("layer");
    const classes = model.get("classes") || [];
    classSelect.replaceChildren(...classes.map((name, i) => h("option", { value: String(i), text: String(name) })));
    classSelect.value = String(model.get("class_index"));
    const mode = model.get("mode");
    for (const button of modeButtons) {
      button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
      button.disabled = button.dataset.mode === "attribution" && !classes.length;
      if (button.disabled) button.title = "no classes were given to attribute to";
    }
    classSelect.parentElement.hidden = mode !== "attribution" || !classes.length;
  }

  function drawBusy() {
    const on = model.get("busy");
    const percent = Math.round(model.get("progress") * 100);
    busy.hidden = !on;
    progress.value = model.get("progress");
    progressText.textContent = on ? `${model.get("status") || "computing"} ${percent}%` : "";
    el.classList.toggle("cw-is-busy", on);
    panels.classList.toggle("cw-stale", model.get("stale"));
    sideStage.note.textContent = on ? `rendering the icons… ${percent}%` : "no icons (icon_steps=0)";
  }

  function send(name, value) {
    model.set(name, value);
    model.save_changes();
  }

  function pointed(box, event) {
    const rect = box.getBoundingClientRect();
    return cellAt(event.clientX - rect.left - box.clientLeft, event.clientY - rect.top - box.clientTop, cell(), grid());
  }

  for (const { box } of [imageStage, sideStage]) {
    box.addEventListener("pointermove", (event) => {
      const at = pointed(box, event);
      if (String(at) === String(hovered)) return;
      hovered = at;
      drawOverlays();
    });
    box.addEventListener("pointerleave", () => {
      hovered = null;
      drawOverlays();
    });
    box.addEventListener("click", (event) => {
      const at = pointed(box, event);
      if (at) send("position", at);
    });
  }
  card.element.addEventListener("click", (event) => {
    const button = event.target.closest?.(".cw-unit-open");
    if (button) model.send({ type: "open", unit: Number(button.dataset.unit) });
  });
  layerSelect.addEventListener("change", () => send("layer", layerSelect.value));
  classSelect.addEventListener("change", () => send("class_index", Number(classSelect.value)));
  for (const button of modeButtons) button.addEventListener("click", () => send("mode", button.dataset.mode));
  el.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLSelectElement || event.target instanceof HTMLInputElement) return;
    if (event.key === "Escape" && selected()) return send("position", null);
    const next = stepPosition(selected(), event.key, grid());
    if (!next) return;
    event.preventDefault(); // the arrows would scroll the notebook
    hovered = null;
    send("position", next);
  });

  const handlers = [
    ["change:image change:grid change:icons change:attribution change:class_index change:mode change:layer", coalesced(drawStages)],
    ["change:position change:top_units change:top_values change:unit_icons change:dictionary_units", coalesced(drawOverlays)],
    ["change:layer_names change:layer change:classes change:class_index change:mode", drawHeader],
    ["change:busy change:progress change:status change:stale", drawBusy],
    ["change:error", banner.update],
  ];
  const unsubscribe = subscribe(model, handlers);
  drawHeader();
  drawBusy();
  drawStages();
  banner.update();
  return () => unsubscribe();
}

export default { render };
