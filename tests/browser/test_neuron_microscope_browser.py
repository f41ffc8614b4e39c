"""NeuronExplorer.from_microscope in a real JupyterLab, rendered by headless Chromium: a site's unit
shows its label and draws the site's own facet pixels; a unit outside the site shows no label.

Set ``CLIP_WIDGETS_SCREENSHOTS`` to a folder to keep the screenshot taken along the way."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clip_widgets.microscope import build_microscope
from clip_widgets.session import ModelSession
from clip_widgets.world import draw_scene

from .harness import LabNotebook

pytestmark = pytest.mark.browser

LAYER = "blocks.1"
NOT_STALE = "() => !document.querySelector('.cw-neuron .cw-stale')"
# The canvas's pixels as (height, width, 3), as the page holds them.
CANVAS_RGB = """canvas => {
  const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  return {height: canvas.height, width: canvas.width, rgb: [...data].filter((_, i) => i % 4 !== 3)};
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, dict]:
    """A site over image files, so the kernel finds the examples' images by their paths."""
    scenes = tmp_path_factory.mktemp("scenes")
    for k in range(12):
        draw_scene(k, size=64).image.save(scenes / f"{k:02d}.png")
    session = ModelSession.from_config("tiny-vit", seed=0, device="cpu")
    root = tmp_path_factory.mktemp("microscope")
    build_microscope(session, scenes, LAYER, root, max_units=3, k=3, steps=2, facets=2, progress=False)
    return root, json.loads((root / "microscope.json").read_text())


def canvas_pixels(locator) -> np.ndarray:
    got = locator.evaluate(CANVAS_RGB)
    return np.array(got["rgb"], dtype=np.uint8).reshape(got["height"], got["width"], 3)


def test_a_microscope_unit_shows_its_label_and_stored_facets(page, lab_server, site, tmp_path):
    root, manifest = site
    cells = [
        "from clip_widgets import NeuronExplorer\n"
        f"w = NeuronExplorer.from_microscope({str(root)!r}, steps=8, facets=2, example_count=3)\n"
        "w.wait(120)\n"
        "display(w)",
        "w.wait(120)\nprint(w.unit, repr(w.unit_label), w.visualization_of, w.error)",
    ]
    notebook = LabNotebook(page, lab_server, "neuron_microscope", cells, timeout=180)
    notebook.run_next()
    widget = page.locator(".cw-neuron").first
    widget.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("() => document.querySelector('.cw-neuron .cw-featvis')?.width > 1")
    page.wait_for_function(NOT_STALE, timeout=60_000)

    # The label of the site's first unit, next to the unit picker.
    first = manifest["layers"][0]["units"][0]
    label = widget.locator(".cw-unit-label")
    assert label.is_visible()
    assert label.inner_text() == f"{first['label']} (confidence z {first['confidence']:.2f})"
    assert widget.locator(".cw-header .cw-unit-label").count() == 1
    # The canvases hold the site's PNGs, pixel for pixel: the main view its first facet, the strip the second.
    main, second = (np.asarray(Image.open(root / path).convert("RGB")) for path in first["facets"])
    assert main.std() > 0 and not np.array_equal(main, second)
    np.testing.assert_array_equal(canvas_pixels(widget.locator(".cw-featvis")), main)
    assert widget.locator(".cw-facet").count() == 1
    np.testing.assert_array_equal(canvas_pixels(widget.locator(".cw-facet")), second)
    assert widget.locator(".cw-example").count() == 3
    folder = Path(os.environ.get("CLIP_WIDGETS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    widget.screenshot(path=str(folder / "neuron-microscope.png"), animations="disabled")

    # A unit the site does not have: optimized, and no label is shown.
    unit_box = widget.locator("input.cw-unit")
    unit_box.fill("5")
    unit_box.press("Enter")
    label.wait_for(state="hidden", timeout=30_000)
    page.wait_for_timeout(500)
    state = notebook.run_next()
    assert state.split()[0] == "5" and "''" in state and f"['{LAYER}', 5]" in state, state
    page.wait_for_function(NOT_STALE, timeout=60_000)
    assert not np.array_equal(canvas_pixels(widget.locator(".cw-featvis")), main)
    assert not [e for e in page.console_errors if "cw-" in e or "neuron" in e.lower()], page.console_errors
