// ActivationGridWidget's card: one position's strongest units (number, activation bar, the unit's
// own visualization; a click opens the unit) and its signed attribution to each class.
import { decodeArray } from "./codecs.js";
import { h, scoreBars } from "./dom.js";
import { paintArray } from "./kit.js";
import { extent, fixedBars, formatValue, row } from "./grid_layout.js";

const TRACK_PX = 80;
const UNIT_TRACK_PX = 120;

/** The card element and `draw(position, pinned)`: `position` is `[row, col]` or null. */
export function positionCard(model) {
  const title = h("h4", { class: "cw-card-title" });
  const units = h("ol", { class: "cw-card-units" });
  const classesTitle = h("h4", { class: "cw-card-subtitle", text: "attribution to each class" });
  const classes = h("ol", { class: "cw-card-classes" });
  const hint = h("p", { class: "cw-card-hint" });
  const element = h("aside", { class: "cw-card", "aria-live": "polite" }, [title, hint, units, classesTitle, classes]);

  function unitRow(unit, value, bar, iconIndex, unitIcons) {
    const icon = h("canvas", { class: "cw-unit-icon", "aria-hidden": "true" });
    if (unitIcons && iconIndex >= 0) paintArray(icon, unitIcons, iconIndex);
    else icon.classList.add("cw-unit-icon-missing");
    const line = h("span", { class: "cw-unit-line" }, [
      h("span", { class: "cw-unit-number", text: `unit ${unit}` }),
      h("span", { class: "cw-card-value", text: formatValue(value) }),
    ]);
    const button = h("button", { class: "cw-unit-open", type: "button", title: `open unit ${unit}` }, [
      icon,
      h("span", { class: "cw-unit-text" }, [line, bar]),
    ]);
    button.dataset.unit = String(unit);
    return h("li", { class: "cw-card-unit" }, [button]);
  }

  function draw(position, pinned) {
    const grid = model.get("grid") || [];
    const topUnits = decodeArray(model.get("top_units"));
    const topValues = decodeArray(model.get("top_values"));
    const attribution = decodeArray(model.get("attribution"));
    const names = model.get("classes") || [];
    const shown = position && grid.length === 2 && topUnits && position[0] < grid[0] && position[1] < grid[1];
    element.classList.toggle("cw-card-empty", !shown);
    if (!shown) {
      title.textContent = "no position chosen";
      hint.textContent = "hover a position of the grid (or click it, or move with the arrow keys) to see its strongest units and classes";
      hint.hidden = false;
      units.replaceChildren();
      classes.replaceChildren();
      classesTitle.hidden = true;
      return;
    }
    hint.hidden = true;
    const index = position[0] * grid[1] + position[1];
    title.textContent = `position (${position[0]}, ${position[1]}) of ${model.get("layer")}${pinned ? " · selected" : ""}`;
    const ids = row(topUnits, index);
    const values = row(topValues, index);
    const dictionary = model.get("dictionary_units") || [];
    const unitIcons = decodeArray(model.get("unit_icons"));
    const limit = extent(topValues ? Array.from(topValues.data) : []); // one scale for every position
    const signed = topValues ? Array.from(topValues.data).some((v) => v < 0) : false;
    const bars = scoreBars(values, UNIT_TRACK_PX, fixedBars(values, limit, { signed }));
    units.replaceChildren(...ids.map((unit, i) => unitRow(unit, values[i], bars[i], dictionary.indexOf(unit), unitIcons)));

    const scores = row(attribution, index);
    classesTitle.hidden = !scores.length;
    const scale = extent(attribution ? Array.from(attribution.data) : []);
    const classBars = scoreBars(scores, TRACK_PX, fixedBars(scores, scale, { signed: true }));
    classes.replaceChildren(
      ...scores.map((score, i) =>
        h("li", { class: `cw-card-class${score < 0 ? " cw-away" : ""}` }, [
          h("span", { class: "cw-class-name", text: String(names[i] ?? `class ${i}`), title: String(names[i] ?? "") }),
          classBars[i],
          h("span", { class: "cw-card-value", text: formatValue(score, { signed: true }) }),
        ]),
      ),
    );
  }

  return { element, draw };
}
