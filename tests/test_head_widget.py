"""HeadExplorer's Python side: what it shows is what decompose and textspan compute directly."""

from __future__ import annotations

import numpy as np
import pytest
import traitlets

from clip_widgets import HeadExplorer
from clip_widgets.decompose import decompose
from clip_widgets.errors import UnsupportedModelError
from clip_widgets.examples import model_view
from clip_widgets.session import ModelSession
from clip_widgets.textspan import collect_parts, explain_heads, head_map, mean_ablation
from clip_widgets.world import CLASSES, class_prompt, draw_scene

PROMPTS = [class_prompt(c) for c in CLASSES]


@pytest.fixture(scope="module")
def world_vit() -> ModelSession:
    return ModelSession.from_embedded("world-vit", device="cpu")


def _scenes(count: int, offset: int = 0) -> list:
    return [draw_scene(np.random.default_rng(k), spec=[tuple(CLASSES[k % len(CLASSES)].split())],
                       word_probability=0.0).image for k in range(offset, offset + count)]  # fmt: skip


@pytest.fixture(scope="module")
def scenes() -> list:
    return _scenes(30)


@pytest.fixture(scope="module")
def explorer(world_vit, scenes) -> HeadExplorer:
    return HeadExplorer(world_vit, scenes, classes=PROMPTS, labels=[PROMPTS[k % 30] for k in range(30)], count=3)


def _expected_map(session, picture, layer, head, text):
    return head_map(decompose(session, [picture]), layer, head, session.encode_text([text])[0])


def test_the_explorer_shows_what_textspan_computes(world_vit, scenes, explorer):
    parts = collect_parts(world_vit, scenes, progress=False)
    spans = explain_heads(world_vit, parts, count=3)
    np.testing.assert_allclose(explorer.variance, spans.variance, rtol=1e-5)
    assert (explorer.layer_count, explorer.head_count, explorer.image_count) == (6, 4, 30)
    for layer in range(6):
        for head in range(4):
            shown, span = explorer.spans[layer][head], spans.spans[layer][head]
            assert shown["texts"] == span.texts
            np.testing.assert_allclose(shown["explained"], span.explained, rtol=1e-6)
            assert shown["residual"] == pytest.approx(span.residual)
    ablation = mean_ablation(parts, world_vit.encode_text(PROMPTS).numpy(), np.arange(30) % 30)
    np.testing.assert_allclose(explorer.ablation, ablation.heads)
    assert explorer.baseline == pytest.approx(ablation.baseline) and explorer.baseline > 0.9
    assert explorer.progress == 1.0 and explorer.status == "" and not explorer.busy and explorer.error == ""

    # the map of the selected head and text, on the image as the model sees it
    np.testing.assert_array_equal(explorer.image, np.asarray(model_view(world_vit, scenes[0])))
    assert (explorer.layer, explorer.head, explorer.text) == (0, 0, 0)
    np.testing.assert_allclose(explorer.head_map, _expected_map(world_vit, scenes[0], 0, 0, spans.texts(0, 0)[0]),
                               atol=1e-5)  # fmt: skip
    explorer.select(4, 2, 1)
    np.testing.assert_allclose(explorer.head_map, _expected_map(world_vit, scenes[0], 4, 2, spans.texts(4, 2)[1]),
                               atol=1e-5)  # fmt: skip
    # every head's maps travel too: the view previews a hovered head without asking Python
    for layer, head, k in ((5, 3, 2), (1, 0, 0)):
        expected = _expected_map(world_vit, scenes[0], layer, head, spans.texts(layer, head)[k])
        np.testing.assert_allclose(explorer.maps[layer, head, k], expected, atol=1e-5)

    explorer.image_index = 7
    np.testing.assert_array_equal(explorer.image, np.asarray(model_view(world_vit, scenes[7])))
    np.testing.assert_allclose(explorer.head_map, _expected_map(world_vit, scenes[7], 4, 2, spans.texts(4, 2)[1]),
                               atol=1e-5)  # fmt: skip
    outside = _scenes(1, offset=500)[0]
    explorer.set_image(outside)
    assert explorer.image_index == -1
    np.testing.assert_allclose(explorer.head_map, _expected_map(world_vit, outside, 4, 2, spans.texts(4, 2)[1]),
                               atol=1e-5)  # fmt: skip
    explorer.image_index = 0
    np.testing.assert_array_equal(explorer.image, np.asarray(model_view(world_vit, scenes[0])))


def test_selection_follows_both_ways_and_errors_keep_it_usable(world_vit, scenes, explorer, monkeypatch):
    explorer.select(2, 1, 2)
    explorer.head = 3  # another head: its first text
    assert (explorer.layer, explorer.head, explorer.text) == (2, 3, 0)
    np.testing.assert_allclose(explorer.head_map, explorer.maps[2, 3, 0])
    explorer.text = 1
    np.testing.assert_allclose(explorer.head_map, explorer.maps[2, 3, 1])

    # from Python: refused values raise, name the range, and keep the last good selection
    for name, value, message in (("layer", 6, "layer 6 out of range: valid are 0 to 5"),
                                 ("head", -1, "head -1 out of range: valid are 0 to 3"),
                                 ("text", 3, "text of layer 2 head 3 3 out of range: valid are 0 to 2"),
                                 ("image_index", 30, "image 30 out of range: valid are 0 to 29")):  # fmt: skip
        with pytest.raises(IndexError, match="out of range"):
            setattr(explorer, name, value)
        assert message in explorer.error
        assert (explorer.layer, explorer.head, explorer.text) == (2, 3, 1)
    explorer.layer = 1  # a good value clears
    assert explorer.error == "" and explorer.text == 0
    with pytest.raises(IndexError, match="head 4"):
        explorer.select(0, 4)
    assert explorer.layer == 1

    # a bad image keeps the current one
    before = explorer.image.copy()
    with pytest.raises(Exception, match="nowhere.png"):
        explorer.set_image("nowhere.png")
    assert "nowhere.png" in explorer.error
    np.testing.assert_array_equal(explorer.image, before)

    # from the browser: reported, not raised, and the browser is sent the kept value
    resent = []
    monkeypatch.setattr(explorer, "send_state", lambda key=None: resent.append(key))
    explorer.set_state({"layer": 3, "head": 9, "text": 0})
    assert "head 9 out of range" in explorer.error and (explorer.layer, explorer.head) == (1, 3)
    assert any(key and "head" in key for key in resent)
    explorer.set_state({"layer": 3, "head": 2, "text": 0})
    assert explorer.error == "" and (explorer.layer, explorer.head) == (3, 2)
    np.testing.assert_allclose(explorer.head_map, explorer.maps[3, 2, 0])
    explorer.set_state({"colour_by": "ablation"})
    assert explorer.colour_by == "ablation" and explorer.error == ""
    explorer.colour_by = "variance"


def test_without_labels_there_is_no_ablation_and_work_can_run_in_the_background(world_vit):
    images = _scenes(8, offset=200)
    widget = HeadExplorer(world_vit, images, image=3, vocabulary=["a red circle", "a blue star", "a square"],
                          count=2, background=True, layer=5, head=1, text=1)  # fmt: skip
    widget.wait(120)
    assert not widget.busy and widget.progress == 1.0 and widget.error == ""
    assert widget.ablation is None and widget.baseline is None and widget.image_index == 3
    assert (widget.layer, widget.head, widget.text) == (5, 1, 1)
    text = widget.spans[5][1]["texts"][1]
    np.testing.assert_allclose(widget.head_map, _expected_map(world_vit, images[3], 5, 1, text), atol=1e-5)
    with pytest.raises(ValueError, match="classes and labels"):
        widget.colour_by = "ablation"
    assert widget.colour_by == "variance" and "classes and labels" in widget.error
    widget.close()


def test_a_failed_preparation_shows_in_the_widget(world_vit, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("text tower unavailable")

    monkeypatch.setattr(world_vit, "encode_text", broken)
    widget = HeadExplorer(world_vit, _scenes(4))
    assert widget.error == "RuntimeError: text tower unavailable" and not widget.busy
    assert widget.image is not None and widget.maps is None  # the picture, no maps
    widget.close()


def test_arguments_it_cannot_use_raise(world_vit, resnet_session):
    images = _scenes(3)
    with pytest.raises(TypeError, match="both classes"):
        HeadExplorer(world_vit, images, labels=[0, 1, 2])
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        HeadExplorer(world_vit, images, classes=PROMPTS, labels=[0, 1])
    with pytest.raises(ValueError, match="none of the"):
        HeadExplorer(world_vit, images, classes=PROMPTS, labels=[0, 1, "a purple moon"])
    with pytest.raises(IndexError, match="image 3 out of range"):
        HeadExplorer(world_vit, images, image=3)
    with pytest.raises(IndexError, match="layer 7"):
        HeadExplorer(world_vit, images, layer=7)
    with pytest.raises(TypeError, match="unexpected keyword"):
        HeadExplorer(world_vit, images, colour="red")
    with pytest.raises(UnsupportedModelError):
        HeadExplorer(resnet_session, images)
    with pytest.raises(traitlets.TraitError):
        HeadExplorer(world_vit, images, colour_by="size")
