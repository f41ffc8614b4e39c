"""TypographicLab in a real JupyterLab, rendered by headless Chromium: drag the word, read the bars,
switch to a patch and see it pasted where Python says.

Set ``CLIP_WIDGETS_SCREENSHOTS`` to a folder to keep the screenshot of patch mode."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .harness import LabNotebook

pytestmark = pytest.mark.browser

HOSTILE_CLASS = '<b onmouseover="window.__injected = 1">an ipod</b>'
CELLS = [
    "import json\n"
    "from clip_widgets import ModelSession, TypographicLab\n"
    "from clip_widgets.world import draw_scene\n"
    "session = ModelSession.load('tiny-vit')\n"
    f"lab = TypographicLab(session, draw_scene(3, size=128).image, ['a red circle', {HOSTILE_CLASS!r}],\n"
    "                     text='ipod', layer='blocks.1', units=3,\n"
    "                     patches={'a red circle': draw_scene(8, size=32, spec=[('red', 'circle')]).image})\n"
    "display(lab)",
    "print(json.dumps({'position': lab.position, 'text': lab.text, 'probs': lab.attacked_probs}))",
    "lab.text = ''",
    "print(json.dumps({'mode': lab.mode, 'corner': lab.used_corner, 'size': lab.patch_size}))",
]

DIFFERENCE = """([a, b]) => {
  const read = c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const x = read(a), y = read(b); let n = 0;
  for (let i = 0; i < x.length; i += 4) if (x[i] !== y[i] || x[i + 1] !== y[i + 1]) n++;
  return n;
}"""

# pixels that differ between canvases a and b inside the square [left, top, side], and outside it
DIFFERENCE_IN_BOX = """([a, b, left, top, side]) => {
  const read = c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const x = read(a), y = read(b); let inside = 0, outside = 0;
  for (let i = 0; i < x.length; i += 4) {
    if (x[i] === y[i] && x[i + 1] === y[i + 1] && x[i + 2] === y[i + 2]) continue;
    const p = i / 4, col = p % a.width, row = Math.floor(p / a.width);
    if (col >= left && col < left + side && row >= top && row < top + side) inside++; else outside++;
  }
  return [inside, outside];
}"""

COPY_CANVAS = """id => { const c = document.querySelector('.cw-typographic .cw-typo-canvas');
  const copy = document.createElement('canvas'); copy.width = c.width; copy.height = c.height;
  copy.getContext('2d').drawImage(c, 0, 0); copy.id = id; document.body.append(copy); }"""


def test_typographic_lab_in_jupyterlab(page, lab_server, tmp_path):
    notebook = LabNotebook(page, lab_server, "typographic_lab", CELLS, timeout=180)
    notebook.run_next()
    widget = page.locator(".cw-typographic").first
    widget.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("() => document.querySelector('.cw-typographic .cw-typo-canvas').width === 128")
    # Both classes as text (never parsed as HTML), with a probability before and after.
    names = widget.locator(".cw-class-name").all_inner_texts()
    assert names == ["a red circle", HOSTILE_CLASS]
    assert widget.locator(".cw-probs b").count() == 0
    assert len(widget.locator(".cw-units li").all_inner_texts()) == 3

    # Keep a copy of the picture, then drag the word to the top-left corner.
    page.evaluate(
        "() => { const c = document.querySelector('.cw-typographic .cw-typo-canvas');"
        " const copy = document.createElement('canvas'); copy.width = c.width; copy.height = c.height;"
        " copy.getContext('2d').drawImage(c, 0, 0); copy.id = 'before'; document.body.append(copy); }"
    )
    canvas = widget.locator(".cw-typo-canvas")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.2, steps=5)
    page.mouse.up()
    page.wait_for_timeout(800)
    state = json.loads(notebook.run_next().splitlines()[0])
    assert abs(state["position"][0] - 0.25) < 0.05 and abs(state["position"][1] - 0.2) < 0.05, state
    # Python wrote the word at its new place and the browser shows that picture
    changed = page.evaluate(DIFFERENCE, [page.query_selector("#before"), canvas.element_handle()])
    assert changed > 100, changed
    shown = [float(v) for v in widget.locator(".cw-probs td:nth-child(3) .cw-prob").all_inner_texts()]
    assert shown == pytest.approx(state["probs"], abs=1e-3)
    assert page.evaluate("() => window.__injected") is None

    # No word: the canvas shows the clean picture; keep a copy, then switch to patch mode.
    notebook.run_next()
    page.wait_for_timeout(800)
    page.evaluate(COPY_CANVAS, "clean")
    assert widget.locator(".cw-patch-controls").is_hidden()
    widget.locator(".cw-mode-patch").click()
    page.wait_for_function("() => document.querySelector('.cw-typographic .cw-corner-used').innerText.length > 0")
    page.wait_for_timeout(300)
    state = json.loads(notebook.run_next().splitlines()[0])
    assert state["mode"] == "patch" and state["corner"] in ("top-left", "top-right", "bottom-left", "bottom-right")
    side = round(state["size"] * 128)
    left, top = (128 - side if "right" in state["corner"] else 0), (128 - side if "bottom" in state["corner"] else 0)
    inside, outside = page.evaluate(DIFFERENCE_IN_BOX, [page.query_selector("#clean"), canvas.element_handle(),
                                                        left, top, side])  # fmt: skip
    assert inside > 0.5 * side * side and outside == 0, (inside, outside, state)  # the patch, and only the patch
    assert state["corner"] in widget.locator(".cw-corner-used").inner_text()
    assert widget.locator(".cw-patch-class").input_value() == "a red circle"
    assert widget.locator(".cw-patch-thumb").is_visible() and widget.locator(".cw-word-controls").is_hidden()
    assert widget.locator(".cw-probs th").nth(2).inner_text() == "with the patch"
    folder = Path(os.environ.get("CLIP_WIDGETS_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    widget.screenshot(path=str(folder / "typographic-patch.png"), animations="disabled")
    assert not [e for e in page.console_errors if "cw-" in e or "typographic" in e.lower()], page.console_errors
