// 256-entry RGB lookup tables, linearly interpolated between anchor colours. The anchors are
// evenly spaced samples of the usual matplotlib maps (jet, viridis, inferno) and a gray ramp.

const ANCHORS = {
  jet: [[0, 0, 128], [0, 0, 255], [0, 128, 255], [0, 255, 255], [128, 255, 128], [255, 255, 0], [255, 128, 0], [255, 0, 0], [128, 0, 0]],
  viridis: [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]],
  inferno: [[0, 0, 4], [31, 12, 72], [85, 15, 109], [136, 34, 106], [186, 54, 85], [227, 89, 51], [249, 140, 10], [249, 201, 50], [252, 255, 164]],
  gray: [[0, 0, 0], [255, 255, 255]],
};

export const COLORMAPS = Object.keys(ANCHORS);
const cache = new Map();

/** A Uint8Array of 256 * 3 RGB values for `name` (jet when the name is unknown). */
export function colormapLUT(name) {
  const key = name in ANCHORS ? name : "jet";
  if (cache.has(key)) return cache.get(key);
  const anchors = ANCHORS[key];
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const position = (i / 255) * (anchors.length - 1);
    const low = Math.min(Math.floor(position), anchors.length - 2);
    const t = position - low;
    for (let c = 0; c < 3; c++) {
      lut[i * 3 + c] = Math.round(anchors[low][c] * (1 - t) + anchors[low + 1][c] * t);
    }
  }
  cache.set(key, lut);
  return lut;
}

/** The ends of the signed (diverging) scale: blue for negative values, red for positive. */
export const SIGNED_NEGATIVE = [33, 102, 172];
export const SIGNED_POSITIVE = [178, 24, 43];

/** Largest magnitude of `values` (never 0, so it can divide): the limit of a signed scale. */
export function extent(values) {
  let top = 0;
  for (const v of values) if (Number.isFinite(v)) top = Math.max(top, Math.abs(v));
  return top > 0 ? top : 1e-12;
}

/** Black or white text, whichever reads better on `rgb`. */
export function inkOn([r, g, b]) {
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? "#000000" : "#ffffff";
}
