"""A saved widget page opens from file:// in Chromium with no kernel and no network, and draws."""

from __future__ import annotations

import pytest
from skimage import data

from clip_widgets import ModelSession, SurgeryWidget
from clip_widgets.widgets import save_html

from .test_surgery_browser import CANVAS_STATS

pytestmark = pytest.mark.browser

OVERLAY_HASH = (
    "() => { const c = document.querySelector('.cw-surgery .cw-overlay');"
    " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
    " let x = 0; for (let i = 0; i < d.length; i += 4)"
    " x = (x * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2] + 17 * d[i + 3]) >>> 0; return x; }"
)


def test_a_saved_surgery_widget_draws_offline(lone_page, tmp_path):
    session = ModelSession.load("small-vit")
    widget = SurgeryWidget(session, data.astronaut(), ["face", "rocket", "</script><b>x</b>"], max_side=192,
                           threshold=0.05)  # fmt: skip
    path = widget.save_html(tmp_path / "saved" / "surgery.html")
    page, requests = lone_page, []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_function("() => document.querySelector('[data-cw-widget]')?.dataset.cwRendered", timeout=20_000)
    assert page.get_attribute("[data-cw-widget]", "data-cw-rendered") == "true", page.inner_text("body")
    # only the page itself and its in-page module: nothing from a network
    assert all(url.startswith(("file:", "blob:", "data:")) for url in requests), requests
    # the image canvas holds the widget's pixels
    base = page.eval_on_selector(".cw-surgery .cw-base", CANVAS_STATS)
    assert [base["height"], base["width"]] == list(widget.image.shape[:2])
    for shown, expected in zip(base["mean"], widget.image.reshape(-1, 3).mean(0), strict=True):
        assert abs(shown - expected) < 1.0
    # the heatmap is drawn, and redrawn for another label without a kernel (all maps are in the page)
    assert page.eval_on_selector(".cw-surgery .cw-overlay", CANVAS_STATS)["opaque"] > 0.05
    before = page.evaluate(OVERLAY_HASH)
    page.locator(".cw-surgery .cw-label").nth(1).click()
    page.wait_for_function(f"h => ({OVERLAY_HASH})() !== h", arg=before)
    # labels are text: the one that looks like markup neither ends the page's script nor renders
    assert page.locator(".cw-label-text").all_inner_texts() == widget.labels
    assert page.locator(".cw-surgery b").count() == 0
    assert not page.console_errors, page.console_errors


def test_a_page_needs_a_widget(tmp_path):
    with pytest.raises(ValueError, match="no clip_widgets widget"):
        save_html([], tmp_path / "empty.html")
    assert not (tmp_path / "empty.html").exists()
