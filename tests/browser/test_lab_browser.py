"""The Lab dashboard in a real JupyterLab, rendered by headless Chromium: tabs, plotly bars, a click."""

from __future__ import annotations

import json

import pytest

from .harness import LabNotebook

pytestmark = pytest.mark.browser

CELLS = [
    "import json\n"
    "import numpy as np\n"
    "from clip_widgets import Lab, ModelSession\n"
    "from clip_widgets.probe import sparse_probe\n"
    "from clip_widgets.world import draw_scene\n"
    "session = ModelSession.load('tiny-vit')\n"
    "rng = np.random.default_rng(1)\n"
    "labels = rng.integers(0, 2, 300)\n"
    "features = rng.normal(size=(300, 64))\n"
    "features[:, 9] += 2.0 * (labels == 1)\n"
    "path = sparse_probe(features, labels, ['no', 'yes'], Cs=[0.001, 0.1, 10.0], progress=False)\n"
    "lab = Lab(session, draw_scene(2, size=64).image, ['a red circle', 'a blue star'], probe=path,\n"
    "          probe_layer='blocks.1', steps=2, facets=1, vocabulary=['red'])\n"
    "lab.probe.class_picker.value = 'yes'\n"
    "display(lab)",
    "lab.explorer.wait(60)\nprint(json.dumps({'tab': lab.selected_index, 'layer': lab.explorer.layer, "
    "'unit': lab.explorer.unit}))",
]


def test_lab_dashboard_in_jupyterlab(page, lab_server):
    notebook = LabNotebook(page, lab_server, "lab_dashboard", CELLS, timeout=180)
    notebook.run_next()
    tabs = page.locator(".jp-OutputArea-output .lm-TabBar-tab, .jp-OutputArea-output .p-TabBar-tab")
    tabs.first.wait_for(state="visible", timeout=60_000)
    assert tabs.all_inner_texts() == ["CLIP Surgery", "Neurons", "Typographic attack", "Sparse probe"]
    page.locator(".jp-OutputArea-output .cw-surgery").first.wait_for(state="visible", timeout=60_000)

    # The probe tab: plotly draws the class's bars; clicking the top neuron opens it in the explorer tab.
    tabs.nth(3).click()
    bar = page.locator(".jp-OutputArea-output .js-plotly-plot .bars path").first
    bar.wait_for(state="visible", timeout=60_000)
    bars_plot = page.locator(".jp-OutputArea-output .js-plotly-plot").nth(1)  # after the accuracy curve
    ticks = bars_plot.locator(".xtick text").evaluate_all("ts => ts.map(t => t.textContent)")
    assert ticks[0] == "9", ticks  # the neuron with the largest weight comes first
    bar.click(force=True)
    page.locator(".jp-OutputArea-output .cw-neuron").first.wait_for(state="visible", timeout=60_000)
    state = json.loads(notebook.run_next().splitlines()[0])
    assert state == {"tab": 1, "layer": "blocks.1", "unit": 9}
    page.wait_for_function("() => document.querySelector('.cw-neuron .cw-unit')?.value === '9'", timeout=30_000)
    assert not [e for e in page.console_errors if "cw-" in e or "plotly" in e.lower()], page.console_errors
