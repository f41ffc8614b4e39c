"""NeuronExplorer's Python side: what it shows is what the compute modules give, selection
changes recompute, text queries find units, and failures stay in the widget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets

from clip_widgets.examples import collect_examples, model_view, unit_maps
from clip_widgets.featvis import evaluate
from clip_widgets.featvis import objectives as obj
from clip_widgets.featvis.param import PhaseImage
from clip_widgets.textprobe import units_for_text
from clip_widgets.widgets import NeuronExplorer
from clip_widgets.world import draw_scene


@pytest.fixture(scope="module")
def store(vit_session, tmp_path_factory):
    scenes = tmp_path_factory.mktemp("scenes")
    for i in range(12):
        draw_scene(i, size=48).image.save(scenes / f"{i:02d}.png")
    return collect_examples(vit_session, scenes, ["blocks.1"], tmp_path_factory.mktemp("store"), k=4, progress=False)


@pytest.fixture
def explorer(vit_session, store):
    w = NeuronExplorer(vit_session, "blocks.1", 3, examples=store, facets=2, steps=24, example_count=3)
    w.wait(60)
    yield w
    w.close()


def test_shows_visualization_examples_and_words(explorer, vit_session, store):
    assert explorer.error == "" and not explorer.busy
    assert explorer.layer_names == vit_session.layers.names
    assert explorer.unit_count == vit_session.layers["blocks.1"].units
    images = explorer.visualization
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    assert explorer.progress == pytest.approx(1.0)
    # the visualization excites the unit more than random images of the spectrum it starts from
    achieved = evaluate(vit_session, obj.channel("blocks.1", 3), images)
    with torch.no_grad():
        random_images = PhaseImage(16, 32, 32, seed=1)()
    baseline = evaluate(vit_session, obj.channel("blocks.1", 3), random_images)
    assert achieved.min() > baseline.max()

    top = store.examples("blocks.1", 3)[:3]
    assert explorer.example_sources == [e.source for e in top]
    assert explorer.example_values == pytest.approx([e.value for e in top])
    assert explorer.examples.shape[0] == 3 and explorer.examples.dtype == np.uint8
    assert explorer.example_maps.shape == explorer.examples.shape[:3]
    # the overlay is brightest where the unit's map peaks: its maximum sits in the crop's centre cell
    maps = unit_maps(vit_session, "blocks.1", 3, [model_view(vit_session, e.source) for e in top])
    assert np.isclose(maps[0].max(), top[0].value, rtol=1e-4)
    side = explorer.example_maps.shape[1]
    centre = explorer.example_maps[0, side // 2 - 1 : side // 2 + 1, side // 2 - 1 : side // 2 + 1]
    assert centre.max() == explorer.example_maps[0].max()

    assert len(explorer.top_words) == 8 and all(isinstance(w, str) for w, _ in explorer.top_words)
    scores = [s for _, s in explorer.top_words]
    assert scores == sorted(scores, reverse=True)


def test_selection_changes_recompute(explorer, vit_session):
    before = explorer.visualization.copy()
    explorer.unit = 5
    explorer.wait(60)
    assert explorer.example_values[0] == pytest.approx(explorer._store.examples("blocks.1", 5)[0].value)
    assert not np.array_equal(explorer.visualization, before)
    explorer.layer = "blocks.0"
    explorer.wait(60)
    assert explorer.examples is None and explorer.example_values == []  # no examples collected there
    explorer.unit = 10_000
    explorer.wait(60)
    assert explorer.unit == explorer.unit_count - 1


def test_text_query_finds_units(explorer, vit_session):
    explorer.query = "red star"
    expected = units_for_text(vit_session, "blocks.1", "red star")
    assert explorer.query_results == [[u, s] for u, s in expected]
    explorer.query = "  "
    assert explorer.query_results == []


def test_bad_input_stays_in_the_widget(explorer, vit_session):
    with pytest.raises(Exception, match="Valid names"):
        explorer.layer = "blocks.7"
    assert explorer.layer == "blocks.1"
    with pytest.raises(TypeError, match="unexpected keyword argument.*colour"):
        NeuronExplorer(vit_session, colour="red")

    saved = vit_session.layers.forward

    def broken(*args, **kwargs):
        raise RuntimeError("the image tower is unavailable")

    vit_session.layers.forward = broken
    try:
        with pytest.raises(RuntimeError, match="unavailable"):  # the words panel runs in the foreground
            explorer.unit = 2
        explorer.wait(60)
        assert "the image tower is unavailable" in explorer.error
    finally:
        vit_session.layers.forward = saved
    explorer.unit = 1
    explorer.wait(60)
    assert explorer.error == "" and explorer.visualization is not None


def test_refused_values_show_in_the_widget_from_python_and_from_the_browser(explorer, vit_session, monkeypatch):
    with pytest.raises(traitlets.TraitError, match="less than 0"):
        explorer.unit = -1
    assert "less than 0" in explorer.error and explorer.unit == 3
    explorer.unit = 2  # a good value clears the error and shows the unit
    explorer.wait(60)
    assert explorer.error == "" and explorer.example_values[0] == pytest.approx(
        explorer._store.examples("blocks.1", 2)[0].value)  # fmt: skip

    resent = []
    monkeypatch.setattr(explorer, "send_state", lambda key=None: resent.append(key))
    explorer.set_state({"layer": "blocks.9"})  # as the browser sends it: no exception escapes
    assert "no layer named 'blocks.9'" in explorer.error and "Valid names: " in explorer.error
    assert explorer.layer == "blocks.1" and ["layer"] in resent
    explorer.set_state({"layer": "blocks.0"})
    explorer.wait(60)
    assert explorer.error == "" and explorer.layer == "blocks.0"
    assert explorer.unit_count == vit_session.layers["blocks.0"].units


def test_a_bare_string_vocabulary_is_one_word(vit_session):
    explorer = NeuronExplorer(vit_session, "blocks.1", 0, vocabulary="red star", steps=1, facets=1)
    explorer.wait(60)
    assert [word for word, _ in explorer.top_words] == ["red star"]
    explorer.close()
