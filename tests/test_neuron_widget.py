"""NeuronExplorer's Python side: what it shows is what the compute modules give, selection
changes recompute, text queries find units, and failures stay in the widget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets

from clip_widgets.examples import collect_examples, crop_box, example_views, model_view, unit_maps
from clip_widgets.featvis import evaluate, render
from clip_widgets.featvis import objectives as obj
from clip_widgets.featvis.param import PhaseImage
from clip_widgets.textprobe import QUERY_SCORES, rank_words_by_image, units_for_text
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
    assert explorer.examples.shape == (3, 128, 128, 3) and explorer.examples.dtype == np.uint8
    assert explorer.example_maps.shape == explorer.examples.shape[:3]
    assert explorer.examples_of == ["blocks.1", 3]
    # the whole images, their heat over the layer's grid and the crops' boxes, as example_views gives them
    views = example_views(vit_session, store, "blocks.1", 3, count=3)
    np.testing.assert_array_equal(explorer.examples, views.crops)
    np.testing.assert_array_equal(explorer.example_maps, views.crop_heat)
    np.testing.assert_array_equal(explorer.example_images, views.images)
    np.testing.assert_array_equal(explorer.example_image_maps, views.heat)
    assert explorer.example_images.shape == (3, *vit_session.image_size, 3)
    assert explorer.example_image_maps.shape == (3, *store.meta["grids"]["blocks.1"])
    assert explorer.example_boxes == [list(crop_box(vit_session.image_size[::-1], e)) for e in top]
    # the overlay is brightest where the unit's map peaks: its maximum sits in the crop's centre cell
    maps = unit_maps(vit_session, "blocks.1", 3, [model_view(vit_session, e.source) for e in top])
    assert np.isclose(maps[0].max(), top[0].value, rtol=1e-4)
    side = explorer.example_maps.shape[1]
    centre = explorer.example_maps[0, side // 2 - 1 : side // 2 + 1, side // 2 - 1 : side // 2 + 1]
    assert centre.max() == explorer.example_maps[0].max()

    assert len(explorer.top_words) == 8 and all(isinstance(w, str) for w, _ in explorer.top_words)
    scores = [s for _, s in explorer.top_words]
    assert scores == sorted(scores, reverse=True)
    # the bars' baseline: the mean over the whole vocabulary, below the top words' scores
    (ranked,) = rank_words_by_image(vit_session, "blocks.1", [3], explorer._vocabulary, progress=False)
    assert explorer.word_baseline == pytest.approx(float(np.mean(ranked.scores)), rel=1e-5)
    assert explorer.word_baseline < scores[0]
    assert explorer.visualization_of == explorer.words_of == ["blocks.1", 3]


def test_bottom_examples_are_the_stores_bottom_k(explorer, vit_session, store):
    top_images = explorer.examples.copy()
    explorer.example_set = "bottom"
    bottom = store.examples("blocks.1", 3, "bottom")[:3]
    assert explorer.example_sources == [e.source for e in bottom]
    assert explorer.example_values == pytest.approx([e.value for e in bottom])
    views = example_views(vit_session, store, "blocks.1", 3, which="bottom", count=3)
    np.testing.assert_array_equal(explorer.examples, views.crops)
    np.testing.assert_array_equal(explorer.example_image_maps, views.heat)
    assert not np.array_equal(explorer.examples, top_images)
    # bottom heat is highest where the unit is lowest: at the bottom example's own minimum
    maps = unit_maps(vit_session, "blocks.1", 3, [model_view(vit_session, e.source) for e in bottom])
    row, col = bottom[0].position
    assert maps[0].min() == pytest.approx(bottom[0].value, rel=1e-4)
    assert explorer.example_image_maps[0, row, col] == explorer.example_image_maps[0].max()
    explorer.unit = 4  # the choice holds for the next unit
    explorer.wait(60)
    assert explorer.example_sources == [e.source for e in store.examples("blocks.1", 4, "bottom")[:3]]
    with pytest.raises(traitlets.TraitError):
        explorer.example_set = "middle"
    assert explorer.example_set == "bottom" and "middle" in explorer.error


def test_selection_changes_recompute(explorer, vit_session):
    before = explorer.visualization.copy()
    explorer.unit = 5
    explorer.wait(60)
    assert explorer.example_values[0] == pytest.approx(explorer._store.examples("blocks.1", 5)[0].value)
    assert not np.array_equal(explorer.visualization, before)
    assert explorer.visualization_of == ["blocks.1", 5]
    explorer.layer = "blocks.0"
    explorer.wait(60)
    assert explorer.examples is None and explorer.example_values == []  # no examples collected there
    assert explorer.example_images is None and explorer.example_boxes == []
    assert explorer.examples_of == explorer.words_of == explorer.visualization_of == ["blocks.0", 5]


def test_a_unit_outside_the_layer_is_refused_naming_the_valid_range(explorer, vit_session, monkeypatch):
    count = vit_session.layers["blocks.1"].units
    valid = f"valid units are 0 to {count - 1}"
    for bad in (9999, count, -1):
        with pytest.raises(IndexError, match=f"unit {bad} out of range for layer 'blocks.1': {valid}"):
            explorer.unit = bad
        assert explorer.unit == 3 and valid in explorer.error
    resent = []
    monkeypatch.setattr(explorer, "send_state", lambda key=None: resent.append(key))
    explorer.set_state({"unit": 9999})  # as the browser sends a typed number: no exception escapes
    assert explorer.error == f"UnitOutOfRangeError: unit 9999 out of range for layer 'blocks.1': {valid}"
    assert explorer.unit == 3 and ["unit"] in resent
    explorer.wait(60)  # nothing was computed for the refused unit, nor for a unit clamped from it
    assert explorer.visualization_of == explorer.examples_of == ["blocks.1", 3]
    explorer.set_state({"unit": 2})
    explorer.wait(60)
    assert explorer.error == "" and explorer.unit == 2
    with pytest.raises(IndexError, match="valid units are 0 to"):
        NeuronExplorer(vit_session, "blocks.1", 9999)


def test_text_query_finds_units(explorer, vit_session):
    explorer.query = "red star"
    expected = units_for_text(vit_session, "blocks.1", "red star")
    assert explorer.query_results == [[u, s] for u, s in expected]  # the chips' units and scores
    assert "blocks.1" in explorer.query_heading and "red star" in explorer.query_heading
    assert QUERY_SCORES["image"] in explorer.query_heading  # blocks.1 does not map into the embedding
    # a layer switch recomputes the chips for the new layer: no unit of the old one stays
    explorer.layer = "ln_post"
    explorer.wait(60)
    by_embedding = units_for_text(vit_session, "ln_post", "red star")
    assert explorer.query_results == [[u, s] for u, s in by_embedding] != [[u, s] for u, s in expected]
    assert "ln_post" in explorer.query_heading and QUERY_SCORES["embedding"] in explorer.query_heading
    explorer.query = "  "
    assert explorer.query_results == [] and explorer.query_heading == ""
    explorer.layer = "blocks.1"
    explorer.wait(60)
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
    with pytest.raises(IndexError, match="valid units are 0 to"):
        explorer.unit = -1
    assert "valid units are 0 to" in explorer.error and explorer.unit == 3
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


def test_the_lab_gives_its_explorer_examples_of_world_scenes(vit_session):
    from clip_widgets import Lab
    from clip_widgets.world import draw_scene

    lab = Lab(vit_session, draw_scene(2, size=64).image, ["a red circle", "a blue star"], explorer_layer="blocks.1",
              steps=1, facets=1, vocabulary=["red"], example_count=4)  # fmt: skip
    lab.explorer.wait(60)
    explorer = lab.explorer
    assert explorer.error == "" and explorer.examples is not None and explorer.examples.shape[0] == 4
    store = explorer._store
    assert set(store.layers) == set(explorer.layer_names)  # every layer the tab can show has examples
    assert explorer.example_values == pytest.approx([e.value for e in store.examples("blocks.1", 0)[:4]])
    scene = draw_scene(store.examples("blocks.1", 0)[0].index, size=vit_session.image_size[0]).image
    np.testing.assert_array_equal(explorer.example_images[0], np.asarray(model_view(vit_session, scene)))
    explorer.layer = "blocks.0"
    explorer.wait(60)
    assert explorer.examples is not None


def test_fine_detail_redraws_the_unit_with_more_steps_of_several_draws(vit_session):
    explorer = NeuronExplorer(vit_session, "blocks.1", 3, facets=2, steps=8, fine_steps=12, fine_views=2)
    explorer.wait(60)
    assert explorer.detail == "quick" and explorer.drawn_with == [8, 1]
    quick = explorer.visualization.copy()
    explorer.detail = "fine"
    explorer.wait(60)
    assert explorer.error == "" and explorer.drawn_with == [12, 2] and explorer.progress == pytest.approx(1.0)
    assert explorer.visualization_of == ["blocks.1", 3]
    # what render draws with the same objective, steps and draws a step
    objective = obj.channel("blocks.1", 3) + 0.05 * obj.diversity("blocks.1")
    expected = render(vit_session, objective, batch=2, steps=12, views=2, progress=False).images
    np.testing.assert_array_equal(explorer.visualization, expected)
    assert not np.array_equal(explorer.visualization, quick)
    explorer.unit = 4  # units picked afterwards are drawn the same way
    explorer.wait(60)
    assert explorer.drawn_with == [12, 2] and explorer.visualization_of == ["blocks.1", 4]
    explorer.detail = "quick"
    explorer.wait(60)
    assert explorer.drawn_with == [8, 1]
    with pytest.raises(traitlets.TraitError):
        explorer.detail = "best"
    assert explorer.detail == "quick" and "best" in explorer.error
    explorer.close()
    with pytest.raises(ValueError, match="fine_steps and fine_views must be at least 1, got 256 and 0"):
        NeuronExplorer(vit_session, "blocks.1", 3, fine_views=0)
