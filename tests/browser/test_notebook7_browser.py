"""SurgeryWidget in Notebook 7, rendered by headless Chromium: the canvases hold the widget's
pixels, and a click on another label redraws the heatmap."""

from __future__ import annotations

import json

import pytest

from .notebook7 import open_in_notebook7, run_all_in_notebook7
from .test_surgery_browser import CANVAS_STATS

pytestmark = pytest.mark.browser

CELLS = [
    "import json\n"
    "from skimage import data\n"
    "from clip_widgets import ModelSession, SurgeryWidget\n"
    "w = SurgeryWidget(ModelSession.load('small-vit'), data.astronaut(), ['face', 'rocket'], max_side=192,\n"
    "                  selected=0, threshold=0.05)\n"
    "print(json.dumps({'mean': w.image.reshape(-1, 3).mean(0).tolist(), 'shape': list(w.image.shape)}))\n"
    "display(w)",
]


def test_surgery_widget_in_notebook7(page, jupyter_server):
    open_in_notebook7(page, jupyter_server, "surgery_nb7", CELLS, timeout=180)
    (output,) = run_all_in_notebook7(page, timeout=180)
    info = json.loads(output.splitlines()[0])
    widget = page.locator(".jp-OutputArea-output .cw-surgery").first
    widget.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("() => document.querySelector('.cw-surgery .cw-overlay')?.width > 1", timeout=60_000)

    # the image canvas holds Python's pixels
    base = page.eval_on_selector(".cw-surgery .cw-base", CANVAS_STATS)
    assert [base["height"], base["width"]] == info["shape"][:2]
    assert base["opaque"] == 1.0
    for shown, expected in zip(base["mean"], info["mean"], strict=True):
        assert abs(shown - expected) < 1.0, (base["mean"], info["mean"])

    # the heatmap is drawn, and a click on another label draws that label's
    overlay = page.eval_on_selector(".cw-surgery .cw-overlay", CANVAS_STATS)
    assert overlay["opaque"] > 0.05
    widget.locator(".cw-label").nth(1).click()
    page.wait_for_function(
        f"h => ({CANVAS_STATS})(document.querySelector('.cw-surgery .cw-overlay')).hash !== h",
        arg=overlay["hash"],
        timeout=60_000,
    )
    assert widget.locator(".cw-label.cw-selected .cw-label-text").inner_text() == "rocket"
    assert not [e for e in page.console_errors if "cw-" in e or "surgery" in e.lower()], page.console_errors
