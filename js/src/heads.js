// HeadExplorer front end: a layer x head grid coloured by variance or by the accuracy drop of
// mean-ablation; a head's TextSpan texts with their shares of its variance; and where in the
// image the head writes the chosen text (red: towards it, blue: away). Hovering a cell previews
// that head; a click, or the arrow keys on the grid, select it. Python computes everything.
import "./heads.css";
import { decodeArray } from "./codecs.js";
import { h, scoreBars } from "./dom.js";
import { errorBanner, paintArray, subscribe } from "./kit.js";
import { cellColour, dropPoints, extent, formatValue, gridScale, inkOn, mapSlice, scaleBarRGBA, signedOverlayRGBA, stepCell } from "./heads_layout.js";
import { debounce } from "./render.js";

const SAVE_DEBOUNCE_MS = 120;
const TRACK_PX = 90;
const BAR_PX = [176, 10];
let viewCount = 0; // element ids stay unique when one page shows several views

function scaleLegend(className) {
  const bar = h("canvas", { class: "cw-scale-bar", width: BAR_PX[0], height: BAR_PX[1] });
  const ends = [h("span", { class: "cw-scale-low" }), h("span", { class: "cw-scale-mid" }), h("span", { class: "cw-scale-high" })];
  const caption = h("div", { class: "cw-scale-caption" });
  const el = h("div", { class: `cw-scale ${className}` }, [caption, bar, h("div", { class: "cw-scale-numbers" }, ends)]);
  const update = (kind, low, high, text) => {
    bar.getContext("2d").putImageData(new ImageData(scaleBarRGBA(kind, ...BAR_PX), ...BAR_PX), 0, 0);
    ends[0].textContent = formatValue(low, kind === "diverging");
    ends[1].textContent = kind === "diverging" ? "0" : "";
    ends[2].textContent = formatValue(high, kind === "diverging");
    caption.textContent = text;
  };
  return { el, update };
}

function render({ model, el }) {
  el.classList.add("cw-heads");
  const uid = `cw-heads-${++viewCount}`;
  const banner = errorBanner(model);
  const byButtons = [["variance", "variance"], ["ablation", "accuracy drop"]].map(([by, text]) =>
    h("button", { class: "cw-by", type: "button", text, "data-by": by, "aria-pressed": "false" }));
  const progress = h("progress", { class: "cw-progress", max: "1", value: "0" });
  const status = h("span", { class: "cw-status" });
  const loading = h("div", { class: "cw-loading", role: "status" }, [progress, status]);
  const grid = h("div", { class: "cw-grid", role: "grid", tabindex: "0", "aria-label": "attention heads: rows are layers, columns heads; arrow keys move" });
  const gridLegend = scaleLegend("cw-grid-legend");
  const title = h("h4", { class: "cw-head-title" });
  const stats = h("div", { class: "cw-head-stats" });
  const texts = h("ol", { class: "cw-texts", "aria-label": "texts that span the head's outputs" });
  const residual = h("div", { class: "cw-residual" });
  const picture = h("canvas", { class: "cw-picture", width: 1, height: 1 });
  const under = h("canvas", { class: "cw-map-base", width: 1, height: 1 });
  const overlay = h("canvas", { class: "cw-map", width: 1, height: 1 });
  const previous = h("button", { class: "cw-prev-image", type: "button", text: "◀", title: "previous image" });
  const next = h("button", { class: "cw-next-image", type: "button", text: "▶", title: "next image" });
  const imageLabel = h("span", { class: "cw-image-label" });
  const mapLegend = scaleLegend("cw-map-legend");
  const figure = (node, caption) => h("figure", { class: "cw-figure" }, [node, h("figcaption", { text: caption })]);
  const side = h("section", { class: "cw-side" }, [
    title, stats, texts, residual,
    h("div", { class: "cw-image-nav" }, [previous, imageLabel, next]),
    h("div", { class: "cw-maps" }, [figure(picture, "image"), figure(h("div", { class: "cw-map-stage" }, [under, overlay]), "head map")]),
    mapLegend.el,
  ]);
  el.replaceChildren(banner.el,
    h("div", { class: "cw-header" }, [h("span", { class: "cw-toggle-label", text: "colour by" }), h("div", { class: "cw-toggle", role: "group" }, byButtons), loading]),
    h("div", { class: "cw-body" }, [h("section", { class: "cw-grid-panel" }, [grid, gridLegend.el]), side]));

  const decoded = {};
  const decode = (name) => (name in decoded ? decoded[name] : (decoded[name] = decodeArray(model.get(name))));
  let preview = null; // [layer, head] under the pointer
  const saveLater = debounce(() => model.save_changes(), SAVE_DEBOUNCE_MS);
  const spanOf = (layer, head) => ((model.get("spans") || [])[layer] || [])[head] || null;
  const selected = () => [model.get("layer"), model.get("head")];
  // a preview only while the pointer is on another head than the selected one
  const previewing = () => Boolean(preview) && (preview[0] !== model.get("layer") || preview[1] !== model.get("head"));
  const shown = () => (previewing() ? preview : selected());
  const shownText = () => (previewing() ? 0 : model.get("text"));

  function select(layer, head) {
    if (layer === model.get("layer") && head === model.get("head")) return;
    model.set("layer", layer);
    model.set("head", head);
    model.set("text", 0);
    saveLater();
  }

  function drawGrid() {
    const [layers, heads] = [model.get("layer_count"), model.get("head_count")];
    const ablation = decode("ablation");
    const by = model.get("colour_by");
    const scale = gridScale(by, decode("variance"), ablation, model.get("baseline"));
    const [sl, sh] = selected();
    const cells = [h("div", { class: "cw-corner", text: "layer \\ head" })];
    for (let j = 0; j < heads; j++) cells.push(h("div", { class: "cw-col-label", text: String(j) }));
    for (let i = 0; i < layers; i++) {
      cells.push(h("div", { class: "cw-row-label", text: String(i) }));
      for (let j = 0; j < heads; j++) {
        const value = scale.values[i * heads + j];
        const rgb = Number.isFinite(value) ? cellColour(value, scale) : null;
        const what = by === "ablation" ? `accuracy drop ${formatValue(value, true)} points` : `variance ${formatValue(value)}`;
        const cell = h("div", {
          id: `${uid}-${i}-${j}`, class: `cw-cell${i === sl && j === sh ? " cw-selected" : ""}`, role: "gridcell",
          "aria-selected": String(i === sl && j === sh), "data-layer": String(i), "data-head": String(j),
          title: `layer ${i}, head ${j}: ${rgb ? what : "not computed yet"}`,
          text: rgb ? formatValue(value, by === "ablation") : "",
          style: rgb ? `background: rgb(${rgb}); color: ${inkOn(rgb)}` : "",
        });
        cell.addEventListener("mouseenter", () => { preview = [i, j]; drawPanel(); });
        cell.addEventListener("click", () => { preview = null; select(i, j); grid.focus(); });
        cells.push(cell);
      }
    }
    grid.style.gridTemplateColumns = `auto repeat(${heads}, var(--cw-cell-width))`;
    grid.replaceChildren(...cells);
    grid.setAttribute("aria-activedescendant", `${uid}-${sl}-${sh}`);
    const baseline = model.get("baseline");
    gridLegend.update(scale.kind, scale.low, scale.high, by === "ablation"
      ? `accuracy drop (points) when a head is mean-ablated; baseline ${(baseline * 100).toFixed(1)}%`
      : "variance of the head's output over the images");
    for (const button of byButtons) {
      button.setAttribute("aria-pressed", String(button.dataset.by === by));
      button.disabled = button.dataset.by === "ablation" && !ablation;
      button.title = button.disabled ? "give the widget classes and labels to mean-ablate heads" : "";
    }
  }

  function drawPanel() {
    const [layer, head] = shown();
    const chosen = shownText();
    const span = spanOf(layer, head);
    const variance = decode("variance");
    const ablation = decode("ablation");
    const heads = model.get("head_count");
    title.textContent = `layer ${layer}, head ${head}${previewing() ? " (preview: click to select)" : ""}`;
    const parts = variance ? [`variance ${formatValue(variance.data[layer * heads + head])}`] : [];
    if (ablation) {
      const accuracy = ablation.data[layer * heads + head];
      const drop = dropPoints(model.get("baseline"), accuracy);
      parts.push(`accuracy without it ${(accuracy * 100).toFixed(1)}% (${drop ? `${formatValue(-drop, true)} points` : "unchanged"})`);
    }
    stats.textContent = parts.join(" · ");
    const shares = span ? span.explained : [];
    const bars = scoreBars(shares, TRACK_PX);
    texts.replaceChildren(...(span ? span.texts : []).map((text, k) => {
      const row = h("button", { type: "button", class: `cw-text${k === chosen ? " cw-chosen" : ""}`, "aria-pressed": String(k === chosen), title: "map this text" }, [
        h("span", { class: "cw-text-name", text }), bars[k], h("span", { class: "cw-share", text: `${(shares[k] * 100).toFixed(1)}%` }),
      ]);
      row.addEventListener("click", () => {
        if (previewing()) select(...preview);
        model.set("text", k);
        saveLater();
      });
      return h("li", {}, [row]);
    }));
    residual.textContent = span ? `left unexplained by these texts: ${(span.residual * 100).toFixed(1)}%` : "";
    drawMap(layer, head, chosen, span);
  }

  function drawMap(layer, head, text, span) {
    const map = mapSlice(decode("maps"), layer, head, text);
    const context = overlay.getContext("2d");
    if (!map) {
      context.clearRect(0, 0, overlay.width, overlay.height);
      mapLegend.update("diverging", -1, 1, "no map yet");
      return;
    }
    const [height, width] = map.shape;
    [overlay.width, overlay.height] = [width, height];
    const top = extent(map.data);
    context.putImageData(new ImageData(signedOverlayRGBA(map.data, width, height, { top }), width, height), 0, 0);
    const name = span && span.texts[text] !== undefined ? `“${span.texts[text]}”` : "no text";
    mapLegend.update("diverging", -top, top, `what layer ${layer} head ${head} writes along ${name}, per patch (red: towards, blue: away)`);
  }

  function drawImage() {
    const image = decode("image");
    if (image) for (const canvas of [picture, under]) paintArray(canvas, image);
    const [index, count] = [model.get("image_index"), model.get("image_count")];
    imageLabel.textContent = index < 0 ? "your image" : `image ${index + 1} of ${count}`;
  }

  function drawLoading() {
    progress.value = model.get("progress");
    status.textContent = model.get("status");
    loading.hidden = !model.get("busy");
  }

  grid.addEventListener("mouseleave", () => { preview = null; drawPanel(); });
  grid.addEventListener("keydown", (event) => {
    const step = stepCell(selected(), event.key, model.get("layer_count"), model.get("head_count"));
    const digit = /^[1-9]$/.test(event.key) ? Number(event.key) - 1 : null;
    if (step) select(...step);
    else if (digit !== null && digit < (spanOf(...selected())?.texts.length ?? 0)) {
      model.set("text", digit);
      saveLater();
    } else return;
    event.preventDefault();
  });
  for (const button of byButtons) button.addEventListener("click", () => { model.set("colour_by", button.dataset.by); model.save_changes(); });
  const moveImage = (delta) => {
    const count = model.get("image_count");
    const index = model.get("image_index");
    model.set("image_index", index < 0 ? 0 : (((index + delta) % count) + count) % count);
    model.save_changes();
  };
  previous.addEventListener("click", () => moveImage(-1));
  next.addEventListener("click", () => moveImage(1));

  const forget = (...names) => { for (const name of names) delete decoded[name]; };
  const unsubscribe = subscribe(model, [
    ["change:variance change:ablation", () => { forget("variance", "ablation"); drawGrid(); drawPanel(); }],
    ["change:baseline change:colour_by change:layer_count change:head_count", () => { drawGrid(); drawPanel(); }],
    ["change:layer change:head", () => { drawGrid(); drawPanel(); }],
    ["change:spans change:text", drawPanel],
    ["change:maps", () => { forget("maps"); drawPanel(); }],
    ["change:image", () => { forget("image"); drawImage(); }],
    ["change:image_index change:image_count", drawImage],
    ["change:busy change:progress change:status", drawLoading],
    ["change:error", banner.update],
  ]);
  banner.update();
  drawLoading();
  drawImage();
  drawGrid();
  drawPanel();
  return () => {
    saveLater.flush();
    unsubscribe();
  };
}

export default { render };
