"""SurgeryWidget in a real JupyterLab, rendered by headless Chromium: what a person would see."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .harness import LabNotebook

pytestmark = pytest.mark.browser

HOSTILE_LABEL = '<img src=x onerror="window.__injected = 1">'
CELLS = [
    # 0: the widget, and what Python knows about the image it shows
    "import json\n"
    "from skimage import data\n"
    "from clip_widgets import ModelSession, SurgeryWidget\n"
    "session = ModelSession.load('small-vit')\n"
    f"w = SurgeryWidget(session, data.astronaut(), ['face', 'rocket', {HOSTILE_LABEL!r}], max_side=256, selected=0,\n"
    "                   threshold=0.05)\n"
    "print(json.dumps({'mean': w.image.reshape(-1, 3).mean(0).tolist(), 'shape': list(w.image.shape)}))\n"
    "display(w)",
    # 1: browser edits reached Python
    "print(json.dumps({'selected': w.selected, 'threshold': w.threshold, 'labels': w.labels, 'method': w.method,\n"
    "                  'result': w.result.method, 'compare': w.compare}))",
    # 2: Python edits reach the browser
    "w.labels = w.labels + ['helmet']\nw.method, w.compare = 'raw', 'surgery'\nw.threshold = 0.3\nw.show_points = True",
    # 3: a failure shows in the widget, and the widget keeps working
    "def broken(*a, **k):\n    raise RuntimeError('text tower unavailable')\n"
    "session.encode_text, saved = broken, session.encode_text\n"
    "try:\n    w.labels = ['cat', 'dog']  # from Python a failure raises, and shows in the widget too\n"
    "except RuntimeError as e:\n    print('raised', e)",
    # 4: recovery
    "session.encode_text = saved\nw.labels = ['face', 'rocket']\nprint(repr(w.error))",
]

CANVAS_STATS = """canvas => {
  const ctx = canvas.getContext('2d');
  const {data} = ctx.getImageData(0, 0, canvas.width, canvas.height);
  let sum = [0, 0, 0], opaque = 0, hash = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0) { opaque++; sum[0] += data[i]; sum[1] += data[i + 1]; sum[2] += data[i + 2]; }
    hash = (hash * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2] + 17 * data[i + 3]) >>> 0;
  }
  const n = Math.max(opaque, 1);
  return {width: canvas.width, height: canvas.height, opaque: opaque / (data.length / 4),
          mean: sum.map(s => s / n), hash};
}"""


OVERLAY = ".cw-surgery .cw-pane-{} .cw-overlay"
# true once the overlay shows heat whose pixels hash to something other than `hash` (a method
# whose maps are still being computed leaves it empty)
OVERLAY_CHANGED = (
    "([selector, hash]) => { const c = document.querySelector(selector);"
    " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
    " let x = 0, drawn = false; for (let i = 0; i < d.length; i += 4) {"
    " x = (x * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2] + 17 * d[i + 3]) >>> 0; drawn ||= d[i + 3] > 0; }"
    " return drawn && x !== hash; }"
)


def screenshot(page, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("CLIP_WIDGETS_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.locator(".cw-surgery").first.screenshot(path=str(path))
    return path


def legend_numbers(pane) -> tuple[float, float]:
    """The values at the two ends of a pane's colour bar ("≤ " marks a floor)."""
    low, high = pane.locator(".cw-legend-low").inner_text(), pane.locator(".cw-legend-high").inner_text()
    return float(low.removeprefix("≤ ")), float(high)


def test_surgery_widget_in_jupyterlab(page, lab_server, tmp_path):
    notebook = LabNotebook(page, lab_server, "surgery_widget", CELLS)
    info = json.loads(notebook.run_next().splitlines()[0])
    widget = page.locator(".cw-surgery").first
    widget.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("() => document.querySelector('.cw-surgery .cw-overlay')?.width > 1")

    # The image: the canvas holds Python's pixels.
    base = page.eval_on_selector(".cw-surgery .cw-base", CANVAS_STATS)
    assert [base["height"], base["width"]] == info["shape"][:2]
    assert base["opaque"] == 1.0
    for shown, expected in zip(base["mean"], info["mean"], strict=True):
        assert abs(shown - expected) < 1.0

    # The label list, as text: label HTML is never parsed.
    texts = widget.locator(".cw-label-text").all_inner_texts()
    assert texts == ["face", "rocket", HOSTILE_LABEL]
    assert widget.locator(".cw-labels img").count() == 0
    assert page.evaluate("() => window.__injected") is None
    assert widget.locator(".cw-label.cw-selected .cw-label-text").inner_text() == "face"
    shown = widget.locator(".cw-pane-method")
    assert shown.locator(".cw-legend-caption").inner_text() == "CLIP Surgery: face"
    assert widget.locator(".cw-pane-compare").is_hidden()  # one map at a time unless side by side
    # the legend says what the ends of the colour bar stand for, in similarity units
    low, high = shown.locator(".cw-legend-low").inner_text(), shown.locator(".cw-legend-high").inner_text()
    assert low.startswith("≤ ") and float(low[2:]) == 0.0 and float(high) > 0, (low, high)
    # the menu lists every method a ViT runs, by title
    titles = widget.locator("select.cw-method option").all_inner_texts()
    assert titles[:2] == ["raw CLIP", "CLIP Surgery"] and "NACLIP" in titles and len(titles) == 9
    first = screenshot(page, tmp_path, "surgery-light")
    assert first.stat().st_size > 5_000

    # The heatmap changes with the selected label (a click in the browser).
    overlay_face = page.eval_on_selector(".cw-surgery .cw-overlay", CANVAS_STATS)
    assert overlay_face["opaque"] > 0.05
    widget.locator(".cw-label").nth(1).click()
    page.wait_for_function(OVERLAY_CHANGED, arg=[OVERLAY.format("method"), overlay_face["hash"]])
    assert widget.locator(".cw-label.cw-selected .cw-label-text").inner_text() == "rocket"

    # Another method from the menu: Python computes its maps and the heat drawn changes.
    surgery = page.eval_on_selector(OVERLAY.format("method"), CANVAS_STATS)
    widget.locator("select.cw-method").select_option("naclip")
    page.wait_for_function(OVERLAY_CHANGED, arg=[OVERLAY.format("method"), surgery["hash"]])
    page.wait_for_function(
        "() => document.querySelector('.cw-surgery .cw-pane-method .cw-legend-caption')"
        ".textContent === 'NACLIP: rocket'"
    )
    naclip = page.eval_on_selector(OVERLAY.format("method"), CANVAS_STATS)
    assert naclip["opaque"] > 0.01 and naclip["mean"] != surgery["mean"], (naclip, surgery)
    widget.locator("select.cw-method").select_option("surgery")
    page.wait_for_function(OVERLAY_CHANGED, arg=[OVERLAY.format("method"), naclip["hash"]])

    # Dragging the threshold hides more of the map at once; Python hears of it once, debounced.
    before = page.eval_on_selector(".cw-surgery .cw-overlay", CANVAS_STATS)
    widget.locator("input.cw-threshold").fill("0.9")
    page.wait_for_function(
        "before => { const c = document.querySelector('.cw-surgery .cw-overlay');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n / (d.length / 4) < before; }",
        arg=before["opaque"],
    )
    page.wait_for_timeout(400)
    synced = json.loads(notebook.run_next().splitlines()[0])
    assert synced["selected"] == 1 and synced["threshold"] == pytest.approx(0.9)
    assert synced["method"] == synced["result"] == "surgery" and synced["compare"] == "raw"

    # Python edits appear in the browser.
    notebook.run_next()
    page.wait_for_function("() => document.querySelectorAll('.cw-surgery .cw-label').length === 4")
    assert widget.locator(".cw-label-text").nth(3).inner_text() == "helmet"
    assert widget.locator("select.cw-method").input_value() == "raw"
    assert widget.locator("select.cw-compare").input_value() == "surgery"
    assert shown.locator(".cw-legend-caption").inner_text() == "raw CLIP: rocket"
    assert widget.locator(".cw-switch").inner_text() == "⇄ show CLIP Surgery"
    points = page.eval_on_selector(".cw-surgery .cw-points", CANVAS_STATS)
    assert points["opaque"] > 0, "point prompts are drawn"

    # Errors show in the widget; the widget and kernel stay alive and recover.
    assert notebook.run_next().strip() == "raised text tower unavailable"
    error = widget.locator(".cw-error")
    error.wait_for(state="visible")
    assert "text tower unavailable" in error.inner_text()
    assert notebook.run_next().strip() == "''"
    error.wait_for(state="hidden")
    assert widget.locator(".cw-label-text").all_inner_texts() == ["face", "rocket"]

    # Dark theme: the widget follows JupyterLab's theme variables.
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
    page.wait_for_timeout(500)
    background = page.eval_on_selector(
        ".cw-surgery", "el => getComputedStyle(el).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number)"
    )
    assert sum(background) / 3 < 100, f"background {background} is not dark"
    screenshot(page, tmp_path, "surgery-dark")
    assert not [e for e in page.console_errors if "cw-" in e or "surgery" in e.lower()], page.console_errors


SCENE_CELLS = [
    # 0: a world scene on the embedded world-vit, CLIP Surgery compared with raw CLIP
    "import json\n"
    "import numpy as np\n"
    "from clip_widgets import ModelSession, SurgeryWidget\n"
    "from clip_widgets.world import draw_scene\n"
    "scene = draw_scene(np.random.default_rng(3), spec=[('red', 'star'), ('blue', 'circle')], word_probability=0.0)\n"
    "w = SurgeryWidget(ModelSession.from_embedded('world-vit'), scene.image.resize((256, 256)),\n"
    "                  ['a red star', 'a blue circle', 'a green square'], display_width=300)\n"
    "display(w)",
    # 1: what the browser chose reached Python
    "print(json.dumps({'method': w.method, 'compare': w.compare, 'side_by_side': w.side_by_side,\n"
    "                  'scales': {k: [v['low'][0], v['high'][0]] for k, v in w.map_scales.items()}}))",
]


def test_two_methods_side_by_side(page, lab_server, tmp_path):
    notebook = LabNotebook(page, lab_server, "surgery_side_by_side", SCENE_CELLS)
    notebook.run_next()
    widget = page.locator(".cw-surgery").first
    widget.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("() => document.querySelector('.cw-surgery .cw-overlay')?.width > 1")
    assert widget.locator(".cw-label.cw-selected .cw-label-text").inner_text() == "a red star"

    # The switch shows the compared method in place of the shown one, at once.
    method_pane, compare_pane = widget.locator(".cw-pane-method"), widget.locator(".cw-pane-compare")
    surgery = page.eval_on_selector(OVERLAY.format("method"), CANVAS_STATS)
    widget.locator(".cw-switch").click()
    page.wait_for_function(OVERLAY_CHANGED, arg=[OVERLAY.format("method"), surgery["hash"]])
    assert method_pane.locator(".cw-legend-caption").inner_text() == "raw CLIP: a red star"
    raw = page.eval_on_selector(OVERLAY.format("method"), CANVAS_STATS)
    widget.locator(".cw-switch").click()  # and back
    page.wait_for_function(OVERLAY_CHANGED, arg=[OVERLAY.format("method"), raw["hash"]])

    # Compare with GEM, side by side: two heat canvases over two images, each with its legend.
    widget.locator("select.cw-compare").select_option("gem")
    widget.locator("input.cw-side-by-side").check()
    compare_pane.wait_for(state="visible")
    page.wait_for_function(
        "() => document.querySelector('.cw-surgery .cw-pane-compare .cw-legend-caption').textContent"
        " === 'GEM: a red star' && document.querySelector('.cw-surgery .cw-pane-compare .cw-overlay').width > 1"
    )
    assert widget.locator(".cw-switch").is_hidden()
    left = page.eval_on_selector(OVERLAY.format("method"), CANVAS_STATS)
    right = page.eval_on_selector(OVERLAY.format("compare"), CANVAS_STATS)
    assert left["opaque"] > 0.02 and right["opaque"] > 0.02, (left, right)
    assert left["hash"] != right["hash"] and left["mean"] != right["mean"]
    images = [page.eval_on_selector(f".cw-surgery .cw-pane-{r} .cw-base", CANVAS_STATS) for r in ("method", "compare")]
    assert images[0]["hash"] == images[1]["hash"] and images[0]["width"] == 256  # the same picture under both
    boxes = [pane.locator(".cw-stage").bounding_box() for pane in (method_pane, compare_pane)]
    assert boxes[1]["x"] >= boxes[0]["x"] + boxes[0]["width"], boxes  # next to each other
    assert method_pane.locator(".cw-legend-caption").inner_text() == "CLIP Surgery: a red star"
    state = json.loads(notebook.run_next().splitlines()[0])
    assert (state["method"], state["compare"], state["side_by_side"]) == ("surgery", "gem", True)
    for pane, name in ((method_pane, "surgery"), (compare_pane, "gem")):  # the legends carry Python's numbers
        low, high = legend_numbers(pane)
        assert low == pytest.approx(state["scales"][name][0], abs=1e-3), name
        assert high == pytest.approx(state["scales"][name][1], abs=1e-3) and high > low, name
    assert "similarity to the label" in compare_pane.locator(".cw-legend-note").inner_text()

    # Point prompts stay on the shown method's pane.
    widget.locator("input.cw-show-points").check()
    page.wait_for_function(
        "() => { const c = document.querySelector('.cw-surgery .cw-pane-method .cw-points');"
        " return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v > 0); }"
    )
    assert compare_pane.locator(".cw-points").count() == 0
    shot = screenshot(page, tmp_path, "surgery-side-by-side")
    assert shot.stat().st_size > 5_000
    assert not [e for e in page.console_errors if "cw-" in e or "surgery" in e.lower()], page.console_errors
