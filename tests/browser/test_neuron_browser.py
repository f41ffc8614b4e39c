"""NeuronExplorer in a real JupyterLab, rendered by headless Chromium: what a person would see."""

from __future__ import annotations

import json

import pytest

from .harness import LabNotebook

pytestmark = pytest.mark.browser

HOSTILE_WORD = '<img src=x onerror="window.__injected = 1">'
CELLS = [
    # 0: examples over a few scenes, then the widget
    "import json, tempfile\n"
    "from clip_widgets import ModelSession, NeuronExplorer, collect_examples\n"
    "from clip_widgets.world import draw_scene\n"
    "session = ModelSession.load('small-vit')\n"
    "scenes = tempfile.mkdtemp()\n"
    "for i in range(16):\n"
    "    draw_scene(i, size=96).image.save(f'{scenes}/{i:02d}.png')\n"
    "store = collect_examples(session, scenes, ['blocks.1'], tempfile.mkdtemp(), k=4, progress=False)\n"
    f"w = NeuronExplorer(session, 'blocks.1', 0, examples=store, steps=16, facets=3, example_count=4,\n"
    f"                   vocabulary=['red', 'star', {HOSTILE_WORD!r}])\n"
    "w.wait(120)\n"
    "display(w)",
    # 1: what Python holds after the browser's edits
    "w.wait(120)\nprint(json.dumps({'layer': w.layer, 'unit': w.unit, 'error': w.error}))",
    # 2: after the query button click
    "w.wait(120)\nprint(json.dumps({'unit': w.unit, 'results': w.query_results}))",
]

CANVAS_SPREAD = """canvas => {
  const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let min = 255, max = 0;
  for (let i = 0; i < data.length; i += 4) { const v = data[i] + data[i + 1] + data[i + 2];
    min = Math.min(min, v / 3); max = Math.max(max, v / 3); }
  return {width: canvas.width, height: canvas.height, spread: max - min};
}"""


def test_neuron_explorer_in_jupyterlab(page, lab_server):
    notebook = LabNotebook(page, lab_server, "neuron_explorer", CELLS, timeout=180)
    notebook.run_next()
    widget = page.locator(".cw-neuron").first
    widget.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("() => document.querySelector('.cw-neuron .cw-featvis')?.width > 1")

    # The feature visualization and its facets are pictures, not blank canvases.
    main = page.eval_on_selector(".cw-neuron .cw-featvis", CANVAS_SPREAD)
    assert main["width"] == 224 and main["spread"] > 20
    assert widget.locator(".cw-facet").count() == 2
    # Dataset examples with their values; the top words as text, never parsed as HTML.
    assert widget.locator(".cw-example").count() == 4
    assert all(float(v) for v in widget.locator(".cw-example figcaption").all_inner_texts())
    words = widget.locator(".cw-word-text").all_inner_texts()
    assert sorted(words) == sorted(["red", "star", HOSTILE_WORD])
    assert widget.locator(".cw-words img").count() == 0
    assert page.evaluate("() => window.__injected") is None
    assert widget.locator("select.cw-layer").input_value() == "blocks.1"

    # Arrow keys on the focused widget move between units (right) and layers (down), debounced to Python.
    widget.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('.cw-neuron .cw-unit').value === '2'")
    page.wait_for_timeout(500)
    state = json.loads(notebook.run_next().splitlines()[0])
    assert state == {"layer": "blocks.1", "unit": 2, "error": ""}

    # A text query lists units; clicking one shows it.
    query = widget.locator("input.cw-query")
    query.fill("a red star")
    query.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('.cw-neuron .cw-query-unit').length > 0")
    button = widget.locator(".cw-query-unit").nth(1)
    chosen = int(button.inner_text())
    button.click()
    page.wait_for_timeout(500)
    picked = json.loads(notebook.run_next().splitlines()[0])
    assert picked["unit"] == chosen == picked["results"][1][0]

    # Dark theme: the widget follows JupyterLab's theme variables.
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
    page.wait_for_timeout(500)
    background = page.eval_on_selector(
        ".cw-neuron", "el => getComputedStyle(el).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number)"
    )
    assert sum(background) / 3 < 100, f"background {background} is not dark"
    assert not [e for e in page.console_errors if "cw-" in e or "neuron" in e.lower()], page.console_errors
