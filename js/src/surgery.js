// SurgeryWidget front end: an image with a heatmap per label over it, by one method or by two side
// by side, the label list and controls. Python computes everything; this module draws the synced
// state and sends edits back.
import "./surgery.css";
import { decodeArray } from "./codecs.js";
import { h } from "./dom.js";
import { COLORMAPS, colormapLUT } from "./colormap.js";
import { addLabel, moveSelection, removeLabel } from "./labels.js";
import { errorBanner, paintArray, subscribe } from "./kit.js";
import { legendRGBA, overlayRGBA } from "./render.js";
import { legendText, mapSource, methodInfo, panes } from "./surgery_layout.js";
import { debouncedSaver } from "./sync.js";

const SLIDER_DEBOUNCE_MS = 150;
const LEGEND_WIDTH = 128;
const LEGEND_HEIGHT = 10;
let viewCount = 0; // element ids stay unique when one page shows several views

function select(className, label, options) {
  const control = h("select", { class: className, "aria-label": label });
  for (const [value, text] of options) control.append(h("option", { value, text }));
  return control;
}

function labelled(text, control) {
  return h("label", { class: "cw-control" }, [h("span", { class: "cw-control-name", text }), control]);
}

/** One image with its heatmap (and, for the shown method, point prompts) and its legend. */
function makePane(role) {
  const base = h("canvas", { class: "cw-base", width: 1, height: 1 });
  const overlay = h("canvas", { class: "cw-overlay", width: 1, height: 1 });
  const points = role === "method" ? h("canvas", { class: "cw-points", width: 1, height: 1 }) : null;
  const stage = h("div", { class: "cw-stage" }, points ? [base, overlay, points] : [base, overlay]);
  const bar = h("canvas", { class: "cw-legend-bar", width: LEGEND_WIDTH, height: LEGEND_HEIGHT });
  const caption = h("span", { class: "cw-legend-caption" });
  const low = h("span", { class: "cw-legend-low", text: "low" });
  const high = h("span", { class: "cw-legend-high", text: "high" });
  const note = h("span", { class: "cw-legend-note" });
  const legend = h("div", { class: "cw-legend" }, [caption, h("div", { class: "cw-legend-scale" }, [low, bar, high]), note]);
  const el = h("figure", { class: `cw-pane cw-pane-${role}`, "data-role": role }, [stage, legend]);
  return { role, el, stage, base, overlay, points, bar, caption, low, high, note };
}

function render({ model, el }) {
  el.classList.add("cw-surgery");
  const uid = `cw-surgery-${++viewCount}`;
  const banner = errorBanner(model, () => Object.values(localErrors));
  const busy = h("div", { class: "cw-busy", text: "computing…", hidden: true });

  const primary = makePane("method");
  const second = makePane("compare");
  const paneByRole = { method: primary, compare: second };
  const pointsLayer = primary.points;

  const list = h("ul", { class: "cw-labels", role: "listbox", tabindex: "0", "aria-label": "labels" });
  const input = h("input", { class: "cw-label-input", type: "text", placeholder: "add a label, press Enter" });

  const methodMenu = h("select", { class: "cw-method", "aria-label": "map method" });
  const compareMenu = h("select", { class: "cw-compare", "aria-label": "compared method" });
  const sideBySide = h("input", { class: "cw-side-by-side", type: "checkbox" });
  const switchButton = h("button", { class: "cw-switch", type: "button" });
  const threshold = h("input", { class: "cw-threshold", type: "range", min: "0", max: "1", step: "0.01" });
  const thresholdValue = h("output", { class: "cw-threshold-value" });
  const thresholdMethod = select("cw-threshold-method", "threshold rule", [["fixed", "fixed"], ["quantile", "quantile"], ["otsu", "Otsu"]]);
  const opacity = h("input", { class: "cw-opacity", type: "range", min: "0", max: "1", step: "0.01" });
  const colormap = select("cw-colormap", "colormap", COLORMAPS.map((name) => [name, name]));
  const showPoints = h("input", { class: "cw-show-points", type: "checkbox" });

  const controls = h("div", { class: "cw-controls" }, [
    labelled("map", methodMenu),
    labelled("compare", compareMenu),
    h("div", { class: "cw-compare-row" }, [
      h("label", { class: "cw-control cw-check" }, [sideBySide, h("span", { text: "side by side" })]),
      switchButton,
    ]),
    labelled("threshold", h("span", { class: "cw-range" }, [threshold, thresholdValue])),
    labelled("rule", thresholdMethod),
    labelled("opacity", opacity),
    labelled("colormap", colormap),
    h("label", { class: "cw-control cw-check" }, [showPoints, h("span", { text: "point prompts" })]),
  ]);
  const side = h("div", { class: "cw-side" }, [list, input, controls]);
  const view = h("div", { class: "cw-view" }, [h("div", { class: "cw-panes" }, [primary.el, second.el]), busy]);
  el.replaceChildren(banner.el, h("div", { class: "cw-body" }, [view, side]));

  // Decoded arrays are cached per trait so redraws (threshold, colormap) never decode again.
  const decoded = {};
  // The method each map array was computed for: a switch in the page finds each method's maps
  // where they are before Python sends them swapped.
  const owners = { maps: model.get("method"), compare_maps: model.get("compare") };
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

  function methodsList() {
    const methods = model.get("methods");
    return Array.isArray(methods) ? methods : [];
  }

  function shownPanes() {
    return panes({ method: model.get("method"), compare: model.get("compare"), sideBySide: model.get("side_by_side") })
      .map((pane) => ({ ...pane, ...paneByRole[pane.role], name: pane.name }));
  }

  function clearImage() {
    for (const pane of [primary, second]) {
      pane.base.width = pane.base.height = 1;
      pane.stage.style.aspectRatio = "";
    }
    pointsLayer.width = pointsLayer.height = 1;
  }

  // A malformed image leaves empty stages rather than the previous picture.
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
    for (const pane of [primary, second]) {
      paintArray(pane.base, image);
      pane.stage.style.aspectRatio = `${width} / ${height}`;
    }
    pointsLayer.width = width;
    pointsLayer.height = height;
  }

  function selectedIndex() {
    const index = model.get("selected");
    return Number.isInteger(index) && index >= 0 && index < labelsList().length ? index : -1;
  }

  /** The decoded maps of method `name`, or null while none are there for it. */
  function mapsOf(name) {
    const source = mapSource(name, owners);
    const maps = source ? decode(source) : null;
    if (maps && maps.shape.length !== 3) throw new Error(`maps must be (labels, H, W), got [${maps.shape}]`);
    return maps;
  }

  // Maps may be coarser than the image (Python sends them small); CSS stretches the overlay
  // canvas over the whole stage, so only the aspect has to agree.
  const drawOverlay = guarded("heatmap", () => {
    const index = selectedIndex();
    const cutoffs = model.get("cutoffs") || {};
    const preview = model.get("threshold_method") === "fixed" ? previewCutoff : null;
    const lut = colormapLUT(model.get("colormap"));
    for (const pane of shownPanes()) {
      const context = pane.overlay.getContext("2d");
      let maps = null;
      try {
        maps = mapsOf(pane.name);
      } catch (err) {
        context.clearRect(0, 0, pane.overlay.width, pane.overlay.height);
        throw err;
      }
      if (!maps || index < 0 || index >= maps.shape[0]) {
        context.clearRect(0, 0, pane.overlay.width, pane.overlay.height);
        continue;
      }
      const [, height, width] = maps.shape;
      pane.overlay.width = width;
      pane.overlay.height = height;
      const fromPython = Number((cutoffs[pane.name] || [])[index]);
      const cutoff = preview ?? (Number.isFinite(fromPython) ? fromPython : 0);
      const slice = maps.data.subarray(index * width * height, (index + 1) * width * height);
      const pixels = overlayRGBA(slice, width, height, { cutoff, lut, opacity: previewOpacity ?? model.get("opacity") });
      context.putImageData(new ImageData(pixels, width, height), 0, 0);
    }
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
    const bar = new ImageData(legendRGBA(colormapLUT(model.get("colormap")), LEGEND_WIDTH, LEGEND_HEIGHT), LEGEND_WIDTH, LEGEND_HEIGHT);
    const index = selectedIndex();
    const label = index >= 0 ? labelsList()[index] : null;
    const scales = model.get("map_scales") || {};
    for (const pane of shownPanes()) {
      pane.bar.getContext("2d").putImageData(bar, 0, 0);
      const text = legendText(methodInfo(methodsList(), pane.name), scales[pane.name], label, index);
      pane.caption.textContent = text.caption;
      pane.caption.title = text.caption;
      pane.low.textContent = text.low;
      pane.high.textContent = text.high;
      pane.note.textContent = text.note;
    }
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

  // The menus list the methods that apply to the session's image tower, by title.
  const drawMenus = guarded("methods", () => {
    const options = methodsList().map((m) => [m.name, m.title ?? m.name]);
    methodMenu.replaceChildren(...options.map(([value, text]) => h("option", { value, text })));
    compareMenu.replaceChildren(...[["", "none"], ...options].map(([value, text]) => h("option", { value, text })));
    syncControls();
  });

  function syncControls() {
    const method = model.get("method");
    const compare = model.get("compare");
    methodMenu.value = method;
    compareMenu.value = compare;
    sideBySide.checked = model.get("side_by_side");
    sideBySide.disabled = !compare;
    const other = methodInfo(methodsList(), compare).title;
    switchButton.textContent = `⇄ show ${other}`;
    switchButton.title = `show ${other}, with ${methodInfo(methodsList(), method).title} as the compared method`;
    switchButton.hidden = !compare || model.get("side_by_side");
    second.el.hidden = !(compare && model.get("side_by_side"));
    el.classList.toggle("cw-two-panes", !second.el.hidden);
    if (!dragging.has(threshold)) {
      threshold.value = String(model.get("threshold"));
      thresholdValue.textContent = Number(model.get("threshold")).toFixed(2);
    }
    thresholdMethod.value = model.get("threshold_method");
    threshold.disabled = model.get("threshold_method") === "otsu";
    if (!dragging.has(opacity)) opacity.value = String(model.get("opacity"));
    colormap.value = model.get("colormap");
    showPoints.checked = model.get("show_points");
    for (const pane of [primary, second]) pane.el.style.width = `${model.get("display_width")}px`;
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
  const menus = [[methodMenu, "method"], [compareMenu, "compare"], [thresholdMethod, "threshold_method"], [colormap, "colormap"]];
  for (const [control, name] of menus) {
    control.addEventListener("change", () => {
      model.set(name, control.value);
      model.save_changes();
    });
  }
  sideBySide.addEventListener("change", () => {
    model.set("side_by_side", sideBySide.checked);
    model.save_changes();
  });
  // The switch swaps the two methods in one change: both maps are there, so it draws at once.
  switchButton.addEventListener("click", () => {
    const method = model.get("method");
    const compare = model.get("compare");
    if (!compare) return;
    model.set("method", compare);
    model.set("compare", method);
    model.save_changes();
  });
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

  const redraw = () => { syncControls(); drawOverlay(); drawLegend(); };

  // -- changes from Python ----------------------------------------------------------------
  // Python sets `method` and `compare` before it sends the maps computed for them.
  const handlers = {
    "change:image": () => { delete decoded.image; drawImage(); drawPoints(); },
    "change:maps": () => { delete decoded.maps; owners.maps = model.get("method"); drawOverlay(); },
    "change:compare_maps": () => { delete decoded.compare_maps; owners.compare_maps = model.get("compare"); drawOverlay(); },
    "change:cutoffs": () => { previewCutoff = null; drawOverlay(); },
    // A dragged fixed threshold is previewed until Python's cutoffs for it arrive.
    "change:threshold": syncControls,
    "change:labels change:probs": () => { drawLabels(); drawLegend(); },
    "change:selected": () => { drawLabels(); drawOverlay(); drawLegend(); },
    "change:methods": () => { drawMenus(); drawLegend(); },
    "change:method change:compare change:side_by_side": redraw,
    "change:map_scales": () => drawLegend(),
    "change:colormap": redraw,
    "change:opacity": () => { previewOpacity = null; syncControls(); drawOverlay(); },
    "change:threshold_method": () => { syncControls(); drawOverlay(); },
    "change:display_width change:busy": syncControls,
    "change:points change:show_points": () => { syncControls(); drawPoints(); },
    "change:error": showError,
  };
  const unsubscribe = subscribe(model, Object.entries(handlers));

  drawMenus();
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
