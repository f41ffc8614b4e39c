"""ProbeExplorer: the slider walks the probe path, the bars are the class's neurons, a click opens one."""

from __future__ import annotations

import numpy as np
import pytest

from clip_widgets import NeuronExplorer
from clip_widgets.probe import sparse_probe

pytest.importorskip("plotly")


@pytest.fixture(scope="module")
def path():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    features = rng.normal(size=(400, 24))
    features[:, 9] += 2.0 * (labels == 1)
    return sparse_probe(features, labels, ["no", "yes"], Cs=[0.001, 0.01, 0.1, 10.0], progress=False)


def test_bars_follow_the_slider_and_the_class(path):
    from clip_widgets.widgets.probe import ProbeExplorer

    view = ProbeExplorer(path, k=5)
    assert view.step.value == 2  # the sparsest probe within 5 points of the best (one neuron, 0.86)
    view.class_picker.value = "yes"
    assert list(view.bars.data[0].x) == [str(u) for u, _ in path.top_neurons("yes", 2, 5)] == ["9"]
    view.step.value = 3
    top = path.top_neurons("yes", 3, 5)
    assert list(view.bars.data[0].x) == [str(u) for u, _ in top] and len(top) == 5
    np.testing.assert_allclose(view.bars.data[0].y, [w for _, w in top])
    assert list(view.curve.data[1].x) == [path.neurons[3]]
    assert f"{path.neurons[3]} neurons" in view.summary.value


def test_clicking_a_bar_opens_the_neuron(path, vit_session):
    from plotly.callbacks import Points

    from clip_widgets.widgets.probe import ProbeExplorer

    explorer = NeuronExplorer(vit_session, "blocks.0", 0, steps=1, facets=1, vocabulary=[])
    view = ProbeExplorer(path, layer="blocks.1", explorer=explorer, k=5)
    view.class_picker.value = "yes"
    bars = view.bars.data[0]
    bars._dispatch_on_click(Points(point_inds=[0], xs=[bars.x[0]], ys=[bars.y[0]], trace_name="", trace_index=0), None)
    explorer.wait(60)
    assert (explorer.layer, explorer.unit) == ("blocks.1", 9)


def test_the_lab_puts_the_views_together_and_a_probe_neuron_opens_in_the_explorer(path, vit_session):
    from plotly.callbacks import Points

    from clip_widgets import Lab
    from clip_widgets.world import draw_scene

    lab = Lab(vit_session, draw_scene(2, size=64).image, ["a red circle", "a blue star"], probe=path,
              probe_layer="blocks.1", steps=1, facets=1, vocabulary=[])  # fmt: skip
    assert lab.titles == ("CLIP Surgery", "Neurons", "Typographic attack", "Sparse probe")
    assert lab.children == (lab.surgery, lab.explorer, lab.typographic, lab.probe)
    assert lab.surgery.labels == lab.typographic.classes == ["a red circle", "a blue star"]
    lab.selected_index = 3
    lab.probe.class_picker.value = "yes"
    bars = lab.probe.bars.data[0]
    bars._dispatch_on_click(Points(point_inds=[0], xs=[bars.x[0]], ys=[bars.y[0]], trace_name="", trace_index=0), None)
    lab.explorer.wait(60)
    assert lab.selected_index == 1 and (lab.explorer.layer, lab.explorer.unit) == ("blocks.1", 9)


def test_failures_show_in_the_banner_and_a_good_call_clears_them(path, vit_session):
    from plotly.callbacks import Points

    from clip_widgets.widgets.probe import ProbeExplorer

    explorer = NeuronExplorer(vit_session, "blocks.0", 0, steps=1, facets=1, vocabulary=[])
    with pytest.raises(ValueError, match="no layer 'blocks.5'; its layers: .*blocks.1"):
        ProbeExplorer(path, layer="blocks.5", explorer=explorer)
    view = ProbeExplorer(path, layer="blocks.1", explorer=explorer, k=5)
    assert view.banner.layout.display == "none"
    with pytest.raises(IndexError, match="units 0 to 23"):
        view.open_neuron(24)
    assert "units 0 to 23" in view.error and "units 0 to 23" in view.banner.value
    assert view.banner.layout.display == "block" and explorer.layer == "blocks.0"  # nothing moved
    view.open_neuron(9)
    explorer.wait(60)
    assert view.error == "" and view.banner.layout.display == "none"
    assert (explorer.layer, explorer.unit) == ("blocks.1", 9)
    # a click in the browser that names no unit of the probe: reported, not raised
    trace = type("Trace", (), {"x": ["-3"]})()
    view._bar_clicked(trace, Points(point_inds=[0], xs=["-3"], ys=[0.0], trace_name="", trace_index=0), None)
    assert "unit -3 is out of range" in view.error
