// Pure pixel and timing helpers: no DOM, so Node's test runner can check them.

/**
 * RGBA pixels for a heatmap (uint8 values, width * height): values below `cutoff` (0..1) are
 * transparent, the rest take the colormap's colour at `opacity`. With `fade`, the opacity grows
 * from 0 at the cutoff to `opacity` at the top, so only the hottest parts are tinted fully.
 */
export function overlayRGBA(map, width, height, { cutoff = 0, lut, opacity = 0.6, fade = false }) {
  if (map.length !== width * height) {
    throw new Error(`heatmap has ${map.length} values, expected ${width} x ${height}`);
  }
  const out = new Uint8ClampedArray(width * height * 4);
  const alpha = Math.round(Math.min(1, Math.max(0, opacity)) * 255);
  const threshold = cutoff * 255;
  const span = Math.max(1e-9, 255 - threshold);
  for (let i = 0; i < map.length; i++) {
    const value = map[i];
    if (value < threshold) continue;
    out[i * 4] = lut[value * 3];
    out[i * 4 + 1] = lut[value * 3 + 1];
    out[i * 4 + 2] = lut[value * 3 + 2];
    out[i * 4 + 3] = fade ? Math.round((alpha * (value - threshold)) / span) : alpha;
  }
  return out;
}

/** How the examples' heat is drawn over their crops (NeuronExplorer and the Microscope site): a
 * light tint over the hotter part of each crop, fading out towards the cooler part, so the
 * picture stays readable under it. */
export const EXAMPLE_HEAT = { cutoff: 0.4, opacity: 0.5, fade: true };

/** The part of a `rows` x `cols` grid under a crop `box` ([left, top, right, bottom]) of a
 * `width` x `height` image, in grid cells: `[x, y, w, h]` for drawImage's source rectangle. */
export function gridCrop(box, width, height, rows, cols) {
  const [left, top, right, bottom] = box.map(Number);
  return [(left * cols) / width, (top * rows) / height, ((right - left) * cols) / width, ((bottom - top) * rows) / height];
}

/** RGBA pixels of a horizontal colour bar, low on the left. */
export function legendRGBA(lut, width, height) {
  const out = new Uint8ClampedArray(width * height * 4);
  for (let x = 0; x < width; x++) {
    const value = width === 1 ? 255 : Math.round((x / (width - 1)) * 255);
    for (let y = 0; y < height; y++) {
      const i = (y * width + x) * 4;
      out[i] = lut[value * 3];
      out[i + 1] = lut[value * 3 + 1];
      out[i + 2] = lut[value * 3 + 2];
      out[i + 3] = 255;
    }
  }
  return out;
}

/** RGBA pixels from an (H, W, 3) uint8 image. */
export function imageRGBA(rgb, width, height) {
  if (rgb.length !== width * height * 3) throw new Error(`image has ${rgb.length} values, expected ${width} x ${height} x 3`);
  const out = new Uint8ClampedArray(width * height * 4);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    out[j] = rgb[i];
    out[j + 1] = rgb[i + 1];
    out[j + 2] = rgb[i + 2];
    out[j + 3] = 255;
  }
  return out;
}

/** `fn` delayed until `ms` pass without another call; `.flush()` runs a pending call now. */
export function debounce(fn, ms) {
  let timer = null;
  let pending = null;
  const debounced = (...args) => {
    pending = args;
    clearTimeout(timer);
    timer = setTimeout(debounced.flush, ms);
  };
  debounced.flush = () => {
    clearTimeout(timer);
    timer = null;
    if (pending) {
      const args = pending;
      pending = null;
      fn(...args);
    }
  };
  debounced.cancel = () => {
    clearTimeout(timer);
    timer = null;
    pending = null;
  };
  return debounced;
}

/**
 * The two ends of a heatmap legend as text, from a map scale `{ kind, low: [...], high: [...] }`
 * (one value for a joint scale, one per label otherwise) and the selected label's index:
 * the similarity each end of the colour bar stands for. A floor is shown as "≤ low".
 */
export function legendEnds(scale, index, { floor = false, digits = 3 } = {}) {
  if (!scale || !Array.isArray(scale.low) || !scale.low.length) return ["low", "high"];
  const pick = scale.low.length > 1 ? index : 0;
  const low = scale.low[pick];
  const high = scale.high[pick];
  if (!Number.isFinite(low) || !Number.isFinite(high)) return ["low", "high"];
  return [`${floor ? "≤ " : ""}${low.toFixed(digits)}`, high.toFixed(digits)];
}
