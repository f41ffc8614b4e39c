// TypographicLab front end: the image with the word written in (by Python, as the model sees it),
// dragged to a new place with a live preview, and the zero-shot probabilities before and after.
import "./typographic.css";
import { decodeArray } from "./codecs.js";
import { h } from "./dom.js";
import { errorBanner, paintArray, subscribe } from "./kit.js";
import { debouncedSaver } from "./sync.js";

const EDIT_DEBOUNCE_MS = 200;
const SIDE_PX = 384;

/** Fractions of the canvas under a pointer event, clamped to [0, 1]. */
function fractionAt(canvas, event) {
  const box = canvas.getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
}

function render({ model, el }) {
  el.classList.add("cw-typographic");
  const banner = errorBanner(model);
  const textInput = h("input", { class: "cw-text", type: "text", "aria-label": "text written into the image" });
  const sizeInput = h("input", { class: "cw-size", type: "range", min: "0.05", max: "0.6", step: "0.01", "aria-label": "text size" });
  const inkSelect = h("select", { class: "cw-ink", "aria-label": "ink" }, [
    h("option", { value: "white", text: "white ink" }),
    h("option", { value: "black", text: "black ink" }),
  ]);
  const canvas = h("canvas", { class: "cw-typo-canvas", title: "drag to move the word" });
  const busy = h("span", { class: "cw-busy-note", text: "computing…", hidden: true });
  const table = h("table", { class: "cw-probs" });
  const units = h("ol", { class: "cw-units" });
  el.replaceChildren(
    banner.el,
    h("div", { class: "cw-header" }, [textInput, h("label", { class: "cw-control" }, [h("span", { text: "size" }), sizeInput]), inkSelect, busy]),
    h("div", { class: "cw-body" }, [
      h("div", { class: "cw-stage" }, [canvas]),
      h("div", { class: "cw-side" }, [table, h("h4", { text: "units the word moves most" }), units]),
    ]),
  );
  const save = debouncedSaver(model, EDIT_DEBOUNCE_MS);
  let dragging = null; // [x, y] fractions while a drag is under way

  function drawImage() {
    const attacked = decodeArray(model.get("attacked"));
    const clean = decodeArray(model.get("image"));
    const shown = dragging ? clean : attacked ?? clean;
    if (!shown) return;
    paintArray(canvas, shown);
    const scale = SIDE_PX / Math.max(shown.shape[0], shown.shape[1]);
    canvas.style.width = `${Math.round(shown.shape[1] * scale)}px`;
    if (dragging && textInput.value) {
      // a preview of the word while dragging; Python writes the real one on release
      const context = canvas.getContext("2d");
      const white = inkSelect.value === "white";
      context.font = `${Math.max(6, Math.round(Number(sizeInput.value) * canvas.height))}px sans-serif`;
      context.textAlign = "center";
      context.textBaseline = "middle";
      context.lineWidth = Math.max(1, Math.round((Number(sizeInput.value) * canvas.height) / 6));
      context.strokeStyle = white ? "#000" : "#fff";
      context.fillStyle = white ? "#fff" : "#000";
      const [x, y] = [dragging[0] * canvas.width, dragging[1] * canvas.height];
      context.strokeText(textInput.value, x, y);
      context.fillText(textInput.value, x, y);
    }
  }

  function drawProbs() {
    const classes = model.get("classes") || [];
    const clean = model.get("clean_probs") || [];
    const attacked = model.get("attacked_probs") || [];
    const bar = (p, kind) => h("span", { class: `cw-prob-bar cw-${kind}`, style: `width: ${Math.round(Number(p) * 100)}px` });
    const best = (probs) => probs.indexOf(Math.max(...probs));
    table.replaceChildren(
      h("tr", {}, [h("th", { text: "class" }), h("th", { text: "clean" }), h("th", { text: "with the word" })]),
      ...classes.map((name, i) =>
        h("tr", { class: `cw-class-row${best(attacked) === i ? " cw-top" : ""}` }, [
          h("td", { class: "cw-class-name", text: String(name) }),
          h("td", {}, [bar(clean[i] ?? 0, "clean"), h("span", { class: "cw-prob", text: Number(clean[i] ?? 0).toFixed(3) })]),
          h("td", {}, [bar(attacked[i] ?? 0, "attacked"), h("span", { class: "cw-prob", text: Number(attacked[i] ?? 0).toFixed(3) })]),
        ]),
      ),
    );
  }

  function drawUnits() {
    const rows = model.get("top_units") || [];
    units.replaceChildren(...rows.map(([unit, before, after]) =>
      h("li", { class: "cw-unit-row", text: `unit ${unit}: ${Number(before).toFixed(2)} → ${Number(after).toFixed(2)}` })));
    units.hidden = !rows.length;
    units.previousSibling.hidden = !rows.length;
  }

  function drawControls() {
    if (el.ownerDocument.activeElement !== textInput) textInput.value = model.get("text");
    sizeInput.value = String(model.get("size"));
    inkSelect.value = model.get("ink");
  }

  textInput.addEventListener("input", () => save("text", textInput.value));
  sizeInput.addEventListener("input", () => save("size", Number(sizeInput.value)));
  inkSelect.addEventListener("change", () => save("ink", inkSelect.value));
  canvas.addEventListener("pointerdown", (event) => {
    dragging = fractionAt(canvas, event);
    canvas.setPointerCapture?.(event.pointerId);
    drawImage();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!dragging) return;
    dragging = fractionAt(canvas, event);
    drawImage();
  });
  canvas.addEventListener("pointerup", () => {
    if (!dragging) return;
    const position = dragging;
    dragging = null;
    save("position", position);
    save.flush();
  });

  const handlers = [
    ["change:image change:attacked", drawImage],
    ["change:classes change:clean_probs change:attacked_probs", drawProbs],
    ["change:top_units", drawUnits],
    ["change:text change:size change:ink", drawControls],
    ["change:busy", () => { busy.hidden = !model.get("busy"); }],
    ["change:error", banner.update],
  ];
  const unsubscribe = subscribe(model, handlers);
  drawControls();
  drawImage();
  drawProbs();
  drawUnits();
  banner.update();
  return () => {
    save.cancel();
    unsubscribe();
  };
}

export default { render };
