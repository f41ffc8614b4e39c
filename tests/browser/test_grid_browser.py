"""ActivationGridWidget in a real JupyterLab, rendered by headless Chromium: progress while it
computes, icons that differ across positions, a card on hover, keyboard and click selection, a
click on a unit that reaches Python, and an attribution heat that moves with the class.

Set ``CLIP_WIDGETS_SCREENSHOTS`` to a folder to keep the screenshots taken along the way, and
``CLIP_WIDGETS_GRID_ICON_STEPS=64`` to see the icons as legible as the default makes them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .harness import LabNotebook

pytestmark = pytest.mark.browser
ICON_STEPS = int(os.environ.get("CLIP_WIDGETS_GRID_ICON_STEPS", "16"))  # 64 for legible icons (slower)

CELLS = [
    # 0: a world scene with a red star and a blue circle, and the widget (computing in the background)
    "import json\n"
    "import numpy as np\n"
    "from clip_widgets import ActivationGridWidget, ModelSession\n"
    "from clip_widgets.world import class_prompt, draw_scene\n"
    "session = ModelSession.load('world-rn-robust')\n"
    "scene = draw_scene(np.random.default_rng(3), spec=[('red', 'star'), ('blue', 'circle')], word_probability=0.0)\n"
    "opened = []\n"
    "w = ActivationGridWidget(session, scene.image, 'layer4', classes=[class_prompt('red star'),\n"
    f"                         class_prompt('blue circle')], icon_steps={ICON_STEPS}, on_open=opened.append)\n"
    "display(w)",
    # 1: the finished grid, and the cell each shape covers most
    "w.wait(400)\n"
    "def most(o):\n"
    "    rows, cols = w.grid\n"
    "    m = o.mask.reshape(rows, o.mask.shape[0] // rows, cols, o.mask.shape[1] // cols).mean((1, 3))\n"
    "    return [int(v) for v in np.unravel_index(m.argmax(), m.shape)]\n"
    "print(json.dumps({'grid': w.grid, 'error': w.error, 'top': int(w.top_units.shape[1]),\n"
    "                  'cells': {f'{o.colour} {o.shape}': most(o) for o in scene.objects},\n"
    "                  'attribution': w.attribution.tolist()}))",
    # 2: after clicks and keys in the browser
    "print(json.dumps({'position': w.position, 'opened': opened, 'class_index': w.class_index, 'mode': w.mode}))",
]

# Mean RGB of each cell of a canvas, over the cell's top-left inner part (away from the grid
# lines and from the number written in the middle of an attribution cell).
CELL_MEANS = """([canvas, rows, cols, from, to]) => {
  const {data, width, height} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  const cw = width / cols, ch = height / rows, means = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
    const sum = [0, 0, 0]; let n = 0;
    for (let y = Math.ceil(r * ch + from * ch); y < r * ch + to * ch; y++)
      for (let x = Math.ceil(c * cw + from * cw); x < c * cw + to * cw; x++) {
        const i = (y * width + x) * 4; sum[0] += data[i]; sum[1] += data[i + 1]; sum[2] += data[i + 2]; n++;
      }
    means.push(sum.map(v => v / n));
  }
  return means;
}"""


# The smallest mean absolute pixel difference between any two cells of a canvas (cells compared
# pixel by pixel): 0 when two cells show the same picture.
CELL_DIFFERENCE = """([canvas, rows, cols]) => {
  const {data, width, height} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  const cw = Math.floor(width / cols), ch = Math.floor(height / rows), cells = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
    const cell = [];
    for (let y = 2; y < ch - 2; y++) for (let x = 2; x < cw - 2; x++) {
      const i = ((r * ch + y) * width + c * cw + x) * 4; cell.push(data[i], data[i + 1], data[i + 2]);
    }
    cells.push(cell);
  }
  let least = Infinity;
  for (let a = 0; a < cells.length; a++) for (let b = a + 1; b < cells.length; b++) {
    let sum = 0; for (let i = 0; i < cells[a].length; i++) sum += Math.abs(cells[a][i] - cells[b][i]);
    least = Math.min(least, sum / cells[a].length);
  }
  return least;
}"""


def screenshot(page, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("CLIP_WIDGETS_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.locator(".cw-activation-grid").first.screenshot(path=str(path), animations="disabled")
    return path


def cell_centre(canvas, rows: int, cols: int, row: int, col: int) -> tuple[float, float]:
    box = canvas.bounding_box()
    return box["x"] + (col + 0.5) * box["width"] / cols, box["y"] + (row + 0.5) * box["height"] / rows


def redness(rgb: list[float]) -> float:
    return rgb[0] - rgb[2]


def test_activation_grid_in_jupyterlab(page, lab_server, tmp_path):
    notebook = LabNotebook(page, lab_server, "activation_grid", CELLS, timeout=420)
    notebook.run_next()
    widget = page.locator(".cw-activation-grid").first
    widget.wait_for(state="visible", timeout=60_000)
    # while the icons render: a progress bar and a busy cue, and the icons panel says so
    page.wait_for_function(
        "() => { const b = document.querySelector('.cw-activation-grid .cw-busy');"
        " return b && !b.hidden && /rendering icons \\d+%/.test(b.textContent); }",
        timeout=120_000,
    )
    assert widget.locator(".cw-progress").is_visible()
    screenshot(page, tmp_path, "grid-busy")

    state = json.loads(notebook.run_next().splitlines()[0])
    rows, cols = state["grid"]
    assert state["error"] == "" and (rows, cols) == (4, 4), state
    page.wait_for_function("() => document.querySelector('.cw-activation-grid .cw-busy').hidden", timeout=30_000)
    image = widget.locator(".cw-image-figure .cw-base")
    side = widget.locator(".cw-side-figure .cw-base")
    box = side.bounding_box()
    assert box["width"] >= cols * 48 and box["height"] >= rows * 48  # icons drawn at a readable size

    # the icons: every position its own picture (two blank or equal cells would differ by 0)
    least = page.evaluate(CELL_DIFFERENCE, [side.element_handle(), rows, cols])
    assert least > 10, least

    # hover a cell: its card with the top units, each with a number, a bar and its own icon
    star_row, star_col = state["cells"]["red star"]
    page.mouse.move(*cell_centre(image, rows, cols, star_row, star_col))
    card = widget.locator(".cw-card")
    page.wait_for_function(
        "want => document.querySelector('.cw-activation-grid .cw-card-title').textContent.startsWith(want)",
        arg=f"position ({star_row}, {star_col})",
    )
    assert card.locator(".cw-card-unit").count() == state["top"]
    assert card.locator(".cw-card-unit .cw-bar").count() == state["top"]
    icon_spread = page.evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let lo = 255, hi = 0;"
        " for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }"
        " return [c.width, hi - lo]; }",
        card.locator(".cw-unit-icon").first.element_handle(),
    )
    assert icon_spread[0] > 1 and icon_spread[1] > 30, icon_spread
    assert len(card.locator(".cw-card-class").all()) == 2
    screenshot(page, tmp_path, "grid-icons-hover")

    # click the cell, move with the arrow keys, click a unit in the card
    page.mouse.click(*cell_centre(image, rows, cols, star_row, star_col))
    page.mouse.move(0, 0)
    widget.focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowDown")
    expected = [min(star_row + 1, rows - 1), max(star_col - 1, 0)]
    page.wait_for_function(
        "want => document.querySelector('.cw-activation-grid .cw-card-title').textContent.startsWith(want)",
        arg=f"position ({expected[0]}, {expected[1]})",
    )
    first_unit = card.locator(".cw-unit-open").first
    unit = int(first_unit.get_attribute("data-unit"))
    first_unit.click()
    page.wait_for_timeout(800)

    # the attribution view: a signed heat that follows the class
    widget.locator('.cw-mode[data-mode="attribution"]').click()
    page.wait_for_function("() => !document.querySelector('.cw-activation-grid .cw-legend').hidden")
    legend = widget.locator(".cw-legend-labels span").all_inner_texts()
    limit = max(abs(row[0]) for row in state["attribution"])
    assert legend[1] == "0" and float(legend[2].replace("+", "")) == pytest.approx(limit, rel=0.01), legend
    page.wait_for_timeout(300)
    heat_star = page.evaluate(CELL_MEANS, [side.element_handle(), rows, cols, 0.05, 0.3])
    screenshot(page, tmp_path, "grid-attribution-red-star")
    widget.locator("select.cw-class").select_option("1")
    page.wait_for_timeout(500)
    heat_circle = page.evaluate(CELL_MEANS, [side.element_handle(), rows, cols, 0.05, 0.3])
    screenshot(page, tmp_path, "grid-attribution-blue-circle")
    star = star_row * cols + star_col
    circle_row, circle_col = state["cells"]["blue circle"]
    circle = circle_row * cols + circle_col
    # where the star is, the red-star class is hotter (redder) than the blue-circle class; where
    # the circle is, the other way round; and the signs of Python's numbers say the same
    assert redness(heat_star[star]) - redness(heat_circle[star]) > 60, (heat_star[star], heat_circle[star])
    assert redness(heat_circle[circle]) - redness(heat_star[circle]) > 60, (heat_star[circle], heat_circle[circle])
    attribution = state["attribution"]
    assert attribution[star][0] > attribution[star][1] and attribution[circle][1] > attribution[circle][0]

    after = json.loads(notebook.run_next().splitlines()[0])
    assert after["position"] == expected and after["opened"] == [unit], after
    assert after["class_index"] == 1 and after["mode"] == "attribution"

    # dark theme: the widget follows JupyterLab's theme variables
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
    page.wait_for_timeout(500)
    background = page.eval_on_selector(
        ".cw-activation-grid", "el => getComputedStyle(el).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number)"
    )
    assert sum(background) / 3 < 100, f"background {background} is not dark"
    page.mouse.move(*cell_centre(image, rows, cols, circle_row, circle_col))
    screenshot(page, tmp_path, "grid-attribution-dark")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'", timeout=30_000)
    assert not [e for e in page.console_errors if "cw-" in e or "grid" in e.lower()], page.console_errors
