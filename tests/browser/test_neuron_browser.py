"""NeuronExplorer in a real JupyterLab, rendered by headless Chromium: what a person would see.

Set ``CLIP_WIDGETS_SCREENSHOTS`` to a folder to keep the screenshots taken along the way."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .harness import LabNotebook

pytestmark = pytest.mark.browser

HOSTILE_WORD = '<img src=x onerror="window.__injected = 1">'
STATE = "print(json.dumps({'layer': w.layer, 'unit': w.unit, 'error': w.error, 'words': w.top_words, "
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
    "                   fine_steps=24, fine_views=2,\n"
    f"                   vocabulary=['red', 'star', 'blue', 'circle', {HOSTILE_WORD!r}])\n"
    "w.wait(120)\n"
    "display(w)",
    # 1: what Python holds after the browser's edits
    "w.wait(120)\n" + STATE + "'baseline': w.word_baseline}))",
    # 2: a busy kernel: the browser's next change waits, so what it marks stale stays marked
    "import time\ntime.sleep(4)",
    # 3: after the bottom toggle
    "w.wait(120)\nbottom = [e.source for e in store.examples('blocks.1', w.unit, 'bottom')[:4]]\n"
    "print(json.dumps({'set': w.example_set, 'unit': w.unit, 'is_bottom': w.example_sources == bottom}))",
    # 4: after the query button click
    "w.wait(120)\nprint(json.dumps({'unit': w.unit, 'results': w.query_results, 'heading': w.query_heading}))",
    # 5: after a layer switch in the browser
    "w.wait(120)\nprint(json.dumps({'layer': w.layer, 'results': w.query_results}))",
    # 6: a query and a layer set from Python
    "w.layer = 'blocks.1'\nw.query = 'blue circle'\nw.wait(120)",
    # 7: after a typed unit outside the layer
    "w.wait(120)\n" + STATE + "'count': w.unit_count}))",
    # 8: after the "fine" button
    "w.wait(120)\nprint(json.dumps({'detail': w.detail, 'drawn_with': w.drawn_with, 'error': w.error}))",
]

CANVAS_SPREAD = """canvas => {
  const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let min = 255, max = 0, hash = 0;
  for (let i = 0; i < data.length; i += 4) { const v = data[i] + data[i + 1] + data[i + 2];
    min = Math.min(min, v / 3); max = Math.max(max, v / 3); hash = (hash * 31 + v) % 1000000007; }
  return {width: canvas.width, height: canvas.height, spread: max - min, hash};
}"""

# Pixels of the outline's colour (#35e0ff) on the whole-image canvas.
OUTLINE_PIXELS = """canvas => {
  const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - 0x35) < 30 && Math.abs(data[i + 1] - 0xe0) < 30 && data[i + 2] > 220) n++;
  }
  return n;
}"""

# Each top word's bar: where its end sits on the track (px), and the track's width and tick.
BAR_GEOMETRY = """ol => [...ol.querySelectorAll('.cw-word')].map(li => {
  const track = li.querySelector('.cw-track').getBoundingClientRect();
  const bar = li.querySelector('.cw-bar').getBoundingClientRect();
  const zero = li.querySelector('.cw-zero').getBoundingClientRect();
  const negative = li.querySelector('.cw-bar').classList.contains('cw-negative');
  return {word: li.querySelector('.cw-word-text').textContent, track: track.width,
          zero: zero.left - track.left, end: (negative ? bar.left : bar.right) - track.left};
})"""

# Click "next unit" and read the visualization's state in the same task, before any reply.
CLICK_NEXT_AND_READ = """() => {
  const root = document.querySelector('.cw-neuron');
  root.querySelector('.cw-next').click();
  return {visualization: root.querySelector('.cw-visualization-panel').classList.contains('cw-stale'),
          examples: root.querySelector('.cw-examples-section').classList.contains('cw-stale'),
          words: root.querySelector('.cw-words-panel').classList.contains('cw-stale'),
          label: root.querySelector('.cw-busy-label').textContent};
}"""

NOT_STALE = "() => !document.querySelector('.cw-neuron .cw-stale')"


def screenshot(page, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("CLIP_WIDGETS_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.locator(".cw-neuron").first.screenshot(path=str(path), animations="disabled")
    return path


def example_hashes(page) -> list[int]:
    return page.eval_on_selector_all(
        ".cw-neuron .cw-example-image", f"canvases => canvases.map(c => ({CANVAS_SPREAD})(c).hash)"
    )


def wait_for_examples(page, done, timeout_ms: int = 60_000) -> list[int]:
    """Poll the examples' pixels until ``done(hashes)``; return the hashes."""
    for _ in range(timeout_ms // 200):
        hashes = example_hashes(page)
        if len(hashes) == 4 and done(hashes):
            return hashes
        page.wait_for_timeout(200)
    raise TimeoutError(f"the examples did not change as expected: {hashes}")


def test_neuron_explorer_in_jupyterlab(page, lab_server, tmp_path):
    notebook = LabNotebook(page, lab_server, "neuron_explorer", CELLS, timeout=180)
    notebook.run_next()
    widget = page.locator(".cw-neuron").first
    widget.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("() => document.querySelector('.cw-neuron .cw-featvis')?.width > 1")
    page.wait_for_function(NOT_STALE, timeout=60_000)

    # The feature visualization and its facets are pictures, not blank canvases.
    main = page.eval_on_selector(".cw-neuron .cw-featvis", CANVAS_SPREAD)
    assert main["width"] == 224 and main["spread"] > 20
    assert widget.locator(".cw-facet").count() == 2
    # Dataset examples: 128 px pictures with their values; the top words as text, never parsed as HTML.
    assert widget.locator(".cw-example").count() == 4
    for canvas in widget.locator(".cw-example-image").all():
        crop = canvas.evaluate(CANVAS_SPREAD)
        assert (crop["width"], crop["height"]) == (128, 128) and crop["spread"] > 4, crop  # not blank
        box = canvas.bounding_box()
        assert abs(box["width"] - 128) < 3, box
    assert all(float(v) for v in widget.locator(".cw-example figcaption").all_inner_texts())
    words = widget.locator(".cw-word-text").all_inner_texts()
    assert sorted(words) == sorted(["red", "star", "blue", "circle", HOSTILE_WORD])
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
    assert (state["layer"], state["unit"], state["error"]) == ("blocks.1", 2, "")

    # Top-word bars start at the vocabulary's mean: their ends differ as the scores do.
    page.wait_for_function(NOT_STALE, timeout=60_000)
    bars = page.eval_on_selector(".cw-neuron .cw-words", BAR_GEOMETRY)
    scores = dict(state["words"])
    assert [b["word"] for b in bars] == [word for word, _ in state["words"]]
    values = [scores[b["word"]] for b in bars]
    low, high = min([*values, state["baseline"]]), max([*values, state["baseline"]])
    px_per_score = bars[0]["track"] / (high - low)
    for bar, value in zip(bars, values, strict=True):
        assert abs(bar["end"] - (value - low) * px_per_score) < 1.5, (bar, value)
        assert abs(bar["zero"] - (state["baseline"] - low) * px_per_score) < 1.5, bar
    assert bars[0]["end"] - bars[-1]["end"] > 0.3 * bars[0]["track"]  # close scores still look different
    note = widget.locator(".cw-words-note").inner_text()
    assert f"{state['baseline']:.2f}" in note and "mean" in note

    # A unit change marks the old visualization and examples stale, with a busy cue, until Python answers.
    sleeping = notebook.start_next()
    page.wait_for_timeout(300)
    marked = page.evaluate(CLICK_NEXT_AND_READ)
    assert marked == {"visualization": True, "examples": True, "words": True, "label": "rendering unit 3…"}
    assert widget.locator(".cw-busy").is_visible()
    screenshot(page, tmp_path, "neuron-stale")
    notebook.wait(sleeping)
    page.wait_for_function(NOT_STALE, timeout=60_000)
    assert not widget.locator(".cw-busy").is_visible()

    # The bottom toggle shows other images: the unit's bottom-k examples.
    top_hashes = example_hashes(page)
    widget.locator(".cw-which[data-which='bottom']").click()
    wait_for_examples(page, lambda hashes: hashes != top_hashes)
    assert widget.locator(".cw-which[data-which='bottom']").get_attribute("aria-pressed") == "true"
    bottom = json.loads(notebook.run_next().splitlines()[0])
    assert bottom == {"set": "bottom", "unit": 3, "is_bottom": True}
    for canvas in widget.locator(".cw-example-image").all():
        assert canvas.evaluate(CANVAS_SPREAD)["spread"] > 4

    # Clicking an example shows its whole image with the outline of the unit's strongest cells.
    widget.locator(".cw-example").first.click()
    viewer = widget.locator(".cw-example-viewer")
    viewer.wait_for(state="visible")
    whole = page.eval_on_selector(".cw-neuron .cw-example-whole", CANVAS_SPREAD)
    assert whole["width"] == 256 and whole["spread"] > 20
    assert page.eval_on_selector(".cw-neuron .cw-example-whole", OUTLINE_PIXELS) > 50
    screenshot(page, tmp_path, "neuron-bottom-whole-image")
    widget.locator(".cw-example-viewer .cw-close").click()
    assert not viewer.is_visible()
    # The same from the keyboard: Enter on a focused example opens it, Escape closes it and
    # gives the focus back to the example.
    second = widget.locator(".cw-example").nth(1)
    second.focus()
    page.keyboard.press("Enter")
    viewer.wait_for(state="visible")
    assert page.evaluate("() => document.activeElement.classList.contains('cw-close')")
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")
    assert second.evaluate("node => node === document.activeElement")
    widget.locator(".cw-which[data-which='top']").click()
    wait_for_examples(page, lambda hashes: hashes == top_hashes)

    # A text query lists units with their scores under a heading; clicking one shows it.
    query = widget.locator("input.cw-query")
    query.fill("a red star")
    query.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('.cw-neuron .cw-query-unit').length > 0")
    heading = widget.locator(".cw-query-heading").inner_text()
    assert "blocks.1" in heading and "a red star" in heading and "written in an image" in heading
    button = widget.locator(".cw-query-unit").nth(1)
    chosen = int(button.locator(".cw-chip-unit").inner_text().removeprefix("unit "))
    chip_scores = [float(s) for s in widget.locator(".cw-chip-score").all_inner_texts()]
    button.click()
    page.wait_for_timeout(500)
    picked = json.loads(notebook.run_next().splitlines()[0])
    page.wait_for_function(NOT_STALE, timeout=60_000)
    screenshot(page, tmp_path, "neuron-light")
    assert picked["unit"] == chosen == picked["results"][1][0]
    assert chip_scores == pytest.approx([s for _, s in picked["results"]], rel=5e-3, abs=1e-3)

    # A layer switch recomputes the chips for the new layer, under a heading that names it.
    widget.locator("select.cw-layer").select_option("ln_post")
    heading_names = "layer => document.querySelector('.cw-neuron .cw-query-heading').textContent.includes(layer)"
    page.wait_for_function(heading_names, arg="ln_post")
    switched = json.loads(notebook.run_next().splitlines()[0])
    chips = [int(t.removeprefix("unit ")) for t in widget.locator(".cw-chip-unit").all_inner_texts()]
    assert switched["layer"] == "ln_post" and chips == [u for u, _ in switched["results"]]

    # A query set from Python shows in the box.
    notebook.run_next()
    page.wait_for_function("() => document.querySelector('.cw-neuron input.cw-query').value === 'blue circle'")
    page.wait_for_function("() => document.querySelector('.cw-neuron select.cw-layer').value === 'blocks.1'")

    # A typed unit outside the layer is refused with the valid range; the box shows the unit kept.
    page.wait_for_function(NOT_STALE, timeout=60_000)
    unit_box = widget.locator("input.cw-unit")
    kept = unit_box.input_value()
    unit_box.fill("9999")
    unit_box.press("Enter")
    banner = widget.locator(".cw-error")
    banner.wait_for(state="visible")
    refused = json.loads(notebook.run_next().splitlines()[0])
    assert f"valid units are 0 to {refused['count'] - 1}" in banner.inner_text()
    assert refused["unit"] == int(kept) and "9999" in refused["error"]
    page.wait_for_function("kept => document.querySelector('.cw-neuron input.cw-unit').value === kept", arg=kept)
    assert not widget.locator(".cw-busy").is_visible()  # nothing is computed for a refused unit
    widget.locator(".cw-next").click()  # a good unit clears the banner
    banner.wait_for(state="hidden")
    page.wait_for_function(NOT_STALE, timeout=60_000)

    # "fine" redraws the unit with more steps of several draws each, and says so under the picture.
    quick = page.eval_on_selector(".cw-neuron .cw-featvis", CANVAS_SPREAD)
    assert widget.locator(".cw-drawn-with").inner_text() == "16 steps × 1 draw each"
    widget.locator(".cw-detail[data-detail='fine']").click()
    page.wait_for_function(
        "() => document.querySelector('.cw-neuron .cw-drawn-with').textContent === '24 steps × 2 draws each'"
    )
    fine = json.loads(notebook.run_next().splitlines()[0])
    assert fine == {"detail": "fine", "drawn_with": [24, 2], "error": ""}
    assert widget.locator(".cw-detail[data-detail='fine']").get_attribute("aria-pressed") == "true"
    assert widget.locator(".cw-detail[data-detail='quick']").get_attribute("aria-pressed") == "false"
    page.wait_for_function("() => !document.querySelector('.cw-neuron').classList.contains('cw-is-busy')")
    drawn = page.eval_on_selector(".cw-neuron .cw-featvis", CANVAS_SPREAD)
    assert drawn["spread"] > 20 and drawn["hash"] != quick["hash"]
    screenshot(page, tmp_path, "neuron-fine")

    # Dark theme: the widget follows JupyterLab's theme variables.
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
    page.wait_for_timeout(500)
    background = page.eval_on_selector(
        ".cw-neuron", "el => getComputedStyle(el).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number)"
    )
    assert sum(background) / 3 < 100, f"background {background} is not dark"
    widget.locator(".cw-example").nth(1).click()
    widget.locator(".cw-example-viewer").wait_for(state="visible")
    screenshot(page, tmp_path, "neuron-dark")
    assert not [e for e in page.console_errors if "cw-" in e or "neuron" in e.lower()], page.console_errors
