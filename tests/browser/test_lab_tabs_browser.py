"""The Lab's on-demand tabs in a real JupyterLab: the activation grid and the attention heads are
built when their tab is first opened, and then draw (canvas pixels checked)."""

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
    "from clip_widgets import Lab, ModelSession\n"
    "from clip_widgets.world import draw_scene\n"
    "session = ModelSession.load('world-vit')\n"
    "scenes = [draw_scene(k, spec=[('red', 'star')], word_probability=0.0).image for k in range(8)]\n"
    "lab = Lab(session, draw_scene(3, spec=[('red', 'star'), ('blue', 'circle')], word_probability=0.0).image,\n"
    "          ['a red star', 'a blue circle'], grid_layer='blocks.4', head_images=scenes,\n"
    "          grid_options={'icon_steps': 8},\n"  # the icons' look is the grid test's; these draw in seconds
    "          steps=2, facets=1, vocabulary=['red'])\n"
    "display(lab)",
    "lab.grid.wait(120)\nlab.heads.wait(120)\n"
    "print(json.dumps({'grid': lab.grid.grid, 'heads': [len(lab.heads.variance), len(lab.heads.variance[0])],"
    " 'errors': [lab.grid.error, lab.heads.error]}))",
]


def shot(locator, name: str, tmp_path: Path) -> np.ndarray:
    folder = Path(os.environ.get("CLIP_WIDGETS_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    png = locator.screenshot(path=str(folder / f"{name}.png"))
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)


def test_lab_builds_the_grid_and_heads_tabs_when_opened(page, lab_server, tmp_path):
    notebook = LabNotebook(page, lab_server, "lab_tabs", CELLS, timeout=180)
    notebook.run_next()
    tabs = page.locator(".jp-OutputArea-output .lm-TabBar-tab")
    tabs.first.wait_for(state="visible", timeout=60_000)
    assert tabs.all_inner_texts()[-2:] == ["Activation grid", "Attention heads"]
    assert page.locator(".jp-OutputArea-output .cw-activation-grid").count() == 0  # not built yet

    tabs.nth(3).click()
    grid = page.locator(".jp-OutputArea-output .cw-activation-grid").first
    grid.wait_for(state="visible", timeout=60_000)
    tabs.nth(4).click()
    heads = page.locator(".jp-OutputArea-output .cw-heads").first
    heads.wait_for(state="visible", timeout=60_000)
    data = json.loads(notebook.run_next().splitlines()[0])
    assert data["errors"] == ["", ""] and data["grid"] == [8, 8] and data["heads"] == [6, 4]

    heads_pixels = shot(heads, "lab-heads-tab", tmp_path)
    assert heads_pixels.std(axis=(0, 1)).mean() > 20  # the coloured grid and the map, not a blank box
    tabs.nth(3).click()
    grid.wait_for(state="visible", timeout=30_000)
    page.wait_for_timeout(500)
    grid_pixels = shot(grid, "lab-grid-tab", tmp_path)
    assert grid_pixels.std(axis=(0, 1)).mean() > 20
