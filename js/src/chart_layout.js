// Chart geometry as pure functions (ticks, scales, signed bars, a curve), tested in Node;
// charts.js turns the numbers into SVG.

/** Decimals that print every multiple of `step` exactly (0.25 -> 2, 5 -> 0). */
export function stepDecimals(step) {
  if (!(step > 0) || !Number.isFinite(step)) return 0;
  for (let decimals = 0; decimals < 12; decimals++) {
    const scaled = step * 10 ** decimals;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-9 * Math.max(1, scaled)) return decimals;
  }
  return 12;
}

/**
 * Round tick values that enclose [low, high]: evenly spaced by 1, 2 or 5 times a power of ten,
 * about `count` intervals. A flat range is widened so an axis always has a length.
 */
export function niceTicks(low, high, count = 4) {
  if (!Number.isFinite(low) || !Number.isFinite(high)) return [0, 1];
  if (high < low) [low, high] = [high, low];
  if (high === low) {
    const pad = low === 0 ? 1 : Math.abs(low) * 0.1;
    [low, high] = [low - pad, high + pad];
  }
  const rough = (high - low) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough * (1 - 1e-9));
  const decimals = stepDecimals(step);
  // the small slack keeps a value that sits on a tick (0.3 / 0.1 = 2.9999...) from adding another
  const first = Math.floor(low / step + 1e-9);
  const last = Math.ceil(high / step - 1e-9);
  const ticks = [];
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toFixed(decimals)));
  return ticks;
}

/** A linear map from `domain` [d0, d1] to `range` [r0, r1]; a flat domain maps to the middle. */
export function linearScale([d0, d1], [r0, r1]) {
  const span = d1 - d0;
  if (!span) return () => (r0 + r1) / 2;
  return (value) => r0 + ((value - d0) / span) * (r1 - r0);
}

/** A number as a short label: three significant digits, no exponent for usual weights. */
export function formatNumber(value) {
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1000) return value.toFixed(0);
  return String(Number(value.toPrecision(3)));
}

/**
 * Signed bars along one axis from `start` to `end` pixels (either direction): ticks that enclose
 * zero and every value, the zero line's position, and each bar as `{from, to}` (zero to the
 * value's position), so a negative value extends to the other side of the zero line and every
 * bar's length is proportional to its magnitude.
 */
export function signedBarLayout(values, [start, end], count = 5) {
  const finite = values.map((v) => (Number.isFinite(v) ? v : 0));
  const ticks = niceTicks(Math.min(0, ...finite), Math.max(0, ...finite), count);
  const at = linearScale([ticks[0], ticks[ticks.length - 1]], [start, end]);
  const zero = at(0);
  const decimals = stepDecimals(ticks.length > 1 ? ticks[1] - ticks[0] : 1);
  return {
    zero,
    ticks: ticks.map((value) => ({ value, at: at(value), label: value.toFixed(decimals) })),
    bars: finite.map((value) => ({ value, from: zero, to: at(value), length: Math.abs(at(value) - zero) })),
  };
}

/**
 * A curve through (xs[i], ys[i]) in a box `{left, right, top, bottom}` (pixels, y growing down):
 * the points in data order and the ticks of both axes, which enclose the data.
 */
export function curveLayout(xs, ys, box, count = 4) {
  const n = Math.min(xs.length, ys.length);
  const [xValues, yValues] = [Array.from(xs).slice(0, n), Array.from(ys).slice(0, n)];
  const xTicks = n ? niceTicks(Math.min(...xValues), Math.max(...xValues), count) : [0, 1];
  const yTicks = n ? niceTicks(Math.min(...yValues), Math.max(...yValues), count) : [0, 1];
  const x = linearScale([xTicks[0], xTicks[xTicks.length - 1]], [box.left, box.right]);
  const y = linearScale([yTicks[0], yTicks[yTicks.length - 1]], [box.bottom, box.top]);
  const labelled = (ticks, at) => {
    const decimals = stepDecimals(ticks.length > 1 ? ticks[1] - ticks[0] : 1);
    return ticks.map((value) => ({ value, at: at(value), label: value.toFixed(decimals) }));
  };
  return {
    points: xValues.map((value, i) => ({ x: x(value), y: y(yValues[i]) })),
    xTicks: labelled(xTicks, x),
    yTicks: labelled(yTicks, y),
  };
}

/** SVG path data through `points`: "M x0 y0 L x1 y1 ...", one command per point. */
export function pathData(points, digits = 2) {
  return points.map(({ x, y }, i) => `${i ? "L" : "M"}${x.toFixed(digits)} ${y.toFixed(digits)}`).join(" ");
}
