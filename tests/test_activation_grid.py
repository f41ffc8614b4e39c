"""Activation grids: positions, the semantic dictionary, icons, and class attribution checked by
integrated gradients' completeness and on world scenes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clip_widgets.activation_grid import activation_grid
from clip_widgets.atlas import with_positions
from clip_widgets.examples import positions_of
from clip_widgets.session import ModelSession
from clip_widgets.surgery import whole_image_pixels
from clip_widgets.world import class_prompt, draw_scene


@pytest.mark.parametrize(("fixture", "layer"), [("vit_session", "blocks.1"), ("resnet_session", "layer3")])
def test_positions_units_and_icons(request, astronaut, fixture, layer):
    session = request.getfixturevalue(fixture)
    result = activation_grid(session, astronaut, layer, top=3, icon_steps=2, progress=False)
    h, w = result.grid
    units = session.layers[layer].units
    assert result.activations.shape == (h * w, units)
    assert result.icons.shape == (h * w, *session.image_size, 3) and result.icons.dtype == np.uint8
    # each position's strongest units, strongest first, straight from its activations
    expected = np.argsort(-result.activations, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(np.sort(result.top_units, axis=1), np.sort(expected, axis=1))
    assert np.all(np.diff(result.top_values, axis=1) <= 0)
    assert result.dictionary_units == sorted(set(result.top_units.flatten().tolist()))
    assert result.unit_icons.shape == (len(result.dictionary_units), *session.image_size, 3)
    assert result.unit_icon(result.dictionary_units[-1]).shape == (*session.image_size, 3)
    assert result.image.shape == (*session.image_size, 3)
    with pytest.raises(KeyError, match="semantic dictionary"):
        result.unit_icon(-5)
    with pytest.raises(IndexError, match="outside"):
        result.position(h, 0)


def test_class_attributions_add_up_to_the_logit_change(vit_session, astronaut):
    """Integrated gradients' completeness: over all positions, a class's attributions add up
    to its logit at the real activations minus its logit with every position at the baseline."""
    session, layer = vit_session, "blocks.0"
    prompts = ["an astronaut", "a dog"]
    result = activation_grid(session, astronaut, layer, classes=prompts, icon_steps=0, attribution_steps=64,
                             progress=False)  # fmt: skip
    pixels = whole_image_pixels(session, astronaut)
    text = session.encode_text(prompts)
    real = session.layers.forward(pixels, layer)[0][layer]
    baseline = positions_of(real)[0][0].mean(0)

    def logits(activation: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), session.layers.replace(layer, activation):
            embedding = session.layers.forward(pixels, need_output=True)[1]
        return session.logit_scale * torch.nn.functional.normalize(embedding, dim=-1)[0] @ text.T

    change = (logits(real) - logits(with_positions(real, baseline))).numpy()
    np.testing.assert_allclose(result.attribution.sum(0), change, rtol=0.02, atol=0.02)
    assert result.classes == prompts and result.attribution.shape == (16, 2)


def test_on_a_world_scene_each_class_is_put_on_its_shape():
    session = ModelSession.from_embedded("world-rn", device="cpu")
    scene = draw_scene(np.random.default_rng(3), spec=[("red", "star"), ("blue", "circle")], word_probability=0.0)
    labels = ["red star", "blue circle"]
    result = activation_grid(session, scene.image, "layer4", classes=[class_prompt(c) for c in labels],
                             icon_steps=0, progress=False)  # fmt: skip
    h, w = result.grid
    for c, label in enumerate(labels):
        obj = next(o for o in scene.objects if f"{o.colour} {o.shape}" == label)
        best = int(result.attribution[:, c].argmax())
        row, col = divmod(best, w)
        cell = obj.mask[row * obj.mask.shape[0] // h : (row + 1) * obj.mask.shape[0] // h,
                        col * obj.mask.shape[1] // w : (col + 1) * obj.mask.shape[1] // w]  # fmt: skip
        assert cell.mean() > 0.2, (label, row, col)


def test_bad_arguments_name_what_is_wrong(vit_session, astronaut):
    with pytest.raises(KeyError, match="blocks"):
        activation_grid(vit_session, astronaut, "no-such-layer", icon_steps=0, progress=False)
    with pytest.raises(ValueError, match="top"):
        activation_grid(vit_session, astronaut, "blocks.0", top=0, icon_steps=0, progress=False)
