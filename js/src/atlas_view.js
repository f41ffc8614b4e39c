// Atlas view geometry: pure functions of the view {x, y, zoom}, tested in Node.
// The atlas is the unit square; (x, y) is the centre of the view, zoom 1 shows all of it, and
// a view of `side` px draws one unit as `side * zoom` px.

/** The view clamped so that zoom stays in [1, maxZoom] and the view inside the atlas. */
export function clampView({ x, y, zoom }, maxZoom) {
  const z = Math.min(Math.max(Number(zoom) || 1, 1), Math.max(1, maxZoom));
  const half = 0.5 / z;
  const clamp = (v) => Math.min(Math.max(Number.isFinite(v) ? v : 0.5, half), 1 - half);
  return { x: clamp(Number(x)), y: clamp(Number(y)), zoom: z };
}

/** The finest grid whose cells are at least `minCellPx` on screen; the coarsest if none is. */
export function levelFor(zoom, levels, side, minCellPx = 40) {
  const sorted = [...levels].sort((a, b) => a - b);
  let chosen = sorted[0];
  for (const level of sorted) if ((side * zoom) / level >= minCellPx) chosen = level;
  return chosen;
}

/** The part of the unit square in view: [left, top, right, bottom]. */
export function viewBounds({ x, y, zoom }) {
  const half = 0.5 / zoom;
  return [x - half, y - half, x + half, y + half];
}

/** Tiles [row, col] of grid `level` (tiles of `tileCells` cells a side) that the view touches. */
export function visibleTiles(view, level, tileCells) {
  const tiles = Math.ceil(level / tileCells);
  const span = tileCells / level; // one tile, in unit-square coordinates
  const [left, top, right, bottom] = viewBounds(view);
  const first = (v) => Math.min(tiles - 1, Math.max(0, Math.floor(v / span)));
  const last = (v) => Math.min(tiles - 1, Math.max(0, Math.ceil(v / span) - 1));
  const out = [];
  for (let row = first(top); row <= last(bottom); row++) {
    for (let col = first(left); col <= last(right); col++) out.push([row, col]);
  }
  return out;
}

/** Unit-square coordinates of the screen point (px, py) in a view `side` px wide. */
export function screenToUnit(view, side, px, py) {
  const scale = side * view.zoom;
  return [view.x + (px - side / 2) / scale, view.y + (py - side / 2) / scale];
}

/** Screen coordinates of the unit-square point (u, v). */
export function unitToScreen(view, side, u, v) {
  const scale = side * view.zoom;
  return [(u - view.x) * scale + side / 2, (v - view.y) * scale + side / 2];
}

/** The cell {row, col} of grid `level` under the screen point, or null outside the atlas. */
export function cellAt(view, side, level, px, py) {
  const [u, v] = screenToUnit(view, side, px, py);
  if (u < 0 || v < 0 || u >= 1 || v >= 1) return null;
  return { row: Math.floor(v * level), col: Math.floor(u * level) };
}

/** The view zoomed by `factor` about the screen point (px, py), which stays where it is. */
export function zoomAt(view, side, px, py, factor, maxZoom) {
  const [u, v] = screenToUnit(view, side, px, py);
  const zoom = Math.min(Math.max(view.zoom * factor, 1), maxZoom);
  const scale = side * zoom;
  return clampView({ x: u - (px - side / 2) / scale, y: v - (py - side / 2) / scale, zoom }, maxZoom);
}

/** The view moved by (dx, dy) screen px (content follows the pointer). */
export function panBy(view, side, dx, dy, maxZoom) {
  const scale = side * view.zoom;
  return clampView({ x: view.x - dx / scale, y: view.y - dy / scale, zoom: view.zoom }, maxZoom);
}

/** Same view, within a tolerance that ignores float noise from the round trip through Python. */
export function sameView(a, b) {
  if (!a || !b) return false;
  return Math.abs(a.x - b.x) < 1e-9 && Math.abs(a.y - b.y) < 1e-9 && Math.abs(a.zoom - b.zoom) < 1e-9;
}

/** Where the view lies on a minimap `side` px wide that shows the whole atlas: [x, y, width, height] px. */
export function minimapRect(view, side) {
  const [left, top, right, bottom] = viewBounds(view);
  return [left * side, top * side, (right - left) * side, (bottom - top) * side];
}

/** The view, at its zoom, centred on the minimap point (px, py) of a minimap `side` px wide. */
export function centerOnMinimap(view, side, px, py, maxZoom) {
  return clampView({ x: px / side, y: py / side, zoom: view.zoom }, maxZoom);
}
