// SurgeryWidget front end: an image, a heatmap per label over it, the label list and controls.
// Python computes everything; this module draws the synced state and sends edits back.
import "./surgery.css";
import { decodeArray } from "./codecs.js";
import { h } from "./dom.js";
import { COLORMAPS, colormapLUT } from "./colormap.js";
import { addLabel, moveSelection, removeLabel } from "./labels.js";
import { errorBanner, paintArray, subscribe } from "./kit.js";
import { legendEnds, legendRGBA, overlayRGBA } from "./render.js";
import { debouncedSaver } from "./sync.js";

const SLIDER_DEBOUNCE_MS = 150;
const MODE_NAMES = { surgery: "CLIP Surgery", raw: "raw CLIP" };
let viewCount = 0; // element ids stay unique when one page shows several views

function select(className, label, options) {
  const control = h("select", { class: className, "aria-label": label });
  for (const [value, text] of options) control.append(h("option", { value, text }));
  return control;
}

function labelled(text, control) {
  return h("label", { class: "cw-control" }, [h("span", { class: "cw-control-name", text }), control]);
}

function render({ model, el }) {
  el.classList.add("cw-surgery");
  const uid = `cw-surgery-${++viewCount}`;
  const banner = errorBanner(model, () => Object.values(localErrors));
  const busy = h("div", { class: "cw-busy", text: "computing…", hidden: true });

  const base = h("canvas", { class: "cw-base", width: 1, height: 1 });
  const overlay = h("canvas", { class: "cw-overlay", width: 1, height: 1 });
  const pointsLayer = h("canvas", { class: "cw-points", width: 1, height: 1 });
  const stage = h("div", { class: "cw-stage" }, [base, overlay, pointsLayer]);

  const list = h("ul", { class: "cw-labels", role: "listbox", tabindex: "0", "aria-label": "labels" });
  const input = h("input", { class: "cw-label-input", type: "text", placeholder: "add a label, press Enter" });

  const mode = select("cw-mode", "map", Object.entries(MODE_NAMES));
  const threshold = h("input", { class: "cw-threshold", type: "range", min: "0", max: "1", step: "0.01" });
  const thresholdValue = h("output", { class: "cw-threshold-value" });
  const method = select("cw-threshold-method", "threshold method", [["fixed", "fixed"], ["quantile", "quantile"], ["otsu", "Otsu"]]);
  const opacity = h("input", { class: "cw-opacity", type: "range", min: "0", max: "1", step: "0.01" });
  const colormap = select("cw-colormap", "colormap", COLORMAPS.map((name) => [name, name]));
  const showPoints = h("input", { class: "cw-show-points", type: "checkbox" });

  const legendBar = h("canvas", { class: "cw-legend-bar", width: 128, height: 10 });
  const legendCaption = h("span", { class: "cw-legend-caption" });
  const legendLow = h("span", { class: "cw-legend-low", text: "low" });
  const legendHigh = h("span", { class: "cw-legend-high", text: "high" });
  const legendNote = h("span", { class: "cw-legend-note" });
  const legend = h("div", { class: "cw-legend" }, [
    legendCaption,
    h("div", { class: "cw-legend-scale" }, [legendLow, legendBar, legendHigh]),
    legendNote,
  ]);

  const controls = h("div", { class: "cw-controls" }, [
    labelled("map", mode),
    labelled("threshold", h("span", { class: "cw-range" }, [threshold, thresholdValue])),
    labelled("method", method),
    labelled("opacity", opacity),
    labelled("colormap", colormap),
    h("label", { class: "cw-control cw-check" }, [showPoints, h("span", { text: "point prompts" })]),
  ]);
  const side = h("div", { class: "cw-side" }, [list, input, controls, legend]);
  el.replaceChildren(banner.el, h("div", { class: "cw-body" }, [h("div", { class: "cw-view" }, [stage, busy]), side]));

  // Decoded arrays are cached per trait so redraws (threshold, colormap) never decode again.
  const decoded = {};
  const localErrors = {}; // one message per drawing step, so one success never hides another's failure
  let previewCutoff = null; // a fixed threshold being dragged, drawn before Python answers
  let previewOpacity = null; // an opacity being dragged, drawn before the model has it
  const dragging = new Set(); // sliders under the pointer: Python's echoes must not move them

  function decode(name) {
    if (!(name in decoded)) decoded[name] = decodeArray(model.get(name));
    return decoded[name];
  }

  const showError = banner.update;

  /** `draw` wrapped so a malformed trait becomes a message in the banner, never an exception. */
  function guarded(step, draw) {
    return () => {
      try {
        draw();
        if (localErrors[step]) {
          delete localErrors[step];
          showError();
        }
      } catch (err) {
        localErrors[step] = `display error (${step}): ${err.message}`;
        showError();
      }
    };
  }

  function labelsList() {
    const labels = model.get("labels");
    return Array.isArray(labels) ? labels : [];
  }

  function clearImage() {
    base.width = base.height = pointsLayer.width = pointsLayer.height = 1;
    stage.style.aspectRatio = "";
  }

  // A malformed image leaves an empty stage rather than the previous picture.
  const drawImage = guarded("image", () => {
    try {
      paintImage();
    } catch (err) {
      clearImage();
      throw err;
    }
  });

  function paintImage() {
    const image = decode("image");
    if (!image) {
      clearImage();
      return;
    }
    if (image.shape.length !== 3 || image.shape[2] !== 3) throw new Error(`image must be (H, W, 3), got [${image.shape}]`);
    const [height, width] = image.shape;
    paintArray(base, image);
    pointsLayer.width = width;
    pointsLayer.height = height;
    stage.style.aspectRatio = `${width} / ${height}`;
  }

  function selectedIndex() {
    const index = model.get("selected");
    return Number.isInteger(index) && index >= 0 && index < labelsList().length ? index : -1;
  }

  // Maps may be coarser than the image (Python sends them small); CSS stretches the overlay
  // canvas over the whole stage, so only the aspect has to agree.
  const drawOverlay = guarded("heatmap", () => {
    const context = overlay.getContext("2d");
    const currentMode = model.get("mode");
    const maps = decode(currentMode === "raw" ? "raw_maps" : "surgery_maps");
    if (maps && maps.shape.length !== 3) {
      context.clearRect(0, 0, overlay.width, overlay.height);
      throw new Error(`maps must be (labels, H, W), got [${maps.shape}]`);
    }
    const index = selectedIndex();
    if (!maps || index < 0 || index >= maps.shape[0]) {
      context.clearRect(0, 0, overlay.width, overlay.height);
      return;
    }
    const [, height, width] = maps.shape;
    overlay.width = width;
    overlay.height = height;
    const cutoffs = model.get("cutoffs") || {};
    const preview = model.get("threshold_method") === "fixed" ? previewCutoff : null;
    const fromPython = Number((cutoffs[currentMode] || [])[index]);
    const cutoff = preview ?? (Number.isFinite(fromPython) ? fromPython : 0);
    const slice = maps.data.subarray(index * width * height, (index + 1) * width * height);
    const pixels = overlayRGBA(slice, width, height, {
      cutoff,
      lut: colormapLUT(model.get("colormap")),
      opacity: previewOpacity ?? model.get("opacity"),
    });
    context.putImageData(new ImageData(pixels, width, height), 0, 0);
  });

  const drawPoints = guarded("points", () => {
    const context = pointsLayer.getContext("2d");
    context.clearRect(0, 0, pointsLayer.width, pointsLayer.height);
    if (!model.get("show_points")) return;
    const radius = Math.max(3, Math.round(Math.max(pointsLayer.width, pointsLayer.height) / 80));
    const points = model.get("points");
    for (const [x, y, positive] of Array.isArray(points) ? points : []) {
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      context.beginPath();
      context.arc(x, y, radius, 0, 2 * Math.PI);
      context.lineWidth = Math.max(1.5, radius / 3);
      if (positive) {
        context.fillStyle = "#2e7d32";
        context.strokeStyle = "#ffffff";
        context.fill();
        context.stroke();
      } else {
        context.strokeStyle = "#d32f2f";
        context.stroke();
        const d = radius * 0.6;
        context.beginPath();
        context.moveTo(x - d, y - d);
        context.lineTo(x + d, y + d);
        context.moveTo(x + d, y - d);
        context.lineTo(x - d, y + d);
        context.stroke();
      }
    }
  });

  const drawLegend = guarded("legend", () => {
    const lut = colormapLUT(model.get("colormap"));
    legendBar.getContext("2d").putImageData(new ImageData(legendRGBA(lut, 128, 10), 128, 10), 0, 0);
    const index = selectedIndex();
    const label = index >= 0 ? labelsList()[index] : "no label selected";
    legendCaption.textContent = `${MODE_NAMES[model.get("mode")] ?? model.get("mode")}: ${label}`;
    const scale = (model.get("map_scales") || {})[model.get("mode")];
    const [low, high] = legendEnds(scale, index, { floor: Boolean(scale && scale.floor) });
    legendLow.textContent = low;
    legendHigh.textContent = high;
    legendNote.textContent = !scale ? "" : scale.kind === "joint"
      ? "similarity to the label; one scale for all labels"
      : "similarity to the label; each label stretched on its own";
  });

  const drawLabels = guarded("labels", () => {
    const labels = labelsList();
    const probs = model.get("probs") || [];
    const index = selectedIndex();
    list.replaceChildren();
    list.removeAttribute("aria-activedescendant");
    if (!labels.length) {
      list.append(h("li", { class: "cw-empty", text: "no labels" }));
    }
    labels.forEach((label, i) => {
      const remove = h("button", { class: "cw-label-remove", type: "button", text: "×", title: "remove", "aria-label": `Remove label ${label}` });
      remove.addEventListener("click", (event) => {
        event.stopPropagation();
        const next = removeLabel(labelsList(), model.get("selected"), i);
        model.set("labels", next.labels);
        model.set("selected", next.selected);
        model.save_changes();
      });
      const prob = probs.length === labels.length ? `${(probs[i] * 100).toFixed(1)}%` : "";
      const item = h("li", {
        id: `${uid}-label-${i}`,
        class: i === index ? "cw-label cw-selected" : "cw-label",
        role: "option",
        "aria-selected": String(i === index),
      }, [
        h("span", { class: "cw-label-text", text: label }),
        h("span", { class: "cw-label-prob", text: prob, title: "zero-shot probability" }),
        remove,
      ]);
      item.addEventListener("click", () => setSelected(i));
      list.append(item);
      if (i === index) {
        // The list keeps the focus; the selected option is announced as its active descendant.
        list.setAttribute("aria-activedescendant", item.id);
        if (el.ownerDocument.activeElement === list) item.scrollIntoView({ block: "nearest" });
      }
    });
  });

  function setSelected(index) {
    model.set("selected", index);
    model.save_changes();
  }

  function syncControls() {
    mode.value = model.get("mode");
    if (!dragging.has(threshold)) {
      threshold.value = String(model.get("threshold"));
      thresholdValue.textContent = Number(model.get("threshold")).toFixed(2);
    }
    method.value = model.get("threshold_method");
    threshold.disabled = model.get("threshold_method") === "otsu";
    if (!dragging.has(opacity)) opacity.value = String(model.get("opacity"));
    colormap.value = model.get("colormap");
    showPoints.checked = model.get("show_points");
    stage.style.width = `${model.get("display_width")}px`;
    busy.hidden = !model.get("busy");
  }

  // -- edits from the browser -------------------------------------------------------------
  const saveSlider = debouncedSaver(model, SLIDER_DEBOUNCE_MS);
  const endDrag = (slider) => () => {
    dragging.delete(slider);
    saveSlider.flush();
  };
  for (const slider of [threshold, opacity]) {
    slider.addEventListener("pointerdown", () => dragging.add(slider));
    slider.addEventListener("pointerup", endDrag(slider));
    slider.addEventListener("change", endDrag(slider));
  }

  threshold.addEventListener("input", () => {
    const value = Number(threshold.value);
    thresholdValue.textContent = value.toFixed(2);
    if (model.get("threshold_method") === "fixed") {
      previewCutoff = value;
      drawOverlay();
    }
    saveSlider("threshold", value);
  });
  opacity.addEventListener("input", () => {
    previewOpacity = Number(opacity.value);
    drawOverlay();
    saveSlider("opacity", previewOpacity);
  });
  for (const [control, name] of [[mode, "mode"], [method, "threshold_method"], [colormap, "colormap"]]) {
    control.addEventListener("change", () => {
      model.set(name, control.value);
      model.save_changes();
    });
  }
  showPoints.addEventListener("change", () => {
    model.set("show_points", showPoints.checked);
    model.save_changes();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.isComposing) return;
    event.preventDefault();
    const { labels, index } = addLabel(labelsList(), input.value);
    input.value = "";
    if (labels !== labelsList()) model.set("labels", labels);
    if (index >= 0) model.set("selected", index);
    model.save_changes();
  });
  list.addEventListener("keydown", (event) => {
    const steps = { ArrowDown: 1, ArrowUp: -1, Home: -Infinity, End: Infinity };
    if (!(event.key in steps)) return;
    event.preventDefault();
    const count = labelsList().length;
    setSelected(moveSelection(model.get("selected"), count, Math.max(-count, Math.min(count, steps[event.key]))));
  });

  // -- changes from Python ----------------------------------------------------------------
  const handlers = {
    "change:image": () => { delete decoded.image; drawImage(); drawPoints(); },
    "change:surgery_maps": () => { delete decoded.surgery_maps; drawOverlay(); },
    "change:raw_maps": () => { delete decoded.raw_maps; drawOverlay(); },
    "change:cutoffs": () => { previewCutoff = null; drawOverlay(); },
    // A dragged fixed threshold is previewed until Python's cutoffs for it arrive.
    "change:threshold": syncControls,
    "change:labels change:probs": () => { drawLabels(); drawLegend(); },
    "change:selected": () => { drawLabels(); drawOverlay(); drawLegend(); },
    "change:mode": () => { syncControls(); drawOverlay(); drawLegend(); },
    "change:map_scales": () => drawLegend(),
    "change:colormap": () => { syncControls(); drawOverlay(); drawLegend(); },
    "change:opacity": () => { previewOpacity = null; syncControls(); drawOverlay(); },
    "change:threshold_method": () => { syncControls(); drawOverlay(); },
    "change:display_width change:busy": syncControls,
    "change:points change:show_points": () => { syncControls(); drawPoints(); },
    "change:error": showError,
  };
  const unsubscribe = subscribe(model, Object.entries(handlers));

  syncControls();
  showError();
  drawImage();
  drawOverlay();
  drawPoints();
  drawLabels();
  drawLegend();

  return () => {
    saveSlider.cancel();
    unsubscribe();
  };
}

export default { render };
