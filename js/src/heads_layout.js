// HeadExplorer's pure helpers: the grid's colour scales, signed heat overlays, arrow-key steps
// and number formats. No DOM, so Node's test runner checks them.
import { SIGNED_NEGATIVE as NEGATIVE, SIGNED_POSITIVE as POSITIVE, colormapLUT, extent, inkOn } from "./colormap.js";

export { extent, inkOn }; // red: the head writes towards the text, blue: away from it
const MIDDLE = [247, 247, 247];

/** RGB of `t` in [-1, 1] on a blue-white-red scale. */
export function divergingColour(t) {
  const s = Math.max(-1, Math.min(1, Number.isFinite(t) ? t : 0));
  const end = s < 0 ? NEGATIVE : POSITIVE;
  const a = Math.abs(s);
  return MIDDLE.map((m, c) => Math.round(m * (1 - a) + end[c] * a));
}

/**
 * What colours the grid: `{values, kind, low, high}` with one value per head, layer-major.
 * "variance": each head's variance on viridis from 0 to the largest; "ablation": the drop in
 * accuracy (percentage points, baseline minus ablated) on a diverging scale around 0, so a head
 * whose ablation helps shows blue.
 */
export function gridScale(by, variance, ablation, baseline) {
  if (by === "ablation" && ablation && Number.isFinite(baseline)) {
    const values = Array.from(ablation.data, (a) => dropPoints(baseline, a));
    const top = extent(values);
    return { values, kind: "diverging", low: -top, high: top };
  }
  const values = variance ? Array.from(variance.data) : [];
  return { values, kind: "sequential", low: 0, high: extent(values) };
}

/**
 * Accuracy lost when a head is ablated, in percentage points, rounded to 1e-4 points: the
 * accuracies cross as float32, so an unchanged accuracy must read 0, not 3e-6.
 */
export function dropPoints(baseline, accuracy) {
  return Math.round((baseline - accuracy) * 1e6) / 1e4 || 0;
}

/** RGB of a grid value on its scale. */
export function cellColour(value, scale) {
  if (scale.kind === "diverging") return divergingColour(value / scale.high);
  const lut = colormapLUT("viridis");
  const i = Math.round(Math.max(0, Math.min(1, value / scale.high)) * 255) * 3;
  return [lut[i], lut[i + 1], lut[i + 2]];
}

/**
 * RGBA pixels of a signed map (Float32Array, width * height): red where positive, blue where
 * negative, opacity growing with |value| / `top` up to `opacity`, so near-zero patches stay clear.
 */
export function signedOverlayRGBA(map, width, height, { top = extent(map), opacity = 0.85 } = {}) {
  if (map.length !== width * height) throw new Error(`map has ${map.length} values, expected ${width} x ${height}`);
  const out = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < map.length; i++) {
    const t = Math.max(-1, Math.min(1, map[i] / top));
    const end = t < 0 ? NEGATIVE : POSITIVE;
    out[i * 4] = end[0];
    out[i * 4 + 1] = end[1];
    out[i * 4 + 2] = end[2];
    out[i * 4 + 3] = Math.round(Math.abs(t) * opacity * 255);
  }
  return out;
}

/** RGBA pixels of a horizontal colour bar for a grid scale (or a signed map: kind "diverging"). */
export function scaleBarRGBA(kind, width, height) {
  const out = new Uint8ClampedArray(width * height * 4);
  const scale = { kind, high: 1 };
  for (let x = 0; x < width; x++) {
    const f = width === 1 ? 1 : x / (width - 1);
    const rgb = cellColour(kind === "diverging" ? 2 * f - 1 : f, scale);
    for (let y = 0; y < height; y++) out.set([...rgb, 255], (y * width + x) * 4);
  }
  return out;
}

const STEPS = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };

/** The cell an arrow key moves to from `[layer, head]`, stopping at the grid's edges; null for other keys. */
export function stepCell([layer, head], key, layers, heads) {
  if (!(key in STEPS) || !(layers > 0 && heads > 0)) return null;
  const [dl, dh] = STEPS[key];
  const clamp = (v, n) => Math.max(0, Math.min(n - 1, v));
  return [clamp(layer + dl, layers), clamp(head + dh, heads)];
}

/** A number with three significant digits, a sign when `signed` ("+0.0123", "−4.56"). */
export function formatValue(value, signed = false) {
  if (!Number.isFinite(value)) return "–";
  const text = Math.abs(value) >= 1000 || value === 0 ? value.toFixed(0) : value.toPrecision(3);
  const plain = text.replace(/^-/, "");
  if (value < 0) return `−${plain}`;
  return signed && value > 0 ? `+${plain}` : plain;
}

/** The `index`-th (h, w) map of a decoded (L, H, K, h, w) array, or null. */
export function mapSlice(maps, layer, head, text) {
  if (!maps || maps.shape.length !== 5) return null;
  const [layers, heads, texts, h, w] = maps.shape;
  if (!(layer < layers && head < heads && text < texts && layer >= 0 && head >= 0 && text >= 0)) return null;
  const start = (((layer * heads + head) * texts + text) * h) * w;
  return { data: maps.data.subarray(start, start + h * w), shape: [h, w] };
}
