"""HeadExplorer in a real JupyterLab, rendered by headless Chromium: the grid, a head's texts and
its map, checked on the pixels drawn. Set ``CLIP_WIDGETS_SCREENSHOTS`` to a folder to keep the
screenshots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from .harness import LabNotebook
from .test_lab_browser import set_theme

pytestmark = pytest.mark.browser

STATE = ("print(json.dumps({'layer': w.layer, 'head': w.head, 'text': w.text, 'error': w.error,"
         " 'colour_by': w.colour_by, 'texts': w.spans[w.layer][w.head]['texts'], 'map': w.head_map.tolist(),"
         " 'variance': w.variance.tolist(), 'image_mean': w.image.reshape(-1, 3).mean(0).tolist()}))")  # fmt: skip
CELLS = [
    "import json\nimport numpy as np\n"
    "from clip_widgets import ModelSession, HeadExplorer\n"
    "from clip_widgets.world import CLASSES, class_prompt, draw_scene\n"
    "session = ModelSession.from_embedded('world-vit', device='cpu')\n"
    "scenes = [draw_scene(np.random.default_rng(k), spec=[tuple(CLASSES[k % 30].split())],\n"
    "                     word_probability=0.0).image for k in range(60)]\n"
    "w = HeadExplorer(session, scenes, classes=[class_prompt(c) for c in CLASSES],\n"
    "                 labels=[k % 30 for k in range(60)])\n"
    "display(w)",
    STATE,  # 1: after a click on a head
    STATE,  # 2: after a click on its second text
    STATE,  # 3: after the arrow keys
    "w.select(1, 0, 2)\n" + STATE,  # 4: Python selects; the view follows
    "try:\n    w.layer = 9\nexcept IndexError as exc:\n    print('refused:', exc)",  # 5
    "w.layer = 2\n" + STATE,  # 6: a good value clears the banner
]

CELL_COLOURS = """view => [...view.querySelectorAll('.cw-cell')].map(c => ({
  layer: +c.dataset.layer, head: +c.dataset.head, colour: getComputedStyle(c).backgroundColor, text: c.textContent,
  selected: c.classList.contains('cw-selected')}))"""
CANVAS = """canvas => ({width: canvas.width, height: canvas.height,
  data: Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data)})"""


def shot(locator, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CLIP_WIDGETS_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    locator.screenshot(path=str(path))
    return path


def check_map(view, state: dict) -> None:
    """The overlay's pixels are the head map: red where it is positive, blue where negative, and
    opacity in proportion to |value| over the largest |value|."""
    values = np.array(state["map"])
    drawn = view.locator(".cw-map").evaluate(CANVAS)
    assert (drawn["height"], drawn["width"]) == values.shape
    rgba = np.array(drawn["data"], dtype=float).reshape(*values.shape, 4)
    expected_alpha = np.abs(values) / np.abs(values).max() * 0.85 * 255
    np.testing.assert_allclose(rgba[..., 3], expected_alpha, atol=1.5)
    strong = np.abs(values) > 0.2 * np.abs(values).max()
    assert strong.sum() >= 2 and len(np.unique(rgba[..., 3])) > 8, rgba[..., 3]  # the map varies
    red = rgba[..., 0] > rgba[..., 2]
    assert np.array_equal(red[strong], values[strong] > 0)
    legend = view.locator(".cw-map-legend .cw-scale-numbers").inner_text().split()
    top = np.abs(values).max()
    assert float(legend[-1].lstrip("+")) == pytest.approx(top, rel=5e-3)
    assert legend[0].startswith("−") and legend[1] == "0"


def test_head_explorer_in_jupyterlab(page, lab_server, tmp_path):
    notebook = LabNotebook(page, lab_server, "head_explorer", CELLS, timeout=240)
    set_theme(page, "JupyterLab Light")
    notebook.run_next()
    view = page.locator(".jp-OutputArea-output .cw-heads").first
    view.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('.cw-heads .cw-cell').length === 24", timeout=60_000)

    # The grid: 6 layers x 4 heads, coloured by variance, each with its number.
    cells = view.evaluate(CELL_COLOURS)
    assert {(c["layer"], c["head"]) for c in cells} == {(i, j) for i in range(6) for j in range(4)}
    assert len({c["colour"] for c in cells}) >= 12, cells
    assert [c for c in cells if c["selected"]] == [{**cells[0], "selected": True}]

    # Click a head: its texts, its shares and its map on the first image.
    view.locator('.cw-cell[data-layer="4"][data-head="2"]').click()
    page.wait_for_timeout(600)
    state = json.loads(notebook.run_next().splitlines()[0])
    assert (state["layer"], state["head"], state["text"]) == (4, 2, 0)
    for cell in cells:  # the numbers on the cells are Python's variances
        assert float(cell["text"]) == pytest.approx(state["variance"][cell["layer"]][cell["head"]], rel=5e-3)
    assert view.locator(".cw-text-name").all_inner_texts() == state["texts"] and len(state["texts"]) == 5
    assert view.locator(".cw-head-title").inner_text() == "layer 4, head 2"  # the selection, no preview
    shares = [float(s.rstrip("%")) for s in view.locator(".cw-share").all_inner_texts()]
    assert all(0 < s < 100 for s in shares) and sum(shares) < 100
    picture = np.array(view.locator(".cw-picture").evaluate(CANVAS)["data"], dtype=float).reshape(-1, 4)
    np.testing.assert_allclose(picture[:, :3].mean(0), state["image_mean"], atol=0.01)
    check_map(view, state)
    shot(view, "heads-light-head", tmp_path)

    # Its second text: another direction, another map.
    view.locator(".cw-text").nth(1).click()
    page.wait_for_timeout(600)
    second = json.loads(notebook.run_next().splitlines()[0])
    assert second["text"] == 1 and second["map"] != state["map"]
    assert view.locator(".cw-text.cw-chosen .cw-text-name").inner_text() == state["texts"][1]
    check_map(view, second)

    # The arrow keys move across the grid.
    view.locator(".cw-grid").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # the last layer: it stays there
    page.wait_for_timeout(600)
    moved = json.loads(notebook.run_next().splitlines()[0])
    assert (moved["layer"], moved["head"], moved["text"]) == (5, 3, 0)
    check_map(view, moved)

    # Python selects a head and a text; the view follows.
    chosen = json.loads(notebook.run_next().splitlines()[0])
    page.wait_for_timeout(400)
    selected = [(c["layer"], c["head"]) for c in view.evaluate(CELL_COLOURS) if c["selected"]]
    assert selected == [(1, 0)] and chosen["text"] == 2
    assert view.locator(".cw-text.cw-chosen .cw-text-name").inner_text() == chosen["texts"][2]
    check_map(view, chosen)

    # Hovering previews another head without selecting it.
    view.locator('.cw-cell[data-layer="3"][data-head="1"]').hover()
    assert "preview" in view.locator(".cw-head-title").inner_text()
    page.mouse.move(5, 5)
    assert view.locator(".cw-head-title").inner_text() == "layer 1, head 0"

    # Coloured by the accuracy drop of mean-ablation: a diverging scale with the baseline.
    view.locator('.cw-by[data-by="ablation"]').click()
    page.wait_for_timeout(400)
    ablated = view.evaluate(CELL_COLOURS)
    assert [c["colour"] for c in ablated] != [c["colour"] for c in cells]
    assert "baseline" in view.locator(".cw-grid-legend .cw-scale-caption").inner_text()

    # A refused layer shows in the banner; a good one clears it and the view follows.
    assert "refused" in notebook.run_next()
    banner = view.locator(".cw-error")
    banner.wait_for(state="visible", timeout=10_000)
    assert "layer 9 out of range" in banner.inner_text()
    fixed = json.loads(notebook.run_next().splitlines()[0])
    page.wait_for_timeout(400)
    assert fixed["error"] == "" and banner.is_hidden()
    check_map(view, fixed)
    page.mouse.move(5, 5)  # no head under the pointer: the panel shows the selected one
    view.locator('.cw-cell[data-layer="0"][data-head="0"]').hover()
    page.mouse.move(5, 5)
    assert view.locator(".cw-head-title").inner_text() == "layer 2, head 0"
    numbers = view.locator(".cw-cell").all_inner_texts()
    assert all(n == "0" or abs(float(n.replace("−", "-"))) >= 1 for n in numbers), numbers  # whole images, not noise
    shot(view, "heads-light", tmp_path)
    set_theme(page, "JupyterLab Dark")
    background = view.evaluate("v => getComputedStyle(v).backgroundColor")
    assert sum(int(v) for v in background[background.index("(") + 1 : -1].split(",")[:3]) < 3 * 100, background
    shot(view, "heads-dark", tmp_path)
    set_theme(page, "JupyterLab Light")  # the theme is a user setting shared by the session's tests
    assert not [e for e in page.console_errors if "cw-" in e or "heads" in e.lower()], page.console_errors
