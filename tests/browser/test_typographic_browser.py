"""TypographicLab in a real JupyterLab, rendered by headless Chromium: drag the word, read the bars."""

from __future__ import annotations

import json

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
    "                     text='ipod', layer='blocks.1', units=3)\n"
    "display(lab)",
    "print(json.dumps({'position': lab.position, 'text': lab.text, 'probs': lab.attacked_probs}))",
]

DIFFERENCE = """([a, b]) => {
  const read = c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const x = read(a), y = read(b); let n = 0;
  for (let i = 0; i < x.length; i += 4) if (x[i] !== y[i] || x[i + 1] !== y[i + 1]) n++;
  return n;
}"""


def test_typographic_lab_in_jupyterlab(page, lab_server):
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
    assert not [e for e in page.console_errors if "cw-" in e or "typographic" in e.lower()], page.console_errors
