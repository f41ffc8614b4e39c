"""The Lab dashboard in a real JupyterLab, rendered by headless Chromium: the tabs, what the probe
charts draw (SVG marks measured against Python's numbers, pixels on the screen in the light and
dark themes), and a click on a bar that opens the neuron in the explorer tab."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .harness import LabNotebook

pytestmark = pytest.mark.browser

CELLS = [
    "import json\n"
    "import numpy as np\n"
    "from clip_widgets import Lab, ModelSession\n"
    "from clip_widgets.probe import sparse_probe\n"
    "from clip_widgets.world import draw_scene\n"
    "session = ModelSession.load('tiny-vit')\n"
    "rng = np.random.default_rng(1)\n"
    "labels = rng.integers(0, 2, 300)\n"
    "features = rng.normal(size=(300, 64))\n"
    "features[:, 9] += 2.0 * (labels == 1)\n"
    "path = sparse_probe(features, labels, ['no', 'yes'], Cs=[0.001, 0.1, 10.0], progress=False)\n"
    "lab = Lab(session, draw_scene(2, size=64).image, ['a red circle', 'a blue star'], probe=path,\n"
    "          probe_layer='blocks.1', steps=2, facets=1, vocabulary=['red'])\n"
    "lab.probe.class_picker.value = 'yes'\n"
    "display(lab)",
    # 1: what the charts were given
    "c = lab.probe.charts\n"
    "print(json.dumps({'units': c.units, 'weights': c.weights, 'neurons': c.neurons.tolist(),\n"
    "                  'accuracy': c.accuracy.tolist(), 'step': c.step, 'curve_title': c.curve_title,\n"
    "                  'bars_title': c.bars_title}))",
    # 2: after the click on a bar
    "lab.explorer.wait(60)\nprint(json.dumps({'tab': lab.selected_index, 'layer': lab.explorer.layer, "
    "'unit': lab.explorer.unit, 'error': lab.probe.error}))",
]

# Every mark of both charts, in screen pixels (getBoundingClientRect), with the text they show.
CHART_MARKS = """root => {
  const box = el => { const b = el.getBoundingClientRect();
    return {x: b.x, y: b.y, width: b.width, height: b.height, cx: b.x + b.width / 2, cy: b.y + b.height / 2}; };
  const bars = root.querySelector('.cw-bar-chart'), curve = root.querySelector('.cw-curve-chart');
  const ticks = (chart, sel) => [...chart.querySelectorAll(sel)].map(g => ({
    label: g.querySelector('text').textContent, line: box(g.querySelector('line'))}));
  return {
    bars: [...bars.querySelectorAll('rect.cw-bar')].map(r => ({
      unit: Number(r.dataset.unit), negative: r.classList.contains('cw-negative'), ...box(r),
      fill: getComputedStyle(r).fill})),
    zero: box(bars.querySelector('.cw-zero')),
    barTicks: ticks(bars, '.cw-tick'),
    unitLabels: [...bars.querySelectorAll('.cw-bar-unit')].map(t => t.textContent),
    valueLabels: [...bars.querySelectorAll('.cw-bar-value')].map(t => t.textContent),
    barsTitle: bars.querySelector('.cw-chart-title').textContent,
    curveTitle: curve.querySelector('.cw-chart-title').textContent,
    titleFill: getComputedStyle(bars.querySelector('.cw-chart-title')).fill,
    axisTitles: [...root.querySelectorAll('.cw-axis-title')].map(t => t.textContent),
    path: curve.querySelector('path.cw-line').getAttribute('d'),
    lineStroke: getComputedStyle(curve.querySelector('path.cw-line')).stroke,
    points: [...curve.querySelectorAll('circle.cw-point')].map(c => ({
      index: Number(c.dataset.index), current: c.classList.contains('cw-current'), ...box(c)})),
    xTicks: ticks(curve, '.cw-x-tick'),
    yTicks: ticks(curve, '.cw-y-tick'),
  };
}"""

# Elements from the probe view up to the notebook's output area that scroll sideways.
SIDEWAYS_SCROLL = """root => {
  const wide = [];
  for (let el = root; el && !el.classList.contains('jp-OutputArea'); el = el.parentElement) {
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'hidden') {
      wide.push(`${el.className}: ${el.scrollWidth} > ${el.clientWidth}`);
    }
  }
  return wide;
}"""


def rgb(css: str) -> np.ndarray:
    """``rgb(25, 118, 210)`` as an array of three numbers."""
    return np.array([float(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3]])


def shot(page, locator, name: str, tmp_path: Path) -> np.ndarray:
    """A screenshot of ``locator`` as (H, W, 3) pixels, also saved as ``name``.png."""
    folder = Path(os.environ.get("CLIP_WIDGETS_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    png = locator.screenshot(path=str(folder / f"{name}.png"))
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float)


def pixels_like(image: np.ndarray, colour: np.ndarray, tolerance: float = 12) -> int:
    return int((np.abs(image - colour).max(-1) <= tolerance).sum())


def tick_scale(ticks: list[dict], along: str) -> tuple[float, float]:
    """Screen pixels per data unit and the screen position of 0, from the grid lines and their labels."""
    values = [float(t["label"]) for t in ticks]
    places = [t["line"][along] for t in ticks]
    per_unit = (places[-1] - places[0]) / (values[-1] - values[0])
    return per_unit, places[0] - values[0] * per_unit


def set_theme(page, theme: str) -> None:
    page.evaluate("theme => window.jupyterapp.commands.execute('apputils:change-theme', {theme})", theme)
    light = "true" if "Light" in theme else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
    page.wait_for_timeout(500)


def check_drawn_marks(marks: dict, data: dict) -> None:
    """The SVG marks say what Python's numbers say, to within a pixel."""
    units, weights = data["units"], data["weights"]
    assert len(units) == 10 and any(w < 0 for w in weights) and any(w > 0 for w in weights), data
    assert [bar["unit"] for bar in marks["bars"]] == units
    assert marks["unitLabels"] == [f"unit {u}" for u in units]
    for label, weight in zip(marks["valueLabels"], weights, strict=True):
        assert float(label) == pytest.approx(weight, rel=5e-3, abs=1e-4), (label, weight)
    # bar lengths are the weights on the numbered axis; negative bars end at the zero line
    per_unit, zero_at = tick_scale(marks["barTicks"], "cx")
    assert per_unit > 0 and abs(zero_at - marks["zero"]["cx"]) <= 1, (zero_at, marks["zero"])
    for bar, weight in zip(marks["bars"], weights, strict=True):
        assert abs(bar["width"] - abs(weight) * per_unit) <= 1, (bar, weight, per_unit)
        assert bar["negative"] == (weight < 0)
        start, end = bar["x"], bar["x"] + bar["width"]
        if weight < 0:  # ends at zero, so it lies on the other side of the zero line
            assert abs(end - zero_at) <= 1 and (start < zero_at - 1 or bar["width"] < 2), (bar, zero_at)
        else:
            assert abs(start - zero_at) <= 1 and (end > zero_at + 1 or bar["width"] < 2), (bar, zero_at)
    heights = {round(bar["height"], 1) for bar in marks["bars"]}
    assert len(heights) == 1 and heights.pop() > 5  # one thickness, visible
    assert marks["barsTitle"] == data["bars_title"] == "Strongest weights for “yes” at C = 0.1"
    assert marks["curveTitle"] == data["curve_title"] == "Held-out accuracy vs neurons used"
    assert marks["axisTitles"] == ["neurons used", "held-out accuracy", "weight"]  # curve first

    # the curve: one path command and one marker per probe, each at its (neurons, accuracy)
    commands = marks["path"].replace("M", "|").replace("L", "|").strip("|").split("|")
    assert len(commands) == len(marks["points"]) == len(data["neurons"]) == 3, marks["path"]
    x_per_unit, x_zero = tick_scale(marks["xTicks"], "cx")
    y_per_unit, y_zero = tick_scale(marks["yTicks"], "cy")
    for point in marks["points"]:
        i = point["index"]
        assert abs(point["cx"] - (x_zero + data["neurons"][i] * x_per_unit)) <= 1, (point, data)
        assert abs(point["cy"] - (y_zero + data["accuracy"][i] * y_per_unit)) <= 1, (point, data)
    assert [p["index"] for p in marks["points"] if p["current"]] == [data["step"]]


def check_pixels(page, view, marks: dict, name: str, tmp_path: Path, *, dark: bool) -> None:
    """The screen shows the bars and the curve in their colours on a background of the theme."""
    bars = shot(page, view.locator(".cw-bar-chart"), f"{name}-bars", tmp_path)
    curve = shot(page, view.locator(".cw-curve-chart"), f"{name}-curve", tmp_path)
    for sign in (False, True):
        drawn = [bar for bar in marks["bars"] if bar["negative"] == sign]
        area = sum(bar["width"] * bar["height"] for bar in drawn)
        found = pixels_like(bars, rgb(drawn[0]["fill"]))
        assert area > 100 and found >= 0.6 * area, (name, sign, found, area)
    assert pixels_like(curve, rgb(marks["lineStroke"])) > 150, name
    background = np.median(bars.reshape(-1, 3), axis=0)  # most of a chart is its background
    if dark:
        assert background.mean() < 80, f"{name}: plot area {background} is not dark"
        assert rgb(marks["titleFill"]).mean() > 150, marks["titleFill"]  # light text on it
    else:
        assert background.mean() > 200, f"{name}: plot area {background} is not light"
        assert rgb(marks["titleFill"]).mean() < 100, marks["titleFill"]
    shot(page, page.locator(".jp-OutputArea-output .widget-tab").first, f"{name}-tab", tmp_path)


def test_lab_dashboard_in_jupyterlab(page, lab_server, tmp_path):
    notebook = LabNotebook(page, lab_server, "lab_dashboard", CELLS, timeout=180)
    set_theme(page, "JupyterLab Light")
    notebook.run_next()
    tabs = page.locator(".jp-OutputArea-output .lm-TabBar-tab, .jp-OutputArea-output .p-TabBar-tab")
    tabs.first.wait_for(state="visible", timeout=60_000)
    assert tabs.all_inner_texts() == ["CLIP Surgery", "Neurons", "Typographic attack", "Sparse probe"]
    page.locator(".jp-OutputArea-output .cw-surgery").first.wait_for(state="visible", timeout=60_000)

    # The probe tab: the charts draw what Python computed, measured on the screen.
    tabs.nth(3).click()
    view = page.locator(".jp-OutputArea-output .cw-probe").first
    view.locator("rect.cw-bar").first.wait_for(state="visible", timeout=60_000)
    data = json.loads(notebook.run_next().splitlines()[0])
    marks = view.evaluate(CHART_MARKS)
    check_drawn_marks(marks, data)
    assert view.evaluate(SIDEWAYS_SCROLL) == []
    check_pixels(page, view, marks, "probe-light", tmp_path, dark=False)

    # Dark theme: the same marks in the dark theme's colours, on a dark plot area.
    set_theme(page, "JupyterLab Dark")
    dark_marks = view.evaluate(CHART_MARKS)
    assert rgb(dark_marks["bars"][0]["fill"]).tolist() != rgb(marks["bars"][0]["fill"]).tolist()
    check_drawn_marks(dark_marks, data)
    check_pixels(page, view, dark_marks, "probe-dark", tmp_path, dark=True)
    set_theme(page, "JupyterLab Light")  # the theme is a user setting shared by the session's tests

    # A click on the top bar opens its neuron in the explorer tab.
    view.locator(".cw-bar-row").first.click()
    page.locator(".jp-OutputArea-output .cw-neuron").first.wait_for(state="visible", timeout=60_000)
    state = json.loads(notebook.run_next().splitlines()[0])
    assert state == {"tab": 1, "layer": "blocks.1", "unit": data["units"][0], "error": ""} and data["units"][0] == 9
    page.wait_for_function(  # the explorer tab shows that neuron
        "() => document.querySelector('.cw-neuron .cw-unit')?.value === '9'"
        " && document.querySelector('.cw-neuron .cw-layer')?.value === 'blocks.1'",
        timeout=30_000,
    )
    assert not [e for e in page.console_errors if "cw-" in e or "probe" in e.lower()], page.console_errors
