// NeuronExplorer layout: pure functions (no DOM), tested in Node.

/**
 * Bars from a baseline rather than from zero, so close scores (4.74 and 4.14) look different:
 * `{left, width, zero}` as fractions of a track spanning the scores and the baseline. `zero` is
 * where the baseline sits; a bar runs from it to its score, right for scores above, left for
 * scores below. A bar's end is linear in its score, so bar differences follow score differences.
 */
export function baselineBars(scores, baseline) {
  const finite = scores.filter(Number.isFinite);
  const base = Number.isFinite(baseline) ? baseline : finite.length ? Math.min(...finite) : 0;
  const low = Math.min(base, ...finite);
  const high = Math.max(base, ...finite);
  const span = high - low;
  const at = (value) => (span > 0 ? (value - low) / span : 0);
  const zero = at(base);
  return scores.map((score) => {
    const end = Number.isFinite(score) ? at(score) : zero;
    return { left: Math.min(zero, end), width: Math.abs(end - zero), zero };
  });
}

/**
 * The outline of the cells of a `rows` x `cols` map whose value is at least `threshold`: the
 * edges between such a cell and a cell below it (or the map's border), as `[x0, y0, x1, y1]`
 * in cell units (x to the right, y down).
 */
export function outlineSegments(values, rows, cols, threshold) {
  if (values.length !== rows * cols) throw new Error(`map has ${values.length} values, expected ${rows} x ${cols}`);
  const inside = (r, c) => r >= 0 && r < rows && c >= 0 && c < cols && values[r * cols + c] >= threshold;
  const segments = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (!inside(r, c)) continue;
      if (!inside(r - 1, c)) segments.push([c, r, c + 1, r]);
      if (!inside(r + 1, c)) segments.push([c, r + 1, c + 1, r + 1]);
      if (!inside(r, c - 1)) segments.push([c, r, c, r + 1]);
      if (!inside(r, c + 1)) segments.push([c + 1, r, c + 1, r + 1]);
    }
  }
  return segments;
}

/**
 * The outline's level for one example: `fraction` of the way from its map's lowest value to its
 * highest, so the outline keeps to the cells near the example's own peak.
 */
export function outlineLevel(values, fraction = 0.7) {
  let low = Infinity;
  let high = -Infinity;
  for (const value of values) {
    low = Math.min(low, value);
    high = Math.max(high, value);
  }
  return values.length ? low + fraction * (high - low) : 0;
}

/** Whether `shownOf` (`[layer, unit]` from Python) names the selection `layer`, `unit`. */
export function showsSelection(shownOf, layer, unit) {
  return Array.isArray(shownOf) && shownOf.length >= 2 && shownOf[0] === layer && Number(shownOf[1]) === unit;
}

/** A score with three significant digits, so cosines (0.0312) and activations (4.74) both read. */
export function formatScore(score) {
  const value = Number(score);
  if (!Number.isFinite(value)) return "";
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}
