// NeuronExplorer's dataset examples: top or bottom examples as crops with a heat overlay, and
// the whole image of the one clicked, with the outline of the unit's strongest cells and the
// crop's box. Python computes the pixels and maps; this module only draws them.
import { decodeArray } from "./codecs.js";
import { colormapLUT } from "./colormap.js";
import { h } from "./dom.js";
import { outlineLevel, outlineSegments } from "./neuron_layout.js";
import { paintArray } from "./kit.js";
import { EXAMPLE_HEAT, overlayRGBA } from "./render.js";

const VIEWER_PX = 256;


function slice2d(array, index) {
  const [, rows, cols] = array.shape;
  return { values: array.data.subarray(index * rows * cols, (index + 1) * rows * cols), rows, cols };
}

/** Draw the whole image `index`, the outline of its strongest cells and the crop's box. */
function drawWholeImage(canvas, images, maps, box, index) {
  const picture = h("canvas");
  paintArray(picture, images, index);
  canvas.width = canvas.height = VIEWER_PX;
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = true;
  context.drawImage(picture, 0, 0, VIEWER_PX, VIEWER_PX);
  const [, height, width] = images.shape;
  context.lineJoin = "round";
  if (maps && index < maps.shape[0]) {
    const { values, rows, cols } = slice2d(maps, index);
    const segments = outlineSegments(values, rows, cols, outlineLevel(values));
    const sx = VIEWER_PX / cols;
    const sy = VIEWER_PX / rows;
    // a dark line under a bright one: the outline reads on light and dark images alike
    for (const [style, lineWidth] of [["rgba(0, 0, 0, 0.75)", 4], ["#35e0ff", 2]]) {
      context.strokeStyle = style;
      context.lineWidth = lineWidth;
      context.beginPath();
      for (const [x0, y0, x1, y1] of segments) {
        context.moveTo(x0 * sx, y0 * sy);
        context.lineTo(x1 * sx, y1 * sy);
      }
      context.stroke();
    }
  }
  if (Array.isArray(box) && box.length === 4) {
    const [left, top, right, bottom] = box.map(Number);
    const sx = VIEWER_PX / width;
    const sy = VIEWER_PX / height;
    context.setLineDash([5, 4]);
    context.lineWidth = 1.5;
    context.strokeStyle = "#ffffff";
    context.strokeRect(left * sx + 0.75, top * sy + 0.75, (right - left) * sx - 1.5, (bottom - top) * sy - 1.5);
    context.setLineDash([]);
  }
}

/** The examples panel: `{ element, draw, drawControls }`; each redraws from the model's state. */
export function examplesPanel(model) {
  const whichButton = (which, title) =>
    h("button", { class: "cw-which", type: "button", text: which, "data-which": which, title });
  const topButton = whichButton("top", "the images that excite the unit most");
  const bottomButton = whichButton("bottom", "the images that excite the unit least");
  const heatToggle = h("input", { type: "checkbox", class: "cw-heat-toggle" });
  const grid = h("div", { class: "cw-examples" });
  const viewerCanvas = h("canvas", { class: "cw-example-whole", width: VIEWER_PX, height: VIEWER_PX });
  const viewerCaption = h("figcaption", { class: "cw-example-whole-caption" });
  const closeViewer = h("button", { class: "cw-close", type: "button", text: "×", title: "close the whole image" });
  const viewer = h("figure", { class: "cw-example-viewer", hidden: true }, [
    h("div", { class: "cw-viewer-bar" }, [viewerCaption, closeViewer]),
    viewerCanvas,
    h("p", { class: "cw-viewer-key", text: "outline: the unit's strongest cells · dashed: the crop" }),
  ]);
  const element = h("div", { class: "cw-examples-panel" }, [
    h("div", { class: "cw-examples-controls" }, [
      h("span", { class: "cw-toggle", role: "group", "aria-label": "which examples" }, [topButton, bottomButton]),
      h("label", { class: "cw-control" }, [heatToggle, h("span", { text: "heat" })]),
    ]),
    viewer,
    grid,
  ]);
  let selected = null; // the example whose whole image is shown

  for (const button of [topButton, bottomButton]) {
    button.addEventListener("click", () => {
      if (model.get("example_set") === button.dataset.which) return;
      selected = null;
      model.set("example_set", button.dataset.which);
      model.save_changes();
    });
  }
  heatToggle.addEventListener("change", () => {
    model.set("heat_overlay", heatToggle.checked);
    model.save_changes();
  });
  closeViewer.addEventListener("click", () => select(null, true));
  element.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || selected === null) return;
    event.stopPropagation();
    select(null, true);
  });

  /**
   * Show example `index` whole (null: close). From the keyboard, focus follows: to the close
   * button when the viewer opens, back to the example when it closes.
   */
  function select(index, keyboard = false) {
    const previous = selected;
    selected = index;
    drawViewer();
    if (!keyboard) return;
    if (selected !== null) closeViewer.focus({ preventScroll: true });
    else if (previous !== null) grid.children[previous]?.focus({ preventScroll: true });
  }

  function drawControls() {
    const which = model.get("example_set");
    for (const button of [topButton, bottomButton]) button.setAttribute("aria-pressed", String(button.dataset.which === which));
    heatToggle.checked = model.get("heat_overlay");
    grid.classList.toggle("cw-heat-off", !model.get("heat_overlay"));
  }

  function drawViewer() {
    const images = decodeArray(model.get("example_images"));
    const count = images ? images.shape[0] : 0;
    if (selected === null || selected >= count) {
      selected = null;
      viewer.hidden = true;
    } else {
      const boxes = model.get("example_boxes") || [];
      drawWholeImage(viewerCanvas, images, decodeArray(model.get("example_image_maps")), boxes[selected], selected);
      const value = Number((model.get("example_values") || [])[selected]);
      const source = String((model.get("example_sources") || [])[selected] ?? "");
      viewerCaption.textContent = `${source}${Number.isFinite(value) ? ` · ${value.toFixed(2)}` : ""}`;
      viewer.hidden = false;
    }
    grid.querySelectorAll(".cw-example").forEach((figure, i) => figure.classList.toggle("cw-selected", i === selected));
  }

  function drawGrid() {
    const crops = decodeArray(model.get("examples"));
    const maps = decodeArray(model.get("example_maps"));
    const values = model.get("example_values") || [];
    const sources = model.get("example_sources") || [];
    grid.replaceChildren();
    if (!crops) {
      grid.append(h("p", { class: "cw-empty", text: "no dataset examples for this layer" }));
      return;
    }
    const lut = colormapLUT("inferno");
    const [, side] = crops.shape;
    grid.style.setProperty("--cw-example-px", `${side}px`);
    for (let i = 0; i < crops.shape[0]; i++) {
      const image = h("canvas", { class: "cw-example-image" });
      paintArray(image, crops, i);
      const heat = h("canvas", { class: "cw-example-heat" });
      if (maps && i < maps.shape[0]) {
        const { values: cells, rows, cols } = slice2d(maps, i);
        heat.width = cols;
        heat.height = rows;
        heat.getContext("2d").putImageData(new ImageData(overlayRGBA(cells, cols, rows, { lut, ...EXAMPLE_HEAT }), cols, rows), 0, 0);
      }
      const value = Number(values[i]);
      const caption = Number.isFinite(value) ? value.toFixed(2) : "";
      const figure = h(
        "figure",
        {
          class: "cw-example",
          title: `${sources[i] ?? ""}\nclick or Enter: the whole image`,
          tabindex: "0",
          role: "button",
          "aria-label": `example ${i + 1}${caption ? `, activation ${caption}` : ""}: show the whole image`,
        },
        [h("div", { class: "cw-example-stage" }, [image, heat]), h("figcaption", { text: caption })],
      );
      figure.addEventListener("click", () => select(selected === i ? null : i));
      figure.addEventListener("keydown", (event) => {
        if (event.key !== "Enter" && event.key !== " ") return;
        event.preventDefault();
        select(selected === i ? null : i, true);
      });
      grid.append(figure);
    }
  }

  function draw() {
    drawControls();
    drawGrid();
    drawViewer();
  }

  return { element, draw, drawControls };
}
