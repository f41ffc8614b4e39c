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
    "print(json.dumps({'selected': w.selected, 'threshold': w.threshold, 'labels': w.labels}))",
    # 2: Python edits reach the browser
    "w.labels = w.labels + ['helmet']\nw.mode = 'raw'\nw.threshold = 0.3\nw.show_points = True",
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


def screenshot(page, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("CLIP_WIDGETS_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.locator(".cw-surgery").first.screenshot(path=str(path))
    return path


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
    assert "face" in widget.locator(".cw-legend-caption").inner_text()
    # the legend says what the ends of the colour bar stand for, in similarity units
    low, high = widget.locator(".cw-legend-low").inner_text(), widget.locator(".cw-legend-high").inner_text()
    assert low.startswith("≤ ") and float(low[2:]) == 0.0 and float(high) > 0, (low, high)
    first = screenshot(page, tmp_path, "surgery-light")
    assert first.stat().st_size > 5_000

    # The heatmap changes with the selected label (a click in the browser).
    overlay_face = page.eval_on_selector(".cw-surgery .cw-overlay", CANVAS_STATS)
    assert overlay_face["opaque"] > 0.05
    widget.locator(".cw-label").nth(1).click()
    page.wait_for_function(
        "h => { const c = document.querySelector('.cw-surgery .cw-overlay');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let x = 0; for (let i = 0; i < d.length; i += 4)"
        " x = (x * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2] + 17 * d[i + 3]) >>> 0; return x !== h; }",
        arg=overlay_face["hash"],
    )
    assert widget.locator(".cw-label.cw-selected .cw-label-text").inner_text() == "rocket"

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

    # Python edits appear in the browser.
    notebook.run_next()
    page.wait_for_function("() => document.querySelectorAll('.cw-surgery .cw-label').length === 4")
    assert widget.locator(".cw-label-text").nth(3).inner_text() == "helmet"
    assert widget.locator("select.cw-mode").input_value() == "raw"
    assert "raw CLIP" in widget.locator(".cw-legend-caption").inner_text()
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
