"""AtlasWidget in a real JupyterLab, rendered by headless Chromium: zoom, tiles, hover, click."""

from __future__ import annotations

import json

import pytest

from .harness import LabNotebook

pytestmark = pytest.mark.browser

HOSTILE_CLASS = '<img src=x onerror="window.__injected = 1">'
CELLS = [
    # 0: a small atlas over a few scenes, four levels
    "import json, tempfile\n"
    "from clip_widgets import AtlasWidget, ModelSession, build_atlas\n"
    "from clip_widgets.atlas import collect_activations\n"
    "from clip_widgets.world import draw_scene\n"
    "session = ModelSession.load('tiny-vit')\n"
    "root = tempfile.mkdtemp()\n"
    "for i in range(40):\n"
    "    draw_scene(i, size=48).image.save(f'{root}/{i:02d}.png')\n"
    "store = collect_activations(session, root, 'blocks.0', root + '/acts', per_image=8, progress=False)\n"
    f"classes = ['a red circle', {HOSTILE_CLASS!r}]\n"
    "atlas = build_atlas(session, store, sizes=(4, 8, 16, 32), min_count=1, classes=classes, icon_steps=4,\n"
    "                    progress=False)\n"
    "w = AtlasWidget(atlas, session=session, tile_cells=4, icon_px=16)\n"
    "display(w)",
    # 1: what Python holds after zooming in the browser
    "print(json.dumps({'view': w.view, 'level': w.level}))",
    # 2: set from Python: the browser follows
    "w.zoom_to(0.0625, 0.0625, 8.0)",
    # 3: centre a filled cell of the finest grid
    "import numpy as np\n"
    "grid = atlas.grid(32)\n"
    "row, col = (int(v) for v in np.argwhere(grid.counts == grid.counts.max())[0])\n"
    "w.zoom_to((col + 0.5) / 32, (row + 0.5) / 32, 8.0)\n"
    "members = grid.members(row, col)\n"
    "sources = len(dict.fromkeys(store.origins[members, 0].tolist()))\n"
    "print(json.dumps({'view': w.view, 'cell': [row, col], 'count': int(grid.counts[row, col]), 'sources': sources}))",
    # 4: after a click
    "print(json.dumps({'selected': w.selected, 'sources': len(w.selected_sources)}))",
    # 5: after a press on the minimap
    "print(json.dumps({'view': w.view}))",
]

ALL_LOADED = (
    "() => { const c = document.querySelector('.cw-atlas canvas.cw-atlas-canvas');"
    " return c.dataset.loaded === c.dataset.tiles; }"
)
CANVAS_STATS = """canvas => {
  const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let opaque = 0, min = 255, max = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] === 0) continue;
    opaque++; const v = (data[i] + data[i + 1] + data[i + 2]) / 3; min = Math.min(min, v); max = Math.max(max, v);
  }
  return {opaque: opaque / (data.length / 4), spread: max - min, tiles: Number(canvas.dataset.tiles)};
}"""

MINIMAP_DRAWN = """canvas => {
  // share of opaque icon pixels, and of accent-coloured pixels on the frame's edge and far from it
  const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  const scale = canvas.width / 128;
  const [x, y, w, h] = canvas.dataset.frame.split(',').map(Number).map((v) => v * scale);
  const accent = getComputedStyle(canvas).getPropertyValue('--cw-accent').trim();
  const probe = document.createElement('canvas').getContext('2d');
  probe.fillStyle = accent; probe.fillRect(0, 0, 1, 1);
  const [ar, ag, ab] = probe.getImageData(0, 0, 1, 1).data;
  const isAccent = (i) => Math.abs(data[i] - ar) + Math.abs(data[i + 1] - ag) + Math.abs(data[i + 2] - ab) < 30
                          && data[i + 3] > 200;
  let opaque = 0, onFrame = 0, edge = 0, outside = 0, far = 0;
  for (let py = 0; py < canvas.height; py++) for (let px = 0; px < canvas.width; px++) {
    const i = 4 * (py * canvas.width + px);
    if (data[i + 3]) opaque++;
    const nearEdge = px >= x - scale && px <= x + w + scale && py >= y - scale && py <= y + h + scale
      && (Math.abs(px - x) <= scale || Math.abs(px - x - w) <= scale || Math.abs(py - y) <= scale
          || Math.abs(py - y - h) <= scale);
    if (nearEdge) { edge++; onFrame += isAccent(i); }
    else if (px > x + w + 4 * scale || py > y + h + 4 * scale) { far++; outside += isAccent(i); }
  }
  return {icons: opaque / (canvas.width * canvas.height), frame: onFrame / edge, outside: outside / far};
}"""


def test_atlas_widget_in_jupyterlab(page, lab_server):
    notebook = LabNotebook(page, lab_server, "atlas_widget", CELLS, timeout=180)
    notebook.run_next()
    widget = page.locator(".cw-atlas").first
    widget.wait_for(state="visible", timeout=60_000)
    canvas = widget.locator("canvas.cw-atlas-canvas")
    # At zoom 1, the finest level whose cells are 40 px or more on the 512 px view: 8 x 8 cells in
    # four tiles of 4 x 4, drawn with real icon pixels.
    page.wait_for_function(
        "() => { const c = document.querySelector('.cw-atlas canvas.cw-atlas-canvas');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }",
        timeout=30_000,
    )
    assert widget.get_attribute("data-level") == "8"
    start = canvas.evaluate(CANVAS_STATS)
    assert start["tiles"] == 4 and start["opaque"] > 0.3 and start["spread"] > 20, start

    # Zoom in with the keyboard, then the wheel: a finer level, and only the tiles in view.
    widget.focus()
    page.keyboard.press("+")
    page.wait_for_function("() => document.querySelector('.cw-atlas').dataset.level === '16'")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 60)
    page.mouse.wheel(0, -470)  # exp(0.0015 * 470) ~ 2x
    page.wait_for_function("() => document.querySelector('.cw-atlas').dataset.level === '32'")
    zoomed = canvas.evaluate(CANVAS_STATS)
    assert zoomed["tiles"] <= 9, zoomed  # 64 tiles make the whole 32 x 32 grid; a quarter of it is in view
    page.wait_for_function(ALL_LOADED, timeout=30_000)  # the tiles in view arrive from Python
    page.wait_for_timeout(400)  # the view reaches Python after a debounce
    state = json.loads(notebook.run_next().splitlines()[0])
    assert state["level"] == 32 and state["view"]["zoom"] > 3.5, state
    assert state["view"]["x"] < 0.5 and state["view"]["y"] < 0.5, state  # zoomed towards the top-left pointer

    # A view set from Python moves the browser's view: the finest level, one tile, top-left.
    notebook.run_next()
    page.wait_for_function("() => document.querySelector('.cw-atlas .cw-level').textContent.includes('8.00')")
    assert widget.get_attribute("data-level") == "32"
    page.wait_for_function(ALL_LOADED, timeout=30_000)
    assert canvas.evaluate(CANVAS_STATS)["tiles"] == 1
    # Zoomed in, the minimap shows the whole atlas (the coarsest grid's icons) framing the view in the top-left.
    minimap = widget.locator("canvas.cw-minimap")
    assert minimap.is_visible()
    assert minimap.get_attribute("data-frame") == "0.0,0.0,16.0,16.0"
    minimap_icons = f"() => ({MINIMAP_DRAWN})(document.querySelector('.cw-atlas canvas.cw-minimap')).icons > 0.3"
    page.wait_for_function(minimap_icons, timeout=30_000)
    drawn = minimap.evaluate(MINIMAP_DRAWN)
    assert drawn["frame"] > 0.5 and drawn["outside"] < 0.05, drawn  # the accent frame, only where the view is

    # Hover a cell that holds activations: its count and classes as text (a class name is never
    # parsed as HTML) and source patches.
    target = json.loads(notebook.run_next().splitlines()[0])
    view, (row, col) = target["view"], target["cell"]
    scale = 512 * view["zoom"]
    x = ((col + 0.5) / 32 - view["x"]) * scale + 256
    y = ((row + 0.5) / 32 - view["y"]) * scale + 256
    shown = f"{view['x']:.4f},{view['y']:.4f},{view['zoom']:.3f}"
    page.wait_for_function(f"() => document.querySelector('.cw-atlas').dataset.view === '{shown}'")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()  # running cells may have scrolled the notebook
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_function(f"() => document.querySelector('.cw-atlas .cw-cell-title')?.textContent === "
                           f"'cell {row}, {col} of 32 × 32'")  # fmt: skip
    card = widget.locator(".cw-cell-card")
    card.locator(".cw-patch").first.wait_for(state="attached", timeout=30_000)
    names = card.locator(".cw-class-name").all_inner_texts()
    assert sorted(names) == sorted(["a red circle", HOSTILE_CLASS]), names
    assert card.locator("img").count() == 0 and page.evaluate("() => window.__injected") is None
    # signed bars: a negative score is drawn left of the zero tick, a positive one right of it
    for item in card.locator(".cw-class").all():
        score = float(item.locator(".cw-class-score").inner_text())
        bar, zero = item.locator(".cw-bar").bounding_box(), item.locator(".cw-zero").bounding_box()
        assert bar["width"] >= 1
        if score < 0:
            assert bar["x"] + bar["width"] <= zero["x"] + 1.5, (score, bar, zero)
        else:
            assert bar["x"] >= zero["x"] - 1.5, (score, bar, zero)
    assert card.locator(".cw-cell-count").inner_text() == f"{target['count']} activation" + (
        "" if target["count"] == 1 else "s")  # fmt: skip

    # Click: the selection reaches Python, with the cell's sources.
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_timeout(400)
    picked = json.loads(notebook.run_next().splitlines()[0])
    assert picked == {"selected": [32, row, col], "sources": target["sources"]}, picked

    # A press on the minimap centres the view there, in the browser and in Python.
    minimap.scroll_into_view_if_needed()
    mini = minimap.bounding_box()
    page.mouse.click(mini["x"] + 0.75 * mini["width"], mini["y"] + 0.75 * mini["height"])
    page.wait_for_timeout(400)
    moved = json.loads(notebook.run_next().splitlines()[0])["view"]
    assert abs(moved["x"] - 0.75) < 0.02 and abs(moved["y"] - 0.75) < 0.02 and moved["zoom"] == 8.0, moved
    assert minimap.get_attribute("data-frame") == "88.0,88.0,16.0,16.0"
    widget.focus()
    page.keyboard.press("0")  # the whole atlas: no minimap
    page.wait_for_function("() => document.querySelector('.cw-atlas canvas.cw-minimap').hidden")
    assert not [e for e in page.console_errors if "cw-" in e or "atlas" in e.lower()], page.console_errors
