// DOM helpers shared by the widgets.

import { signedBars } from "./units.js";

/** Create an element; text goes in through textContent only, never as HTML. */
export function h(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

/**
 * Diverging bars for scores: a track with a tick at zero, one bar each. `bars` is the layout
 * (`{left, width, zero}` fractions, by default `signedBars`); a bar left of the tick is negative.
 */
export function scoreBars(scores, trackWidth = 72, bars = signedBars(scores)) {
  return bars.map(({ left, width, zero }) =>
    h("span", { class: "cw-track", style: `width: ${trackWidth}px` }, [
      h("span", { class: "cw-zero", style: `left: ${Math.round(zero * trackWidth)}px` }),
      h("span", {
        class: `cw-bar${left < zero ? " cw-negative" : ""}`,
        style: `left: ${Math.round(left * trackWidth)}px; width: ${Math.max(1, Math.round(width * trackWidth))}px`,
      }),
    ]),
  );
}
