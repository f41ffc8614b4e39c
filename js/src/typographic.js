// TypographicLab front end: the image with the word written in (by Python, as the model sees it),
// dragged to a new place with a live preview, or with a patch pasted into a corner (patch mode),
// and the zero-shot probabilities before and after.
import "./typographic.css";
import { decodeArray } from "./codecs.js";
import { h } from "./dom.js";
import { errorBanner, paintArray, subscribe } from "./kit.js";
import { debouncedSaver } from "./sync.js";

const EDIT_DEBOUNCE_MS = 200;
const SIDE_PX = 384;
const THUMB_PX = 40;
const CORNERS = ["best", "top-left", "top-right", "bottom-left", "bottom-right"];

/** Fractions of the canvas under a pointer event, clamped to [0, 1]. */
function fractionAt(canvas, event) {
  const box = canvas.getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
}

function render({ model, el }) {
  el.classList.add("cw-typographic");
  const banner = errorBanner(model);
  const modeButtons = ["word", "patch"].map((mode) =>
    h("button", { type: "button", class: `cw-mode cw-mode-${mode}`, text: mode, "aria-pressed": "false" }));
  const textInput = h("input", { class: "cw-text", type: "text", "aria-label": "text written into the image" });
  const sizeInput = h("input", { class: "cw-size", type: "range", min: "0.05", max: "0.6", step: "0.01", "aria-label": "size" });
  const inkSelect = h("select", { class: "cw-ink", "aria-label": "ink" }, [
    h("option", { value: "white", text: "white ink" }),
    h("option", { value: "black", text: "black ink" }),
  ]);
  const classSelect = h("select", { class: "cw-patch-class", "aria-label": "the class whose patch is pasted" });
  const thumb = h("canvas", { class: "cw-patch-thumb", title: "the patch" });
  const cornerSelect = h("select", { class: "cw-corner", "aria-label": "corner" },
    CORNERS.map((c) => h("option", { value: c, text: c === "best" ? "best corner" : c })));
  const noiseBox = h("input", { class: "cw-patch-noise", type: "checkbox" });
  const cornerUsed = h("span", { class: "cw-corner-used" });
  const wordControls = h("span", { class: "cw-word-controls" }, [textInput, inkSelect]);
  const patchControls = h("span", { class: "cw-patch-controls" }, [
    h("label", { class: "cw-control" }, [h("span", { text: "patch of" }), classSelect]), thumb, cornerSelect,
    h("label", { class: "cw-control", title: "uniform noise of the same size: the control" }, [noiseBox, h("span", { text: "noise" })]),
    cornerUsed,
  ]);
  const canvas = h("canvas", { class: "cw-typo-canvas" });
  const busy = h("span", { class: "cw-busy-note", text: "computing…", hidden: true });
  const table = h("table", { class: "cw-probs" });
  const unitsHeading = h("h4");
  const units = h("ol", { class: "cw-units" });
  el.replaceChildren(
    banner.el,
    h("div", { class: "cw-header" }, [
      h("span", { class: "cw-modes", role: "group", "aria-label": "what goes into the image" }, modeButtons),
      wordControls, patchControls, h("label", { class: "cw-control" }, [h("span", { text: "size" }), sizeInput]), busy,
    ]),
    h("div", { class: "cw-body" }, [
      h("div", { class: "cw-stage" }, [canvas]),
      h("div", { class: "cw-side" }, [table, unitsHeading, units]),
    ]),
  );
  const patching = () => model.get("mode") === "patch";
  const sizeTrait = () => (patching() ? "patch_size" : "size");
  const save = debouncedSaver(model, EDIT_DEBOUNCE_MS);
  let dragging = null; // [x, y] fractions while a drag is under way
  let resizing = false; // the patch slider moved: preview the patch at its new size until Python answers

  function drawImage() {
    const attacked = decodeArray(model.get("attacked"));
    const clean = decodeArray(model.get("image"));
    const shown = dragging || resizing ? clean : attacked ?? clean;
    if (!shown) return;
    paintArray(canvas, shown);
    const scale = SIDE_PX / Math.max(shown.shape[0], shown.shape[1]);
    canvas.style.width = `${Math.round(shown.shape[1] * scale)}px`;
    if (resizing && patching() && !thumb.hidden && !model.get("patch_noise")) {
      // a preview of the patch at the new size in the corner shown; Python pastes the real one
      const side = Math.max(1, Math.round(Number(sizeInput.value) * Math.min(canvas.width, canvas.height)));
      const corner = model.get("used_corner") || "top-left";
      const x = corner.endsWith("right") ? canvas.width - side : 0;
      const y = corner.startsWith("bottom") ? canvas.height - side : 0;
      canvas.getContext("2d").drawImage(thumb, x, y, side, side);
    }
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
      h("tr", {}, [h("th", { text: "class" }), h("th", { text: "clean" }), h("th", { text: `with the ${model.get("mode")}` })]),
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
    unitsHeading.hidden = !rows.length;
    unitsHeading.textContent = `units the ${model.get("mode")} moves most`;
  }

  function drawPatch() {
    const patch = decodeArray(model.get("patch"));
    thumb.hidden = !patch;
    if (!patch) return;
    paintArray(thumb, patch);
    thumb.style.width = `${THUMB_PX}px`;
  }

  function drawControls() {
    const mode = model.get("mode");
    for (const button of modeButtons) button.setAttribute("aria-pressed", String(button.textContent === mode));
    wordControls.hidden = mode !== "word";
    patchControls.hidden = mode !== "patch";
    canvas.title = mode === "word" ? "drag to move the word" : "";
    canvas.classList.toggle("cw-draggable", mode === "word");
    if (el.ownerDocument.activeElement !== textInput) textInput.value = model.get("text");
    sizeInput.value = String(model.get(sizeTrait()));
    inkSelect.value = model.get("ink");
    const classes = model.get("patch_classes") || [];
    const [, patchButton] = modeButtons;
    patchButton.disabled = !classes.length && mode !== "patch";
    patchButton.title = patchButton.disabled ? "no patches: make the lab with patches= (images or an atlas)" : "";
    if (classSelect.options.length !== classes.length || classes.some((c, i) => classSelect.options[i].value !== c)) {
      classSelect.replaceChildren(...classes.map((c) => h("option", { value: c, text: c })));
    }
    classSelect.value = model.get("patch_class");
    cornerSelect.value = model.get("corner");
    noiseBox.checked = model.get("patch_noise");
    const used = model.get("used_corner");
    cornerUsed.textContent = used ? `in the ${used} corner${model.get("corner") === "best" ? " (best)" : ""}` : "";
  }

  for (const button of modeButtons) {
    button.addEventListener("click", () => {
      save("mode", button.textContent);
      save.flush();
    });
  }
  textInput.addEventListener("input", () => save("text", textInput.value));
  sizeInput.addEventListener("input", () => {
    save(sizeTrait(), Number(sizeInput.value));
    if (patching()) {
      resizing = true;
      drawImage();
    }
  });
  inkSelect.addEventListener("change", () => save("ink", inkSelect.value));
  classSelect.addEventListener("change", () => save("patch_class", classSelect.value));
  cornerSelect.addEventListener("change", () => save("corner", cornerSelect.value));
  noiseBox.addEventListener("change", () => save("patch_noise", noiseBox.checked));
  canvas.addEventListener("pointerdown", (event) => {
    if (patching()) return; // the corner places the patch
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

  const settled = () => {
    resizing = false; // Python has answered (or failed): show what it computed
    drawImage();
  };
  const handlers = [
    ["change:image", drawImage],
    ["change:attacked change:error change:busy", settled],
    ["change:classes change:clean_probs change:attacked_probs change:mode", drawProbs],
    ["change:top_units change:mode", drawUnits],
    ["change:patch", drawPatch],
    ["change:text change:size change:ink change:mode change:patch_classes change:patch_class change:patch_size "
      + "change:patch_noise change:corner change:used_corner", drawControls],
    ["change:busy", () => { busy.hidden = !model.get("busy"); }],
    ["change:error", banner.update],
  ];
  const unsubscribe = subscribe(model, handlers);
  drawControls();
  drawPatch();
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
