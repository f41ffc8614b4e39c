"""ProbeExplorer: the slider walks the probe path, the bars are the class's neurons, a click opens one."""

from __future__ import annotations

import numpy as np
import pytest

from clip_widgets import NeuronExplorer
from clip_widgets.codecs import array_to_json
from clip_widgets.probe import sparse_probe
from clip_widgets.widgets.probe import ProbeExplorer


@pytest.fixture(scope="module")
def path():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    features = rng.normal(size=(400, 24))
    features[:, 9] += 2.0 * (labels == 1)
    return sparse_probe(features, labels, ["no", "yes"], Cs=[0.001, 0.01, 0.1, 10.0], progress=False)


def click(view: ProbeExplorer, unit) -> None:
    """What the front end sends when a bar is clicked."""
    view.charts._handle_custom_msg({"type": "open", "unit": unit}, [])


def test_the_charts_hold_the_probe_path_and_the_bars_follow_the_slider_and_the_class(path):
    view = ProbeExplorer(path, k=10)
    charts = view.charts
    np.testing.assert_array_equal(charts.neurons, path.neurons)
    np.testing.assert_allclose(charts.accuracy, path.accuracy, rtol=1e-6)
    assert charts.curve_title == "Held-out accuracy vs neurons used"
    # the curve crosses as binary buffers, one value per probe of the path
    wire = charts.get_state()
    assert wire["neurons"]["shape"] == wire["accuracy"]["shape"] == [len(path.Cs)]
    assert bytes(wire["accuracy"]["view"]) == bytes(array_to_json(path.accuracy)["view"])

    assert view.step.value == charts.step == 2  # the sparsest probe within 5 points of the best (one neuron)
    view.class_picker.value = "yes"
    assert charts.units == [9] and charts.weights == [w for _, w in path.strongest_neurons("yes", 2, 10)]
    assert charts.bars_title == "Strongest weights for “yes” at C = 0.1"
    view.step.value = 3  # the densest probe: every neuron has a weight, of either sign
    strongest = path.strongest_neurons("yes", 3, 10)
    assert charts.step == 3 and len(strongest) == 10
    assert charts.units == [u for u, _ in strongest] and charts.units[0] == 9
    np.testing.assert_allclose(charts.weights, [w for _, w in strongest])
    assert any(w < 0 for w in charts.weights) and charts.weights == sorted(charts.weights, reverse=True)
    assert charts.bars_title == "Strongest weights for “yes” at C = 10"
    assert f"{path.neurons[3]} neurons" in view.summary.value
    # the other class of a binary probe: neuron 9 pushes away from it
    view.class_picker.value = "no"
    assert charts.units[-1] == 9 and charts.weights[-1] < 0


def test_strongest_neurons_are_the_largest_weights_in_magnitude(path):
    weights = path.coefs[3][path.classes.index("yes")]
    strongest = path.strongest_neurons("yes", 3, 5)
    assert sorted(u for u, _ in strongest) == sorted(np.argsort(-np.abs(weights))[:5].tolist())
    positive = [u for u, w in strongest if w > 0]
    assert positive == [u for u, _ in path.top_neurons("yes", 3, len(positive))]
    assert path.strongest_neurons("yes", 0, 5) == []  # the sparsest probe uses no neuron
    with pytest.raises(KeyError, match="the probe has"):
        path.strongest_neurons("maybe")


def test_a_point_of_the_curve_moves_the_slider(path):
    view = ProbeExplorer(path, k=5)
    view.charts.set_state({"step": 3})  # a click on the curve's last point
    assert view.step.value == 3 and view.charts.units == [u for u, _ in view.neurons()]
    view.charts.set_state({"step": 99})  # clamped to the path
    assert view.step.value == view.charts.step == 3


def test_clicking_a_bar_opens_the_neuron(path, vit_session):
    explorer = NeuronExplorer(vit_session, "blocks.0", 0, steps=1, facets=1, vocabulary=[])
    opened = []
    view = ProbeExplorer(path, layer="blocks.1", explorer=explorer, k=5, on_open=opened.append)
    view.class_picker.value = "yes"
    click(view, view.charts.units[0])
    explorer.wait(60)
    assert (explorer.layer, explorer.unit) == ("blocks.1", 9) and opened == [9]
    click(view, 9)  # the same bar again: a message each time, so it opens again
    assert opened == [9, 9]


def test_the_lab_puts_the_views_together_and_a_probe_neuron_opens_in_the_explorer(path, vit_session):
    from clip_widgets import Lab
    from clip_widgets.world import draw_scene

    lab = Lab(vit_session, draw_scene(2, size=64).image, ["a red circle", "a blue star"], probe=path,
              probe_layer="blocks.1", steps=1, facets=1, vocabulary=[])  # fmt: skip
    assert lab.titles == ("CLIP Surgery", "Neurons", "Typographic attack", "Sparse probe")
    assert lab.children == (lab.surgery, lab.explorer, lab.typographic, lab.probe)
    assert lab.surgery.labels == lab.typographic.classes == ["a red circle", "a blue star"]
    lab.selected_index = 3
    lab.probe.class_picker.value = "yes"
    click(lab.probe, lab.probe.charts.units[0])
    lab.explorer.wait(60)
    assert lab.selected_index == 1 and (lab.explorer.layer, lab.explorer.unit) == ("blocks.1", 9)


def test_failures_show_in_the_banner_and_a_good_call_clears_them(path, vit_session):
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
    # clicks from the browser that name no unit of the probe: reported, not raised
    click(view, -3)
    assert "unit -3 is out of range" in view.error
    click(view, "9")
    assert "a bar names a whole unit number, got '9'" in view.error
    assert view.charts.error == ""  # the explorer's banner shows it, not a second one
    click(view, 4)
    assert view.error == ""
