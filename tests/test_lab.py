"""Lab with background=True: the dashboard is returned at once, the Neurons tab and the probe fill
in from a background thread, with progress in the waiting tabs and failures shown there."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from clip_widgets import Lab, NeuronExplorer
from clip_widgets.probe import sparse_probe
from clip_widgets.widgets.pending import PendingView
from clip_widgets.widgets.probe import ProbeExplorer
from clip_widgets.world import draw_scene

TITLES = ("CLIP Surgery", "Neurons", "Typographic attack", "Sparse probe")
LABELS = ["a red circle", "a blue star"]
QUICK = {"steps": 1, "facets": 1, "vocabulary": []}


@pytest.fixture(scope="module")
def path():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    features = rng.normal(size=(200, 24))
    features[:, 9] += 2.0 * (labels == 1)
    return sparse_probe(features, labels, ["no", "yes"], Cs=[0.01, 0.1, 10.0], progress=False)


@pytest.fixture(scope="module")
def image():
    return draw_scene(2, size=64).image


def test_a_background_lab_shows_progress_then_each_view_in_its_tab(vit_session, image, path):
    release = threading.Event()

    def slow_probe():
        assert release.wait(60), "the test never released the probe"
        return path

    lab = Lab(vit_session, image, LABELS, probe=slow_probe, probe_layer="blocks.1", background=True, **QUICK)
    # at once: the first tab is ready, the others wait with a progress view
    assert lab.children[0] is lab.surgery and lab.children[2] is lab.typographic
    assert lab.busy and lab.probe is None
    neurons, probe = lab.children[1], lab.children[3]  # boxes that show the views once they are ready
    assert isinstance(probe.children[0], PendingView)
    # the explorer arrives while the probe is still being fitted
    for _ in range(600):
        if lab.explorer is not None and neurons.children == (lab.explorer,):
            break
        time.sleep(0.1)
    assert isinstance(neurons.children[0], NeuronExplorer) and lab.busy
    (waiting,) = probe.children
    assert 0 < lab.progress < 1 and "fitting the sparse probe" in lab.status
    assert waiting.bar.value == pytest.approx(lab.progress) and "fitting the sparse probe" in waiting.message.value
    assert lab.titles[1] == "Neurons" and lab.titles[3] == f"Sparse probe {lab.progress:.0%}"

    release.set()
    lab.wait(60)
    assert not lab.busy and lab.progress == 1.0 and lab.status == "ready" and lab.error == ""
    assert isinstance(lab.probe, ProbeExplorer) and lab.probe.explorer is lab.explorer
    assert (neurons.children, probe.children) == ((lab.explorer,), (lab.probe,)) and lab.children[3] is probe
    assert lab.titles == TITLES
    assert lab.explorer.examples is not None  # examples of drawn scenes, collected in the background
    lab.explorer.wait(60)


def test_a_failure_in_the_background_shows_in_the_waiting_tabs_and_in_error(vit_session, image):
    def broken_probe():
        raise RuntimeError("no scenes to probe")

    lab = Lab(vit_session, image, LABELS, probe=broken_probe, probe_layer="blocks.1", background=True, **QUICK)
    lab.wait(60)
    assert not lab.busy and lab.error == "RuntimeError: no scenes to probe"
    assert isinstance(lab.explorer, NeuronExplorer) and lab.children[1].children == (lab.explorer,)  # what worked
    (waiting,) = lab.children[3].children
    assert isinstance(waiting, PendingView) and waiting.bar.bar_style == "danger"
    assert "no scenes to probe" in waiting.message.value and lab.titles[3] == "Sparse probe \N{WARNING SIGN}"
    lab.explorer.wait(60)


def test_without_background_a_probe_function_is_called_before_the_lab_returns(vit_session, image, path):
    lab = Lab(vit_session, image, LABELS, probe=lambda: path, probe_layer="blocks.1", **QUICK)
    assert not lab.busy and lab.progress == 1.0
    assert lab.children == (lab.surgery, lab.explorer, lab.typographic, lab.probe) and lab.titles == TITLES
    assert lab.probe.path is path
    lab.explorer.wait(60)


def test_grid_and_heads_tabs_are_built_when_first_opened(vit_session, resnet_session, image):
    from clip_widgets import ActivationGridWidget, HeadExplorer

    scenes = [draw_scene(k, size=64).image for k in range(6)]
    lab = Lab(vit_session, image, LABELS, grid_layer="blocks.1", head_images=scenes, **QUICK)
    assert lab.titles == ("CLIP Surgery", "Neurons", "Typographic attack", "Activation grid", "Attention heads")
    assert lab.grid is None and lab.heads is None  # nothing spent on them until they are opened
    grid = lab.open_tab("Activation grid")
    assert isinstance(grid, ActivationGridWidget) and grid is lab.grid and lab.children[3].children == (grid,)
    assert grid.layer == "blocks.1" and lab.selected_index == 3
    grid.wait(60)
    assert grid.error == "" and grid.result.classes == LABELS
    heads = lab.open_tab("Attention heads")
    assert isinstance(heads, HeadExplorer) and lab.heads is heads
    heads.wait(60)
    assert heads.error == ""
    assert lab.open_tab("Activation grid") is grid  # opened again: the same view, not a new one
    with pytest.raises(ValueError, match="the tabs are"):
        lab.open_tab("Microscope")
    lab.explorer.wait(60)

    # options go to the grid: without icon steps it shows its positions and units but no icons
    lab = Lab(vit_session, image, LABELS, grid_layer="blocks.1", grid_options={"icon_steps": 0, "top": 2}, **QUICK)
    grid = lab.open_tab("Activation grid")
    grid.wait(60)
    assert grid.error == "" and grid.icons is None and grid.result.top_units.shape[-1] == 2
    assert lab.grid.result.icons is None and grid.grid == list(grid.result.grid)
    lab.explorer.wait(60)

    with pytest.raises(KeyError, match="no-such-layer"):
        Lab(vit_session, image, LABELS, grid_layer="no-such-layer", **QUICK)
    with pytest.raises(TypeError, match=r"icon_step.*the options are \['top', 'icon_steps', 'icon_px'\]"):
        Lab(vit_session, image, LABELS, grid_layer="blocks.1", grid_options={"icon_step": 8}, **QUICK)
    from clip_widgets.errors import UnsupportedModelError

    with pytest.raises(UnsupportedModelError):
        Lab(resnet_session, image, LABELS, head_images=scenes, **QUICK)
