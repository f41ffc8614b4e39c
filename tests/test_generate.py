"""Class images and DeepDream: the model's own score goes up, and the picture stays a picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clip_widgets.featvis import evaluate
from clip_widgets.featvis import objectives as obj
from clip_widgets.generate import class_image, deepdream
from clip_widgets.world import draw_scene

PROMPTS = ["a red circle", "a blue star"]


def test_class_images_score_highest_on_their_own_prompt(vit_session):
    # kind="phase": the default's alpha channel learns where a trained model sees the thing (the
    # embedded models' tests); a random tiny model sees no thing, only the frame's texture. One
    # optimization: the default's picking by the plain score can take, on a random model whose
    # prompts embed alike, an image that scores higher still on the other prompt
    result = class_image(vit_session, PROMPTS, kind="phase", steps=48, restarts=1, progress=False)
    assert result.images.shape == (2, 32, 32, 3)
    text = vit_session.encode_text(PROMPTS)
    pixels = torch.from_numpy(result.images).permute(0, 3, 1, 2).float() / 255
    scores = evaluate(vit_session, obj.text(text), pixels)  # image i against prompt i
    start = evaluate(vit_session, obj.text(text), torch.full((2, 3, 32, 32), 0.5))
    assert (scores > start + 0.05).all(), (scores, start)
    crossed = np.array([evaluate(vit_session, obj.text(text[j]), pixels[i : i + 1])[0]
                        for i in range(2) for j in range(2)]).reshape(2, 2)  # fmt: skip
    assert (crossed.argmax(1) == np.arange(2)).all(), crossed


def test_the_l2_penalty_keeps_class_images_closer_to_grey(vit_session):
    free = class_image(vit_session, "a red circle", kind="pixel", l2=0.0, steps=48, progress=False).images
    held = class_image(vit_session, "a red circle", kind="pixel", l2=50.0, steps=48, progress=False).images
    spread = lambda images: float(((images / 255.0 - 0.5) ** 2).mean())  # noqa: E731
    assert spread(held) < 0.7 * spread(free), (spread(held), spread(free))


def test_class_image_passes_options_to_its_parameterization(vit_session):
    soft = class_image(vit_session, "a red circle", steps=2, param_kw={"alpha_sharpness": 1.0}, progress=False)
    sharp = class_image(vit_session, "a red circle", steps=2, progress=False)
    assert not np.array_equal(soft.images, sharp.images)
    with pytest.raises(ValueError, match="alpha_sharpness"):
        class_image(vit_session, "a red circle", steps=2, param_kw={"alpha_sharpness": 0.0}, progress=False)
    with pytest.raises(TypeError, match="alpha_sharpness"):  # options of the picture go in param_kw
        class_image(vit_session, "a red circle", steps=2, alpha_sharpness=1.0, progress=False)


def test_class_images_average_over_the_views_their_image_tower_takes(vit_session, resnet_session):
    """Four draws a step on a ViT, one on a ResNet (CLASS_IMAGE_VIEWS), unless views= says."""
    for session, views in ((vit_session, 4), (resnet_session, 1)):
        made = lambda **kw: class_image(session, "a red circle", steps=3, progress=False, **kw).images  # noqa: E731, B023
        default = made()
        assert np.array_equal(default, made(views=views)), session.architecture
        assert not np.array_equal(default, made(views=5 - views)), session.architecture


def test_class_images_are_seen_turned_and_through_crops_no_smaller_than_the_default(vit_session):
    from clip_widgets.featvis.transform import crop_transforms, random_dihedral
    from clip_widgets.generate import CLASS_IMAGE_CROP

    made = lambda **kw: class_image(vit_session, "a red circle", steps=3, progress=False, **kw).images  # noqa: E731
    default = made()
    assert np.array_equal(default, made(transforms=[*crop_transforms(CLASS_IMAGE_CROP), random_dihedral()]))
    upright = made(turns=False)
    assert np.array_equal(upright, made(transforms=crop_transforms(CLASS_IMAGE_CROP)))
    assert not np.array_equal(default, upright)
    assert not np.array_equal(upright, made(transforms=crop_transforms()))  # MACO's 0.4 is another draw


def test_deepdream_raises_the_layer_and_keeps_the_picture(vit_session):
    scene = draw_scene(4, size=48).image
    dreamed = deepdream(vit_session, scene, "blocks.0", octaves=2, steps=16, progress=False)
    assert dreamed.shape == (48, 48, 3) and dreamed.dtype == np.uint8
    original = np.asarray(scene)
    to_pixels = lambda a: torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    objective = obj.deepdream("blocks.0")
    assert evaluate(vit_session, objective, to_pixels(dreamed))[0] > 1.1 * evaluate(
        vit_session, objective, to_pixels(original))[0]  # fmt: skip
    assert not np.array_equal(dreamed, original)
    assert np.corrcoef(dreamed.ravel().astype(float), original.ravel().astype(float))[0, 1] > 0.6
    one_unit = deepdream(vit_session, scene, "blocks.0", unit=3, octaves=1, steps=16, progress=False)
    assert evaluate(vit_session, obj.channel("blocks.0", 3), to_pixels(one_unit))[0] > evaluate(
        vit_session, obj.channel("blocks.0", 3), to_pixels(original))[0]  # fmt: skip


def test_restarts_keep_each_prompts_best_image_of_its_seeds(vit_session):
    prompts = ["a red circle", "a blue star", "a green square", "a yellow cross"]
    kw = {"kind": "phase", "steps": 12, "progress": False}
    singles = [class_image(vit_session, prompts, seed=seed, restarts=1, **kw) for seed in (3, 4, 5)]
    best = class_image(vit_session, prompts, seed=3, restarts=3, **kw)
    text = obj.text(vit_session.encode_text(prompts))
    achieved = np.stack([evaluate(vit_session, text, single.images) for single in singles])  # (seeds, prompts)
    chosen = achieved.argmax(0)
    assert len(set(chosen.tolist())) > 1, achieved  # the seeds disagree, so picking is tested
    for i, seed in enumerate(chosen):
        np.testing.assert_array_equal(best.images[i], singles[seed].images[i])
        assert best.scores[i] == singles[seed].scores[i]
        assert best.history[-1][i] == singles[seed].history[-1][i]
    assert len(best.history) == len(singles[0].history) and best.steps == 12
    # the default is the best of two: seeds 3 and 4
    default = class_image(vit_session, prompts, seed=3, **kw)
    for i, seed in enumerate(achieved[:2].argmax(0)):
        np.testing.assert_array_equal(default.images[i], singles[seed].images[i])
    with pytest.raises(ValueError, match="restarts must be at least 1, got 0"):
        class_image(vit_session, prompts, restarts=0, **kw)
    with pytest.raises(TypeError, match="restarts is a whole number of optimizations, got 1.5"):
        class_image(vit_session, prompts, restarts=1.5, **kw)
