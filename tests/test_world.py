"""The shapes world: deterministic scenes whose captions and masks match what is drawn."""

from __future__ import annotations

import re

import numpy as np
import pytest

from clip_widgets.world import _SIZES, CLASSES, COLOURS, SHAPES, caption_for, class_prompt, draw_scene


def test_same_seed_same_scene_and_different_seeds_differ():
    a, b, c = draw_scene(3), draw_scene(3), draw_scene(4)
    np.testing.assert_array_equal(np.asarray(a.image), np.asarray(b.image))
    assert a.caption == b.caption
    np.testing.assert_array_equal(a.masks, b.masks)
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_masks_cover_pixels_of_the_named_colour():
    for seed in range(40):
        scene = draw_scene(seed, word_probability=0.0)
        pixels = np.asarray(scene.image).astype(float)
        for obj in scene.objects:
            if obj.mask.sum() < 10:  # almost hidden under a later shape
                continue
            mean = pixels[obj.mask].mean(0)
            nearest = min(COLOURS, key=lambda name: np.linalg.norm(mean - np.array(COLOURS[name])))
            assert nearest == obj.colour, (seed, obj.label, mean)


def test_masks_do_not_overlap_and_match_the_caption():
    scene = draw_scene(11, objects=3, word_probability=0.0)
    assert len(scene.objects) == 3
    assert (scene.masks.sum(0) <= 1).all()
    for obj in scene.objects:
        assert f"{obj.colour} {obj.shape}" in scene.caption
    assert scene.caption.count(" and ") == 1


def test_spec_and_written_word():
    scene = draw_scene(5, spec=[("orange", "star")], word="ipod")
    assert scene.labels == ["orange star"]
    assert re.fullmatch(r'an? ((small|large) )?orange star, with the word "ipod"', scene.caption), scene.caption
    assert scene.word_mask is not None and scene.word_mask.sum() > 5
    # the word is drawn in near-black or near-white ink over its mask
    ink = np.asarray(scene.image)[scene.word_mask & ~scene.masks[0]].astype(float)
    assert ((ink.mean(1) < 60) | (ink.mean(1) > 200)).mean() > 0.5
    with pytest.raises(ValueError, match="unknown object"):
        draw_scene(0, spec=[("teal", "circle")])


def test_captions_and_classes():
    assert len(CLASSES) == len(COLOURS) * len(SHAPES) == 30
    scene = draw_scene(0, spec=[("orange", "circle"), ("red", "cross")], word_probability=0.0)
    caption = caption_for(scene.objects)
    assert caption.startswith(("an orange circle and a", "a large orange circle and a")), caption
    assert caption.endswith("red cross")


def test_sizes_in_captions_are_true_and_sometimes_left_out():
    named, unnamed = 0, 0
    for seed in range(60):
        scene = draw_scene(seed, objects=1, word_probability=0.0)
        (obj,) = scene.objects
        low, high = _SIZES[obj.size]
        assert low * 64 <= obj.radius <= high * 64
        if obj.size_in_caption:
            named += 1
            assert scene.caption == class_prompt(f"{obj.size} {obj.label}")
        else:
            unnamed += 1
            assert scene.caption == class_prompt(obj.label)  # a lone shape reads like a zero-shot prompt
    assert named > 10 and unnamed > 10
    assert {class_prompt("orange star"), class_prompt("red circle")} == {"an orange star", "a red circle"}


def test_the_varied_style_keeps_twins_aligned_and_sizes_in_range():
    from clip_widgets.world_styles import RADIUS_RANGE  # noqa: PLC0415

    photos = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    radii = []
    for seed in range(30):
        a = draw_scene(seed, spec=[("red", "star")], style="varied", photos=photos, word_probability=0.0)
        b = draw_scene(seed, spec=[("red", "circle")], style="varied", photos=photos, word_probability=0.0)
        # twins: the same background and camera everywhere but on the edited object
        outside = ~(a.masks[0] | b.masks[0])
        grown = np.asarray(a.image, float)[outside] - np.asarray(b.image, float)[outside]
        assert np.abs(grown).mean() < 8, seed  # sensor noise is drawn the same; blur mixes edges
        radii.append(a.objects[0].radius / 64)
    assert RADIUS_RANGE[0] <= min(radii) and max(radii) <= RADIUS_RANGE[1]
    assert max(radii) - min(radii) > 0.15  # small and large shapes both occur
    with pytest.raises(ValueError, match="unknown style 'fancy'.*plain"):
        draw_scene(0, style="fancy")


def test_varied_scenes_keep_the_named_colour_the_strongest_on_the_object():
    hits = 0
    for seed in range(60):
        colour = list(COLOURS)[seed % len(COLOURS)]
        scene = draw_scene(seed, spec=[(colour, "square")], style="varied", word_probability=0.0)
        mean = np.asarray(scene.image, float)[scene.masks[0]].mean(0)
        chroma = np.array(list(COLOURS.values()), float)
        chroma -= chroma.mean(1, keepdims=True)  # each named colour less its grey: a direction of hue
        chroma /= np.linalg.norm(chroma, axis=1, keepdims=True)
        hits += list(COLOURS)[int(np.argmax(chroma @ (mean - mean.mean())))] == colour  # nearest hue, any light
    assert hits >= 55, hits


def test_text_scenes_show_the_word_and_name_what_it_names():
    from clip_widgets.world import READABLE, draw_text_scene  # noqa: PLC0415

    captions = set()
    for seed in range(40):
        scene = draw_text_scene(seed)
        assert scene.objects == [] and scene.word_mask.sum() > 10, seed
        pixels = np.asarray(scene.image, float).mean(-1)
        near = np.zeros_like(scene.word_mask)
        near[1:-1, 1:-1] = scene.word_mask[:-2, 1:-1] | scene.word_mask[2:, 1:-1]
        # the ink stands out from what surrounds it (camera noise and blur included)
        assert abs(pixels[scene.word_mask].mean() - pixels[near & ~scene.word_mask].mean()) > 20, seed
        expected = READABLE.get(scene.word) or class_prompt(scene.word)
        assert scene.caption == expected
        captions.add(scene.caption)
    assert {"a star", "a cat"} & captions and any(c in captions for c in map(class_prompt, CLASSES))
    assert draw_text_scene(1, text="cross").caption == "a cross"
    with pytest.raises(ValueError, match="cannot caption the writing 'house'.*'star'"):
        draw_text_scene(0, text="house")


def test_made_up_words_are_written_but_left_out_of_captions():
    from clip_widgets.world import WORDS, nonce_word  # noqa: PLC0415

    left_out = named = 0
    for seed in range(80):
        scene = draw_scene(seed, spec=[("red", "star")], style="varied", word_probability=1.0, nonce_probability=0.5)
        assert scene.word and scene.word_mask.sum() > 5
        if scene.word in WORDS:
            named += 1
            assert f'with the word "{scene.word}"' in scene.caption
        else:
            left_out += 1
            assert scene.word.isalpha() and 3 <= len(scene.word) <= 8 and scene.word not in scene.caption
            assert re.fullmatch(r"an? ((small|large) )?red star", scene.caption), scene.caption
    assert left_out > 20 and named > 20
    rng = np.random.default_rng(0)
    assert len({nonce_word(rng) for _ in range(50)}) > 45  # many different strings
