// ProbeExplorer's charts: held-out accuracy against the neurons a probe uses along the sparse-to-dense
// path, and the chosen class's strongest weights as signed bars. Drawn here as SVG with the theme's
// colours (no plotting library: nothing to load, nothing that breaks offline). A click on a bar asks
// Python to open that neuron; a click on a point of the curve moves the slider to that probe.
import "./probe.css";
import { barChart, curveChart } from "./charts.js";
import { decodeArray } from "./codecs.js";
import { h } from "./dom.js";
import { errorBanner, subscribe } from "./kit.js";

/** The numbers of a synced `{view, dtype, shape}` array as a plain list (empty when unset). */
function numbers(value) {
  const array = decodeArray(value);
  return array ? Array.from(array.data) : [];
}

function render({ model, el }) {
  el.classList.add("cw-probe");
  const banner = errorBanner(model);
  const curveBox = h("div", { class: "cw-chart-box cw-curve-box" });
  const barsBox = h("div", { class: "cw-chart-box cw-bars-box" });
  el.replaceChildren(banner.el, h("div", { class: "cw-charts" }, [curveBox, barsBox]));

  function drawCurve() {
    curveBox.replaceChildren(curveChart({
      title: model.get("curve_title"),
      xs: numbers(model.get("neurons")),
      ys: numbers(model.get("accuracy")),
      current: model.get("step"),
      xTitle: "neurons used",
      yTitle: "held-out accuracy",
    }));
  }

  function drawBars() {
    const units = model.get("units") || [];
    const weights = model.get("weights") || [];
    const items = units.slice(0, weights.length).map((unit, i) => ({ unit, value: Number(weights[i]) }));
    barsBox.replaceChildren(barChart({
      title: model.get("bars_title"),
      items,
      empty: "no neuron has a weight for this class here",
    }));
  }

  function openUnit(row) {
    if (row) model.send({ type: "open", unit: Number(row.dataset.unit) });
  }

  barsBox.addEventListener("click", (event) => openUnit(event.target.closest?.(".cw-bar-row")));
  barsBox.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    event.preventDefault(); // a space would scroll the notebook
    openUnit(event.target.closest?.(".cw-bar-row"));
  });
  curveBox.addEventListener("click", (event) => {
    const point = event.target.closest?.(".cw-point");
    if (!point) return;
    model.set("step", Number(point.dataset.index));
    model.save_changes();
  });

  const handlers = [
    ["change:neurons change:accuracy change:step change:curve_title", drawCurve],
    ["change:units change:weights change:bars_title", drawBars],
    ["change:error", banner.update],
  ];
  const unsubscribe = subscribe(model, handlers);
  drawCurve();
  drawBars();
  banner.update();
  return () => {
    unsubscribe();
  };
}

export default { render };
