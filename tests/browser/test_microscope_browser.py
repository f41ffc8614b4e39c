"""A Microscope site opens from file:// in headless Chromium with no network: the index shows
the units, ``#layer/unit`` shows one unit with its images, and the search box filters.

Set ``CLIP_WIDGETS_SCREENSHOTS`` to a folder to keep the screenshot taken along the way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clip_widgets.microscope import build_microscope
from clip_widgets.session import ModelSession
from clip_widgets.world import draw_scene

pytestmark = pytest.mark.browser

LAYER = "blocks.1"
LOADED = "img => img.complete && img.naturalWidth > 0"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    session = ModelSession.from_config("tiny-vit", seed=0, device="cpu")
    images = [draw_scene(k, size=64).image for k in range(12)]
    root = tmp_path_factory.mktemp("microscope")
    return build_microscope(session, images, LAYER, root, max_units=6, k=4, steps=2, facets=3, atlas=True,
                            atlas_size=4, progress=False)  # fmt: skip


def test_the_microscope_opens_offline(lone_page, site, tmp_path):
    page, requests = lone_page, []
    page.on("request", lambda request: requests.append(request.url))
    page.route("http*://**", lambda route: route.abort())  # no network
    page.goto(site.as_uri())
    cards = page.locator(".ms-card")
    cards.first.wait_for(timeout=10_000)
    assert cards.count() == 6
    assert page.locator(f".ms-grid[data-layer='{LAYER}']").count() == 1
    page.wait_for_function(f"() => [...document.querySelectorAll('.ms-card img')].every({LOADED})")
    labels = page.locator(".ms-card .ms-muted").all_inner_texts()
    assert all(labels), labels
    page.wait_for_function(f"() => ({LOADED})(document.querySelector('.ms-atlas img'))")
    assert page.eval_on_selector(".ms-atlas img", "img => img.getBoundingClientRect().width") >= 256

    # one unit's view, at its own address
    page.evaluate(f"() => {{ location.hash = '#{LAYER}/3'; }}")
    page.locator(".ms-unit-page").wait_for(timeout=5_000)
    assert "unit 3" in page.locator(".ms-unit h2").inner_text()
    assert page.locator(".ms-label").inner_text() == labels[3]
    page.wait_for_function(f"() => ({LOADED})(document.querySelector('.ms-vis'))")
    assert page.eval_on_selector(".ms-vis", "img => img.getBoundingClientRect().width") >= 256
    assert page.locator(".ms-facets img").count() == 2  # the other two facets beside the first
    page.locator(".ms-examples[data-which='bottom']").wait_for(timeout=5_000)  # the unit's file loaded
    for which, order in (("top", True), ("bottom", False)):
        examples = page.locator(f".ms-examples[data-which='{which}'] .ms-example")
        assert examples.count() == 4
        values = [float(v) for v in page.locator(f".ms-examples[data-which='{which}'] figcaption").all_inner_texts()]
        assert values == sorted(values, reverse=order), (which, values)
    page.wait_for_function(f"() => [...document.querySelectorAll('.ms-example img')].every({LOADED})")
    words = page.locator(".ms-words li")
    assert words.count() == 5 and words.first.inner_text().startswith(labels[3])
    # the heat is drawn: coloured, partly transparent pixels over each crop, hidden by the toggle
    painted = page.evaluate("""() => [...document.querySelectorAll('canvas[data-heat]')].map(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let opaque = 0, clear = 0;
        for (let i = 3; i < d.length; i += 4) d[i] > 0 ? opaque++ : clear++;
        return [opaque, clear]; })""")
    assert len(painted) == 8 and all(opaque > 0 for opaque, _ in painted), painted
    assert any(clear > 0 for _, clear in painted)  # the cooler part of the crops stays untinted
    shot = Path(os.environ.get("CLIP_WIDGETS_SCREENSHOTS") or tmp_path) / "microscope-unit.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), animations="disabled", full_page=True)
    page.locator(".ms-heat-toggle").uncheck()
    assert page.eval_on_selector("canvas[data-heat]", "c => getComputedStyle(c).display") == "none"

    # back to the index by the link, then the search box filters by label
    page.locator("a", has_text="All units").click()
    cards.first.wait_for(timeout=5_000)
    assert cards.count() == 6
    search = page.locator("header input[type=search]")
    search.fill(labels[0])
    expected = sum(labels[0].lower() in label.lower() for label in labels)
    page.wait_for_function(f"() => document.querySelectorAll('.ms-card').length === {expected}")
    search.fill("no label has this zzqx")
    page.locator(".ms-empty").wait_for(timeout=5_000)
    assert cards.count() == 0
    search.fill("")
    page.wait_for_function("() => document.querySelectorAll('.ms-card').length === 6")

    # an unknown unit says so
    page.evaluate(f"() => {{ location.hash = '#{LAYER}/99'; }}")
    page.get_by_text("No unit 99").wait_for(timeout=5_000)

    assert all(url.startswith("file:") for url in requests), requests
    assert not page.console_errors, page.console_errors
