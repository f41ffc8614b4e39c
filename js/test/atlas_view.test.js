import assert from "node:assert/strict";
import { test } from "node:test";
import { cellAt, clampView, levelFor, panBy, screenToUnit, unitToScreen, visibleTiles, zoomAt } from "../src/atlas_view.js";

const close = (a, b, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test("views stay inside the atlas and within the zoom range", () => {
  assert.deepEqual(clampView({ x: 0.5, y: 0.5, zoom: 0.2 }, 16), { x: 0.5, y: 0.5, zoom: 1 });
  assert.deepEqual(clampView({ x: 0.0, y: 1.0, zoom: 4 }, 16), { x: 0.125, y: 0.875, zoom: 4 });
  assert.equal(clampView({ x: 0.5, y: 0.5, zoom: 100 }, 16).zoom, 16);
  assert.deepEqual(clampView({ x: NaN, y: "junk", zoom: undefined }, 16), { x: 0.5, y: 0.5, zoom: 1 });
});

test("the level is the finest grid whose cells are big enough on screen", () => {
  const levels = [32, 8, 16];
  assert.equal(levelFor(1, levels, 512, 40), 8); // 8: 64 px cells, 16: 32 px
  assert.equal(levelFor(2, levels, 512, 40), 16);
  assert.equal(levelFor(4, levels, 512, 40), 32);
  assert.equal(levelFor(64, levels, 512, 40), 32);
  assert.equal(levelFor(1, [64], 512, 40), 64); // the coarsest when none is big enough
});

test("screen and unit coordinates round-trip, and the centre maps to the view centre", () => {
  const view = { x: 0.3, y: 0.7, zoom: 3 };
  const [u, v] = screenToUnit(view, 512, 256, 256);
  close(u, 0.3);
  close(v, 0.7);
  const [px, py] = unitToScreen(view, 512, ...screenToUnit(view, 512, 17, 401));
  close(px, 17);
  close(py, 401);
});

test("visible tiles: all at zoom 1, a corner when zoomed into it", () => {
  const whole = visibleTiles({ x: 0.5, y: 0.5, zoom: 1 }, 32, 8);
  assert.equal(whole.length, 16);
  assert.deepEqual(visibleTiles({ x: 0.125, y: 0.125, zoom: 4 }, 32, 8), [[0, 0]]);
  // a view straddling the middle touches four tiles
  assert.deepEqual(visibleTiles({ x: 0.5, y: 0.5, zoom: 4 }, 32, 8), [[1, 1], [1, 2], [2, 1], [2, 2]]);
  // a level smaller than one tile is one tile
  assert.deepEqual(visibleTiles({ x: 0.5, y: 0.5, zoom: 1 }, 4, 8), [[0, 0]]);
});

test("cells under the pointer, and nothing outside the atlas", () => {
  const view = { x: 0.5, y: 0.5, zoom: 1 };
  assert.deepEqual(cellAt(view, 512, 8, 0, 0), { row: 0, col: 0 });
  assert.deepEqual(cellAt(view, 512, 8, 511, 65), { row: 1, col: 7 });
  assert.equal(cellAt(view, 512, 8, 512, 10), null);
  assert.deepEqual(cellAt({ x: 0.125, y: 0.125, zoom: 4 }, 512, 32, 511, 0), { row: 0, col: 7 });
});

test("zooming keeps the point under the pointer in place; panning moves with the pointer", () => {
  const view = { x: 0.5, y: 0.5, zoom: 1 };
  const zoomed = zoomAt(view, 512, 128, 384, 2, 16);
  assert.equal(zoomed.zoom, 2);
  const before = screenToUnit(view, 512, 128, 384);
  const after = screenToUnit(zoomed, 512, 128, 384);
  close(before[0], after[0]);
  close(before[1], after[1]);
  const panned = panBy(zoomed, 512, 64, 0, 16);
  close(panned.x, zoomed.x - 64 / 1024);
  // at zoom 1 there is nowhere to pan
  assert.deepEqual(panBy(view, 512, 100, 100, 16), view);
});

test("the minimap frames the view and a press on it centres the view there", async () => {
  const { centerOnMinimap, minimapRect } = await import("../src/atlas_view.js");
  assert.deepEqual(minimapRect({ x: 0.5, y: 0.5, zoom: 1 }, 128), [0, 0, 128, 128]);
  const [x, y, w, h] = minimapRect({ x: 0.25, y: 0.75, zoom: 4 }, 128);
  close(x, 16); close(y, 80); close(w, 32); close(h, 32);
  const moved = centerOnMinimap({ x: 0.25, y: 0.75, zoom: 4 }, 128, 96, 32, 16);
  assert.deepEqual(moved, { x: 0.75, y: 0.25, zoom: 4 });
  // a press at the corner keeps the framed view inside the atlas
  assert.deepEqual(centerOnMinimap({ x: 0.5, y: 0.5, zoom: 4 }, 128, 0, 128, 16), { x: 0.125, y: 0.875, zoom: 4 });
});
