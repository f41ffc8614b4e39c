// AtlasWidget front end: a zoomable, pannable canvas of atlas tiles. Tiles are asked for only
// when in view, arrive as binary RGBA buffers, and are kept per (filter version, level, tile);
// while a finer level loads, the coarser ones already here stay underneath.
import "./atlas.css";
import {
  cellAt, centerOnMinimap, clampView, levelFor, minimapRect, panBy, sameView, unitToScreen, visibleTiles, zoomAt,
} from "./atlas_view.js";
import { decodeArray } from "./codecs.js";
import { h, scoreBars } from "./dom.js";
import { errorBanner, paintArray, subscribe } from "./kit.js";
import { debouncedSaver } from "./sync.js";

const SIDE = 512; // CSS px of the atlas view
const MINIMAP_SIDE = 128; // CSS px of the overview shown while zoomed in
const WHOLE = { x: 0.5, y: 0.5, zoom: 1 };
const SAVE_DEBOUNCE_MS = 150;
const HOVER_DEBOUNCE_MS = 60;
const RETRY_AFTER_MS = 2000; // a tile that failed is asked for again on a later view change, not before
const MIN_CELL_PX = 40;
const DRAG_SLOP_PX = 3;

function render({ model, el }) {
  el.classList.add("cw-atlas");
  el.tabIndex = 0; // + / - and the arrow keys work when the widget has the focus
  const banner = errorBanner(model);
  const filterInput = h("input", { class: "cw-filter", type: "search", placeholder: "class filter", list: "" });
  const classList = h("datalist", { id: `cw-atlas-classes-${Math.random().toString(36).slice(2)}` });
  filterInput.setAttribute("list", classList.id);
  const zoomIn = h("button", { class: "cw-zoom-in", type: "button", text: "+", title: "zoom in (+)" });
  const zoomOut = h("button", { class: "cw-zoom-out", type: "button", text: "−", title: "zoom out (-)" });
  const reset = h("button", { class: "cw-reset", type: "button", text: "reset", title: "whole atlas (0)" });
  const levelLabel = h("span", { class: "cw-level" });
  const canvas = h("canvas", { class: "cw-atlas-canvas" });
  // the whole atlas at its coarsest grid, with a frame where the view is; press or drag to move there
  const minimap = h("canvas", { class: "cw-minimap", title: "overview: press or drag to move the view" });
  const card = h("aside", { class: "cw-cell-card" });
  el.replaceChildren(
    banner.el,
    h("div", { class: "cw-header" }, [filterInput, classList, zoomIn, zoomOut, reset, levelLabel]),
    h("div", { class: "cw-body" }, [h("div", { class: "cw-stage" }, [canvas, minimap]), card]),
  );

  const ratio = Math.max(1, Math.round(globalThis.devicePixelRatio || 1));
  canvas.width = canvas.height = SIDE * ratio;
  canvas.style.width = canvas.style.height = `${SIDE}px`;
  const context = canvas.getContext("2d");
  minimap.width = minimap.height = MINIMAP_SIDE * ratio;
  minimap.style.width = minimap.style.height = `${MINIMAP_SIDE}px`;
  const minimapContext = minimap.getContext("2d");

  const save = debouncedSaver(model, SAVE_DEBOUNCE_MS);
  const tiles = new Map(); // "version:level:row:col" -> canvas
  const pending = new Set();
  const failedAt = new Map(); // tile key -> time its request failed
  let requestId = 0;
  const cells = new Map(); // "level:row:col" -> {info, patches}
  let hovered = null;
  let hoverTimer = null;
  let view = clampView(model.get("view"), maxZoom());

  function levels() {
    return [...(model.get("levels") || [])].sort((a, b) => a - b);
  }

  function maxZoom() {
    const sizes = levels();
    return sizes.length ? (4 * sizes[sizes.length - 1]) / sizes[0] : 1;
  }

  function currentLevel() {
    const sizes = levels();
    return sizes.length ? levelFor(view.zoom, sizes, SIDE, MIN_CELL_PX) : 0;
  }

  function tileKey(level, row, col) {
    return `${model.get("tile_version")}:${level}:${row}:${col}`;
  }

  function request(level, inView = view) {
    const tileCells = model.get("tile_cells");
    const missing = visibleTiles(inView, level, tileCells).filter(([row, col]) => {
      const key = tileKey(level, row, col);
      const recentlyFailed = performance.now() - (failedAt.get(key) ?? -Infinity) < RETRY_AFTER_MS;
      return !tiles.has(key) && !pending.has(key) && !recentlyFailed;
    });
    if (!missing.length) return;
    for (const [row, col] of missing) pending.add(tileKey(level, row, col));
    model.send({ type: "tiles", id: ++requestId, level, tiles: missing, version: model.get("tile_version") });
  }

  function drawTile(level, row, col, tile, target = context, inView = view, side = SIDE) {
    const tileCells = model.get("tile_cells");
    const iconPx = model.get("icon_px");
    const cellsHigh = tile.height / iconPx;
    const cellsWide = tile.width / iconPx;
    const [x0, y0] = unitToScreen(inView, side, (col * tileCells) / level, (row * tileCells) / level);
    const [x1, y1] = unitToScreen(inView, side, (col * tileCells + cellsWide) / level, (row * tileCells + cellsHigh) / level);
    target.drawImage(tile, x0 * ratio, y0 * ratio, (x1 - x0) * ratio, (y1 - y0) * ratio);
  }

  function drawMinimap(accent) {
    const coarsest = levels()[0];
    minimap.hidden = !coarsest || view.zoom <= 1.001; // at zoom 1 the view is the overview
    if (minimap.hidden) return;
    minimapContext.clearRect(0, 0, minimap.width, minimap.height);
    for (const [row, col] of visibleTiles(WHOLE, coarsest, model.get("tile_cells"))) {
      const tile = tiles.get(tileKey(coarsest, row, col));
      if (tile) drawTile(coarsest, row, col, tile, minimapContext, WHOLE, MINIMAP_SIDE);
    }
    const [x, y, w, h] = minimapRect(view, MINIMAP_SIDE);
    const full = MINIMAP_SIDE * ratio;
    minimapContext.fillStyle = "rgba(0, 0, 0, 0.3)"; // dim what is out of view
    minimapContext.fillRect(0, 0, full, y * ratio);
    minimapContext.fillRect(0, (y + h) * ratio, full, full - (y + h) * ratio);
    minimapContext.fillRect(0, y * ratio, x * ratio, h * ratio);
    minimapContext.fillRect((x + w) * ratio, y * ratio, full - (x + w) * ratio, h * ratio);
    minimapContext.strokeStyle = accent;
    minimapContext.lineWidth = 2 * ratio;
    minimapContext.strokeRect(x * ratio, y * ratio, Math.max(2, w) * ratio, Math.max(2, h) * ratio);
    minimap.dataset.frame = [x, y, w, h].map((v) => v.toFixed(1)).join(",");
    request(coarsest, WHOLE);
  }

  function outlineCell(cell, style, width) {
    if (!cell) return;
    const [x0, y0] = unitToScreen(view, SIDE, cell.col / cell.level, cell.row / cell.level);
    const [x1, y1] = unitToScreen(view, SIDE, (cell.col + 1) / cell.level, (cell.row + 1) / cell.level);
    context.strokeStyle = style;
    context.lineWidth = width * ratio;
    context.strokeRect(x0 * ratio, y0 * ratio, (x1 - x0) * ratio, (y1 - y0) * ratio);
  }

  function draw() {
    const level = currentLevel();
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.imageSmoothingEnabled = true;
    // coarser levels first: what is already here fills in while the finer tiles arrive
    for (const size of levels().filter((s) => s <= level)) {
      for (const [row, col] of visibleTiles(view, size, model.get("tile_cells"))) {
        const tile = tiles.get(tileKey(size, row, col));
        if (tile) drawTile(size, row, col, tile);
      }
    }
    const accent = getComputedStyle(el).getPropertyValue("--cw-accent").trim() || "#1976d2";
    const chosen = model.get("selected") || [];
    if (chosen.length === 3) outlineCell({ level: chosen[0], row: chosen[1], col: chosen[2] }, accent, 3);
    if (hovered) outlineCell(hovered, "rgba(255, 255, 255, 0.9)", 1.5);
    drawMinimap(accent);
    levelLabel.textContent = level ? `grid ${level} × ${level} · zoom ${view.zoom.toFixed(2)}×` : "";
    el.dataset.level = String(level);
    el.dataset.view = `${view.x.toFixed(4)},${view.y.toFixed(4)},${view.zoom.toFixed(3)}`;
    const visible = visibleTiles(view, level, model.get("tile_cells"));
    canvas.dataset.tiles = String(visible.length);
    canvas.dataset.loaded = String(visible.filter(([row, col]) => tiles.has(tileKey(level, row, col))).length);
    request(level);
  }

  function setView(next) {
    view = clampView(next, maxZoom());
    draw();
    save("view", { ...view });
    save("level", currentLevel());
  }

  function showCard() {
    const entry = hovered && cells.get(`${hovered.level}:${hovered.row}:${hovered.col}`);
    if (!hovered) {
      card.replaceChildren(h("p", { class: "cw-empty", text: "hover a cell to see what it holds" }));
      return;
    }
    if (!entry) {
      card.replaceChildren(h("p", { class: "cw-empty", text: `cell ${hovered.row}, ${hovered.col}…` }));
      return;
    }
    const { info, patches } = entry;
    if (!info.count) {
      card.replaceChildren(
        h("h4", { class: "cw-cell-title", text: `cell ${info.row}, ${info.col} of ${info.level} × ${info.level}` }),
        h("p", { class: "cw-empty", text: "no activations fell here" }),
      );
      return;
    }
    const scores = info.classes.map(([, score]) => Number(score));
    const bars = scoreBars(scores);
    const parts = [
      h("h4", { class: "cw-cell-title", text: `cell ${info.row}, ${info.col} of ${info.level} × ${info.level}` }),
      h("p", { class: "cw-cell-count", text: `${info.count} activation${info.count === 1 ? "" : "s"}` }),
      h("ol", { class: "cw-classes" }, info.classes.map(([name, score], i) =>
        h("li", { class: "cw-class" }, [
          h("span", { class: "cw-class-name", text: String(name) }),
          bars[i],
          h("span", { class: "cw-class-score", text: Number(score).toFixed(3) }),
        ]))),
    ];
    if (patches) {
      const strip = h("div", { class: "cw-patches" });
      for (let i = 0; i < patches.shape[0]; i++) {
        const patch = h("canvas", { class: "cw-patch" });
        paintArray(patch, patches, i);
        strip.append(patch);
      }
      parts.push(strip);
    }
    card.replaceChildren(...parts);
  }

  function hover(cell) {
    const same = hovered && cell && hovered.level === cell.level && hovered.row === cell.row && hovered.col === cell.col;
    if (same || (!hovered && !cell)) return;
    hovered = cell;
    draw();
    showCard();
    clearTimeout(hoverTimer);
    if (cell && !cells.has(`${cell.level}:${cell.row}:${cell.col}`)) {
      hoverTimer = setTimeout(() => model.send({ type: "cell", id: ++requestId, ...cell }), HOVER_DEBOUNCE_MS);
    }
  }

  function pointerCell(event) {
    const box = canvas.getBoundingClientRect();
    const level = currentLevel();
    const cell = cellAt(view, SIDE, level, event.clientX - box.left, event.clientY - box.top);
    return cell && { level, ...cell };
  }

  // -- messages from Python -----------------------------------------------------------------
  function onMessage(message, buffers) {
    if (message.type === "tile") {
      const key = `${message.version}:${message.level}:${message.row}:${message.col}`;
      pending.delete(key);
      if (message.version !== model.get("tile_version")) return;
      const pixels = decodeArray({ view: buffers[0], dtype: "uint8", shape: message.shape });
      const [height, width] = pixels.shape;
      const tile = h("canvas", { width, height });
      const rgba = new Uint8ClampedArray(pixels.data.buffer, pixels.data.byteOffset, pixels.data.byteLength);
      tile.getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
      tiles.set(key, tile);
      draw();
    } else if (message.type === "tile_error") {
      // answered, not drawn: stop waiting for it, and ask again later (the banner says why)
      const key = `${message.version}:${message.level}:${message.row}:${message.col}`;
      pending.delete(key);
      failedAt.set(key, performance.now());
      canvas.dataset.failed = String(failedAt.size);
    } else if (message.type === "cell") {
      const patches = message.patches ? decodeArray({ view: buffers[0], dtype: "uint8", shape: message.patches }) : null;
      cells.set(`${message.level}:${message.row}:${message.col}`, { info: message, patches });
      showCard();
    }
  }

  // -- edits from the browser ---------------------------------------------------------------
  let drag = null;
  canvas.addEventListener("pointerdown", (event) => {
    drag = { x: event.clientX, y: event.clientY, moved: false };
    canvas.setPointerCapture?.(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (drag) {
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (drag.moved || Math.hypot(dx, dy) > DRAG_SLOP_PX) {
        drag.moved = true;
        drag.x = event.clientX;
        drag.y = event.clientY;
        setView(panBy(view, SIDE, dx, dy, maxZoom()));
        return;
      }
    }
    hover(pointerCell(event));
  });
  canvas.addEventListener("pointerup", (event) => {
    const wasClick = drag && !drag.moved;
    drag = null;
    if (!wasClick) return;
    const cell = pointerCell(event);
    const next = cell ? [cell.level, cell.row, cell.col] : [];
    model.set("selected", next);
    model.save_changes();
    draw();
  });
  canvas.addEventListener("pointerleave", () => {
    if (!drag) hover(null);
  });
  let steering = false;
  const steer = (event) => {
    const box = minimap.getBoundingClientRect();
    setView(centerOnMinimap(view, MINIMAP_SIDE, event.clientX - box.left, event.clientY - box.top, maxZoom()));
  };
  minimap.addEventListener("pointerdown", (event) => {
    steering = true;
    minimap.setPointerCapture?.(event.pointerId);
    steer(event);
  });
  minimap.addEventListener("pointermove", (event) => { if (steering) steer(event); });
  for (const end of ["pointerup", "pointercancel", "lostpointercapture"]) {
    minimap.addEventListener(end, () => { steering = false; });
  }
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = canvas.getBoundingClientRect();
    setView(zoomAt(view, SIDE, event.clientX - box.left, event.clientY - box.top, Math.exp(-event.deltaY * 0.0015), maxZoom()));
  }, { passive: false });
  canvas.addEventListener("dblclick", (event) => {
    const box = canvas.getBoundingClientRect();
    setView(zoomAt(view, SIDE, event.clientX - box.left, event.clientY - box.top, event.shiftKey ? 0.5 : 2, maxZoom()));
  });
  zoomIn.addEventListener("click", () => setView(zoomAt(view, SIDE, SIDE / 2, SIDE / 2, 2, maxZoom())));
  zoomOut.addEventListener("click", () => setView(zoomAt(view, SIDE, SIDE / 2, SIDE / 2, 0.5, maxZoom())));
  reset.addEventListener("click", () => setView(WHOLE));
  el.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement) return;
    const step = SIDE / 10;
    const moves = {
      "+": () => zoomAt(view, SIDE, SIDE / 2, SIDE / 2, 2, maxZoom()),
      "=": () => zoomAt(view, SIDE, SIDE / 2, SIDE / 2, 2, maxZoom()),
      "-": () => zoomAt(view, SIDE, SIDE / 2, SIDE / 2, 0.5, maxZoom()),
      "0": () => WHOLE,
      ArrowLeft: () => panBy(view, SIDE, step, 0, maxZoom()),
      ArrowRight: () => panBy(view, SIDE, -step, 0, maxZoom()),
      ArrowUp: () => panBy(view, SIDE, 0, step, maxZoom()),
      ArrowDown: () => panBy(view, SIDE, 0, -step, maxZoom()),
    };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    setView(move());
  });
  filterInput.addEventListener("change", () => {
    model.set("class_filter", filterInput.value.trim());
    model.save_changes();
  });

  // -- state from Python --------------------------------------------------------------------
  function onView() {
    const next = clampView(model.get("view"), maxZoom());
    if (sameView(next, view)) return;
    view = next;
    draw();
  }

  function onClasses() {
    classList.replaceChildren(...(model.get("class_names") || []).map((name) => h("option", { value: name })));
    filterInput.disabled = !(model.get("class_names") || []).length;
  }

  function onVersion() {
    for (const key of [...tiles.keys()]) if (!key.startsWith(`${model.get("tile_version")}:`)) tiles.delete(key);
    pending.clear();
    failedAt.clear();
    draw();
  }

  const handlers = [
    ["change:view", onView],
    ["change:selected change:levels change:tile_cells change:icon_px", draw],
    ["change:tile_version", onVersion],
    ["change:class_names", onClasses],
    ["change:class_filter", () => { filterInput.value = model.get("class_filter"); }],
    ["change:error", banner.update],
    ["msg:custom", onMessage],
  ];
  const unsubscribe = subscribe(model, handlers);
  filterInput.value = model.get("class_filter");
  onClasses();
  banner.update();
  showCard();
  draw();
  return () => {
    save.cancel();
    clearTimeout(hoverTimer);
    unsubscribe();
  };
}

export default { render };
