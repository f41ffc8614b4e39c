// SurgeryWidget's view decisions as pure functions (no DOM), so Node's test runner checks them:
// which panes show, which synced array holds a method's maps, and what a legend says.
import { legendEnds } from "./render.js";

/** A method's entry in the `methods` trait (`{ name, title, value }`), or a stand-in. */
export function methodInfo(methods, name) {
  const found = (Array.isArray(methods) ? methods : []).find((m) => m && m.name === name);
  return { name, title: found?.title ?? name, value: found?.value ?? "similarity" };
}

/**
 * The panes to draw: the shown method always, the compared one beside it when `sideBySide` and
 * there is one. Each pane is `{ role: "method" | "compare", name }`.
 */
export function panes({ method, compare, sideBySide }) {
  const shown = [{ role: "method", name: method }];
  if (sideBySide && compare) shown.push({ role: "compare", name: compare });
  return shown;
}

/**
 * Which synced array holds `name`'s maps: "maps" or "compare_maps", from `owners` (the method
 * each array was computed for), or null when neither does yet. A switch made in the page swaps
 * `method` and `compare` at once; the arrays follow from Python, and until then (or in a saved
 * page, for good) each method's maps are found where they are.
 */
export function mapSource(name, owners) {
  if (!name) return null;
  if (owners.maps === name) return "maps";
  if (owners.compare_maps === name) return "compare_maps";
  return null;
}

/** Decimals that show a legend's range to about three significant digits (3 to 6). */
export function legendDigits(scale, index) {
  if (!scale || !Array.isArray(scale.low) || !scale.low.length) return 3;
  const pick = scale.low.length > 1 ? index : 0;
  const span = Math.abs(Number(scale.high[pick]) - Number(scale.low[pick]));
  if (!Number.isFinite(span) || span <= 0) return 3;
  return Math.min(6, Math.max(3, Math.ceil(-Math.log10(span)) + 2));
}

/**
 * What a pane's legend says for the selected label `index` (-1: none): `caption` (method and
 * label), `low` and `high` (the values at the ends of the colour bar, in the method's units) and
 * `note` (what the values are and how labels share the scale).
 */
export function legendText(info, scale, label, index) {
  const [low, high] = legendEnds(scale, index, { floor: Boolean(scale && scale.floor), digits: legendDigits(scale, index) });
  let note = "";
  if (scale) {
    const shared = scale.kind === "joint" ? "one scale for all labels" : "each label stretched on its own";
    note = `${info.value} to the label; ${shared}`;
  }
  return { caption: `${info.title}: ${label ?? "no label selected"}`, low, high, note };
}
