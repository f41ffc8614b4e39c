// Navigation between units and layers: pure functions, tested in Node.

/** The unit `delta` steps from `unit`, wrapping around a layer of `count` units. */
export function stepUnit(unit, delta, count) {
  if (!(count > 0)) return 0;
  return (((unit + delta) % count) + count) % count;
}

/** The layer `delta` steps from `current` in `names`, stopping at the ends. */
export function stepLayer(names, current, delta) {
  if (!names.length) return current;
  const index = Math.max(0, names.indexOf(current));
  return names[Math.min(names.length - 1, Math.max(0, index + delta))];
}

/**
 * A typed unit number; null when it is not a whole number. Not clamped: Python refuses a unit
 * outside the layer and says which units are valid, where clamping would hide the typo.
 */
export function parseUnit(text) {
  const trimmed = String(text).trim();
  return /^[+-]?\d+$/.test(trimmed) ? Number.parseInt(trimmed, 10) : null;
}

/** Bar widths in [0, 1] for scores, relative to the largest magnitude. */
export function barWidths(scores) {
  const top = Math.max(1e-12, ...scores.map((s) => Math.abs(s)));
  return scores.map((s) => Math.abs(s) / top);
}

/**
 * Diverging bars on a track whose middle is zero: `{left, width}` as fractions of the track,
 * positive scores growing right of the middle and negative ones left, the largest magnitude
 * reaching an end. When every score has one sign the zero sits at that end instead, so the
 * bars keep the whole track.
 */
export function signedBars(scores) {
  const widths = barWidths(scores);
  const negative = scores.some((s) => s < 0);
  const positive = scores.some((s) => s > 0);
  const zero = negative && positive ? 0.5 : negative ? 1 : 0;
  const span = negative && positive ? 0.5 : 1;
  return scores.map((s, i) => {
    const width = widths[i] * span;
    return { left: s < 0 ? zero - width : zero, width, zero };
  });
}
