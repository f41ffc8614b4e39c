"""The browser harness itself: a real anywidget and an ipywidgets slider in JupyterLab."""

from __future__ import annotations

import pytest

from .harness import run_cell_in_lab, run_notebook_in_lab, widget_locator

pytestmark = pytest.mark.browser

PROBE = '''\
import anywidget
import traitlets


class Probe(anywidget.AnyWidget):
    _esm = """
    function render({ model, el }) {
      const button = document.createElement("button");
      button.className = "probe";
      const show = () => { button.textContent = `count is ${model.get("count")}`; };
      button.addEventListener("click", () => {
        model.set("count", model.get("count") + 1);
        model.save_changes();
      });
      model.on("change:count", show);
      show();
      el.appendChild(button);
    }
    export default { render };
    """
    count = traitlets.Int(0).tag(sync=True)


w = Probe()
w
'''

SLIDER = "import ipywidgets\nslider = ipywidgets.IntSlider(value=7, min=0, max=10, description='seven')\nslider"


def test_anywidget_round_trip(browser_page, jupyter_server, tmp_path):
    page = browser_page
    run_notebook_in_lab(page, jupyter_server, [PROBE, SLIDER], name="harness_probe")

    button = widget_locator(page, "button.probe")
    assert button.inner_text() == "count is 0"

    # Browser -> Python: clicks update the view, and a later cell reads the synced value.
    button.click()
    button.click()
    page.wait_for_function("() => document.querySelector('button.probe').textContent === 'count is 2'")
    # The widget manager holds a change back while the kernel is busy with the one before, so the
    # second click may reach Python after a cell sent right away: ask again until it has arrived.
    for _ in range(10):
        seen = run_cell_in_lab(page, "print('python sees', w.count)").strip()
        if seen == "python sees 2":
            break
        page.wait_for_timeout(300)
    assert seen == "python sees 2"

    # Python -> browser.
    run_cell_in_lab(page, "w.count = 41")
    page.wait_for_function("() => document.querySelector('button.probe').textContent === 'count is 41'")

    # ipywidgets' own views render through the same manager.
    slider = widget_locator(page, ".widget-slider")
    assert "seven" in slider.inner_text()
    assert widget_locator(page, ".widget-readout").inner_text() == "7"

    shot = tmp_path / "harness.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 5_000
    assert not [e for e in page.console_errors if "pageerror" in e or "widget" in e.lower()], page.console_errors


def test_failing_cell_reports_traceback(browser_page, jupyter_server):
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        run_notebook_in_lab(browser_page, jupyter_server, ["x = 1", "1 / 0", "never = True"], timeout=60)
