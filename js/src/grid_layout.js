// ActivationGridWidget's pure helpers: cell sizes and hit tests, arrow-key steps, the signed
// attribution scale and its legend, fixed-scale bars. No DOM, so Node's test runner checks them.

import { SIGNED_NEGATIVE as NEGATIVE, SIGNED_POSITIVE as POSITIVE, extent, inkOn } from "./colormap.js";

export { extent, inkOn }; // red: towards the class, blue: away

/** CSS px a side of one cell: `target` px for the whole grid, never under `min` px a cell. */
export function cellSize(grid, { target = 320, min = 48 } = {}) {
  const cells = Math.max(1, ...(grid || []).map((n) => Number(n) || 1));
  return Math.max(min, Math.floor(target / cells));
}

/** `[row, col]` of the cell under CSS offset (`x`, `y`) in a grid of `cell` px cells; null outside. */
export function cellAt(x, y, cell, grid) {
  if (!grid || grid.length !== 2 || !(cell > 0)) return null;
  const [rows, cols] = grid;
  const row = Math.floor(y / cell);
  const col = Math.floor(x / cell);
  return row >= 0 && row < rows && col >= 0 && col < cols ? [row, col] : null;
}

const MOVES = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };

/**
 * The position an arrow key moves to from `position` (`[row, col]` or null: the top-left cell
 * first), stopping at the grid's edges; undefined for other keys.
 */
export function stepPosition(position, key, grid) {
  const move = MOVES[key];
  if (!move || !grid || grid.length !== 2) return undefined;
  if (!position) return [0, 0];
  const clamp = (v, n) => Math.max(0, Math.min(n - 1, v));
  return [clamp(position[0] + move[0], grid[0]), clamp(position[1] + move[1], grid[1])];
}

/**
 * The heat of `t` in [-1, 1] (a value over the scale's limit): the colour of its side, red
 * towards the class and blue away, at an opacity that grows with |t|, so a position near zero
 * leaves the image under it as it is.
 */
export function heat(t, opacity = 0.85) {
  const s = Math.max(-1, Math.min(1, Number.isFinite(t) ? t : 0));
  return { rgb: s < 0 ? NEGATIVE : POSITIVE, alpha: Math.abs(s) * opacity };
}

/** RGB of heat `t` over mid-gray (the muted image's middle): the legend's colours. */
export function heatOnGray(t) {
  const { rgb, alpha } = heat(t);
  return rgb.map((v) => Math.round(v * alpha + 128 * (1 - alpha)));
}

/** Column `index` of a decoded (rows, cols) array, as a plain list (empty when out of range). */
export function column(array, index) {
  if (!array || array.shape.length !== 2 || index < 0 || index >= array.shape[1]) return [];
  const [rows, cols] = array.shape;
  return Array.from({ length: rows }, (_, r) => Number(array.data[r * cols + index]));
}

/** Row `index` of a decoded (rows, cols) array, as a plain list (empty when out of range). */
export function row(array, index) {
  if (!array || array.shape.length !== 2 || index < 0 || index >= array.shape[0]) return [];
  const cols = array.shape[1];
  return Array.from(array.data.subarray(index * cols, (index + 1) * cols), Number);
}

/** A number for a cell or a legend: 3 significant digits, a sign when `signed`, no "-0". */
export function formatValue(value, { signed = false } = {}) {
  if (!Number.isFinite(value)) return "–";
  const magnitude = Math.abs(value);
  const digits = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : 3;
  const text = magnitude.toFixed(digits);
  if (Number(text) === 0) return (0).toFixed(digits);
  const sign = value < 0 ? "−" : signed ? "+" : "";
  return `${sign}${text}`;
}

/** The legend's labels under a symmetric scale from `-limit` to `+limit`: left, middle, right. */
export function legendLabels(limit) {
  return [formatValue(-limit, { signed: true }), "0", formatValue(limit, { signed: true })];
}

/**
 * Bars on one fixed scale, so bars of different positions compare: `{left, width, zero}` as
 * fractions of a track. Signed: zero in the middle, `limit` at either end; otherwise zero at the
 * left and `limit` at the right (a negative value then shows as a sliver at the tick).
 */
export function fixedBars(values, limit, { signed = false } = {}) {
  const top = limit > 0 ? limit : extent(values);
  const zero = signed ? 0.5 : 0;
  const span = signed ? 0.5 : 1;
  return values.map((v) => {
    const t = Math.max(-1, Math.min(1, (Number.isFinite(v) ? v : 0) / top));
    const width = Math.abs(t) * span;
    if (!signed && t < 0) return { left: 0, width: 0, zero };
    return { left: t < 0 ? zero - width : zero, width, zero };
  });
}

/** RGBA pixels of `rgb` (H * W * 3) in muted gray, pulled towards mid-gray: a quiet base for heat. */
export function mutedGray(rgb, width, height) {
  const out = new Uint8ClampedArray(width * height * 4);
  for (let i = 0, j = 0; i < width * height * 3; i += 3, j += 4) {
    const gray = 0.299 * rgb[i] + 0.587 * rgb[i + 1] + 0.114 * rgb[i + 2];
    const v = 128 + (gray - 128) * 0.6;
    out[j] = out[j + 1] = out[j + 2] = v;
    out[j + 3] = 255;
  }
  return out;
}
