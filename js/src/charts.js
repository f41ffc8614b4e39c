// Small SVG charts (signed bars, a curve with markers) whose colours come from CSS classes, so
// theme variables decide them. Geometry comes from chart_layout.js; text goes in as textContent.
import { curveLayout, formatNumber, pathData, signedBarLayout } from "./chart_layout.js";

const SVG_NS = "http://www.w3.org/2000/svg";
export const CHART_WIDTH = 420;
const TITLE_HEIGHT = 28;
const AXIS_HEIGHT = 38; // tick labels and the axis title under the plot
const ROW_HEIGHT = 22;
const BAR_THICKNESS = 14;
const UNIT_COLUMN = 70; // "unit 1234" left of the bars
const VALUE_ROOM = 46; // a value label beyond the end of the longest bar, on either side

/** Create an SVG element; `text` goes in through textContent only, never as markup. */
export function svg(tag, attrs = {}, children = []) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (value != null) node.setAttribute(key, String(value));
  }
  for (const child of children) node.append(child);
  return node;
}

const px = (value) => Number(value.toFixed(2));

/** The SVG root of a chart: scales with its box (no scrollbar), `viewBox` units are CSS pixels at full width. */
function chartRoot(kind, title, height, children) {
  return svg("svg", {
    class: `cw-chart ${kind}`,
    viewBox: `0 0 ${CHART_WIDTH} ${height}`,
    width: CHART_WIDTH,
    height,
    role: "img",
    "aria-label": title,
  }, [svg("text", { class: "cw-chart-title", x: CHART_WIDTH / 2, y: 18, "text-anchor": "middle", text: title }), ...children]);
}

/**
 * Horizontal signed bars, one row per item `{unit, value}`: a unit label on the left, a bar
 * from the zero line (right for positive values, left for negative ones), the value at its end,
 * a numbered axis below. Each row is a focusable `g.cw-bar-row[data-unit]`.
 */
export function barChart({ title, items, axisTitle = "weight", empty = "nothing to show" }) {
  const rows = Math.max(1, items.length);
  const plotTop = TITLE_HEIGHT + 4;
  const plotBottom = plotTop + rows * ROW_HEIGHT;
  const height = plotBottom + AXIS_HEIGHT;
  const [left, right] = [UNIT_COLUMN + VALUE_ROOM, CHART_WIDTH - VALUE_ROOM];
  const layout = signedBarLayout(items.map((item) => item.value), [left, right]);
  const grid = layout.ticks.map(({ at, label }) =>
    svg("g", { class: "cw-tick" }, [
      svg("line", { class: "cw-grid", x1: px(at), x2: px(at), y1: plotTop, y2: plotBottom }),
      svg("text", { class: "cw-tick-label", x: px(at), y: plotBottom + 14, "text-anchor": "middle", text: label }),
    ]),
  );
  const bars = items.map(({ unit, value }, i) => {
    const { from, to, length } = layout.bars[i];
    const y = plotTop + i * ROW_HEIGHT;
    const middle = y + ROW_HEIGHT / 2;
    const negative = value < 0;
    const valueText = svg("text", {
      class: "cw-bar-value",
      x: px(negative ? to - 4 : to + 4),
      y: middle + 4,
      "text-anchor": negative ? "end" : "start",
      text: formatNumber(value),
    });
    return svg("g", {
      class: "cw-bar-row",
      "data-unit": unit,
      tabindex: 0,
      role: "button",
      "aria-label": `unit ${unit}, weight ${formatNumber(value)}: open it`,
    }, [
      svg("title", { text: `unit ${unit}: weight ${value}. Click to open the neuron.` }),
      svg("rect", { class: "cw-row-hit", x: 0, y, width: CHART_WIDTH, height: ROW_HEIGHT }),
      svg("text", { class: "cw-bar-unit", x: UNIT_COLUMN - 6, y: middle + 4, "text-anchor": "end", text: `unit ${unit}` }),
      svg("rect", {
        class: `cw-bar ${negative ? "cw-negative" : "cw-positive"}`,
        x: px(Math.min(from, to)),
        y: y + (ROW_HEIGHT - BAR_THICKNESS) / 2,
        width: px(length),
        height: BAR_THICKNESS,
        "data-unit": unit,
        "data-value": value,
      }),
      valueText,
    ]);
  });
  const note = items.length ? [] : [svg("text", { class: "cw-empty", x: CHART_WIDTH / 2, y: plotTop + 15, "text-anchor": "middle", text: empty })];
  return chartRoot("cw-bar-chart", title, height, [
    ...grid,
    ...bars,
    svg("line", { class: "cw-zero", x1: px(layout.zero), x2: px(layout.zero), y1: plotTop - 2, y2: plotBottom + 2 }),
    svg("text", { class: "cw-axis-title", x: (left + right) / 2, y: plotBottom + 32, "text-anchor": "middle", text: axisTitle }),
    ...note,
  ]);
}

/**
 * A curve through `(xs[i], ys[i])` with a marker per point (`circle.cw-point[data-index]`) and
 * point `current` ringed, numbered axes and their titles.
 */
export function curveChart({ title, xs, ys, current = -1, xTitle, yTitle }) {
  const height = 260;
  const box = { left: 62, right: CHART_WIDTH - 16, top: TITLE_HEIGHT + 8, bottom: height - AXIS_HEIGHT };
  const layout = curveLayout(xs, ys, box);
  const xTicks = layout.xTicks.map(({ at, label }) =>
    svg("g", { class: "cw-tick cw-x-tick" }, [
      svg("line", { class: "cw-grid", x1: px(at), x2: px(at), y1: box.top, y2: box.bottom }),
      svg("text", { class: "cw-tick-label", x: px(at), y: box.bottom + 14, "text-anchor": "middle", text: label }),
    ]),
  );
  const yTicks = layout.yTicks.map(({ at, label }) =>
    svg("g", { class: "cw-tick cw-y-tick" }, [
      svg("line", { class: "cw-grid", x1: box.left, x2: box.right, y1: px(at), y2: px(at) }),
      svg("text", { class: "cw-tick-label", x: box.left - 6, y: px(at) + 4, "text-anchor": "end", text: label }),
    ]),
  );
  const order = [...layout.points.keys()].filter((i) => i !== current);
  if (current >= 0 && current < layout.points.length) order.push(current); // ringed point on top
  const points = order.map((i) => [layout.points[i], i]).map(([{ x, y }, i]) =>
    svg("circle", {
      class: `cw-point${i === current ? " cw-current" : ""}`,
      cx: px(x),
      cy: px(y),
      r: i === current ? 7 : 4,
      "data-index": i,
    }, [svg("title", { text: `${formatNumber(xs[i])} neurons, accuracy ${formatNumber(ys[i])}: click to show this probe` })]),
  );
  const middleY = (box.top + box.bottom) / 2;
  return chartRoot("cw-curve-chart", title, height, [
    ...xTicks,
    ...yTicks,
    svg("line", { class: "cw-axis", x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom }),
    svg("line", { class: "cw-axis", x1: box.left, x2: box.left, y1: box.top, y2: box.bottom }),
    svg("path", { class: "cw-line", d: pathData(layout.points) }),
    ...points,
    svg("text", { class: "cw-axis-title", x: (box.left + box.right) / 2, y: height - 6, "text-anchor": "middle", text: xTitle }),
    svg("text", {
      class: "cw-axis-title",
      x: 14,
      y: middleY,
      "text-anchor": "middle",
      transform: `rotate(-90 14 ${middleY})`,
      text: yTitle,
    }),
  ]);
}
