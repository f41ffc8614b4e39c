"""Patch attacks: patches land where asked, reports count what the model says, the noise control
matches the patch's size, and on the embedded model a legible patch of B moves scenes to B."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from clip_widgets import ModelSession
from clip_widgets.atlas import Atlas, AtlasGrid
from clip_widgets.errors import ClipWidgetsError
from clip_widgets.patch_attack import (
    CORNERS,
    PatchReport,
    class_patch,
    class_patches,
    noise_patch,
    paste_patch,
    patch_attack,
    patch_box,
)
from clip_widgets.typographic import zero_shot
from clip_widgets.world import COLOURS, class_prompt, draw_scene, shape_polygon

CLASSES = ["a red circle", "a blue star", "a photo of a cat"]


def test_a_patch_lands_flush_with_its_corner_at_its_share_of_the_shorter_side():
    base = Image.new("RGB", (100, 60), (90, 90, 90))
    # 0.25 of the shorter side (60) is 15 px: top-left (0, 0), top-right (85, 0), and so on
    expected = {"top-left": (0, 0), "top-right": (85, 0), "bottom-left": (0, 45), "bottom-right": (85, 45)}
    for corner, (left, top) in expected.items():
        assert patch_box(100, 60, 0.25, corner) == (left, top, 15)
        out = np.asarray(paste_patch(base, np.full((4, 4, 3), 200, np.uint8), scale=0.25, corner=corner))
        changed = (out != 90).any(-1)
        assert changed[top : top + 15, left : left + 15].all() and changed.sum() == 15 * 15, corner
        assert (out[changed] == 200).all()  # a flat patch stays flat through the resize
    gradient = np.arange(15 * 15 * 3, dtype=np.uint8).reshape(15, 15, 3)  # already the size: pasted as it is
    np.testing.assert_array_equal(np.asarray(paste_patch(base, gradient, scale=0.25, corner="bottom-right"))[45:, 85:],
                                  gradient)  # fmt: skip
    assert np.asarray(base).max() == 90  # the original is left as it was
    assert patch_box(7, 9, 0.01, "top-left") == (0, 0, 1)  # never less than a pixel
    with pytest.raises(ValueError, match="unknown corner 'middle'.*'top-left'"):
        paste_patch(base, gradient, corner="middle")
    with pytest.raises(ValueError, match=r"scale must be in \(0, 1\]"):
        paste_patch(base, gradient, scale=1.5)


def test_report_rates_by_hand():
    # 3 images, 1 scale, 2 corners, classes [A, B, C]; the target is B (index 1)
    # image 0: corner 0 gives B most and moves it to B; image 1: corner 1 gives B most (0.2) and
    # predicts C there; image 2 is B already when clean, so it is not eligible
    probs = np.array([[[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]],
                      [[0.5, 0.1, 0.4], [0.3, 0.2, 0.5]],
                      [[0.1, 0.8, 0.1], [0.1, 0.9, 0.0]]])[None]  # fmt: skip
    report = PatchReport("B", ["A", "B", "C"], [0.3], ["top-left", "top-right"], sources=["0", "1", "2"],
                         labels=np.array([0, -1, 1]), clean_probs=np.array([[0.8, 0.1, 0.1], [0.6, 0.2, 0.2],
                                                                            [0.2, 0.7, 0.1]]),
                         patch_probs=probs)  # fmt: skip
    np.testing.assert_array_equal(report.eligible, [True, True, False])
    np.testing.assert_array_equal(report.best_corner(), [[0, 1, 1]])
    np.testing.assert_array_equal(report.predictions(), [[1, 2, 1]])
    np.testing.assert_allclose(report.target_rate(), [0.5])  # image 0 of images 0 and 1
    np.testing.assert_allclose(report.flip_rate(), [1.0])  # both changed: to B and to C
    report.labels = np.array([2, 0, -1])  # image 0 was wrong before: only image 1 counts
    np.testing.assert_allclose([report.target_rate()[0], report.flip_rate()[0]], [0.0, 1.0])
    with pytest.raises(ValueError, match="no noise results"):
        report.target_rate("noise")


def test_the_report_is_what_the_model_says_of_each_pasted_image(vit_session, tmp_path):
    for i in range(3):
        draw_scene(i, size=48).image.save(tmp_path / f"{i}.png")
    (tmp_path / "1b.png").write_bytes(b"not an image")
    patch = np.asarray(draw_scene(9, size=32).image)
    with pytest.warns(UserWarning, match="1b.png"):
        report = patch_attack(vit_session, tmp_path, CLASSES, "a blue star", patch, scales=(0.25, 0.5), seed=3,
                              batch_size=2, progress=False)  # fmt: skip
    assert report.skipped == [str(tmp_path / "1b.png")]
    assert report.sources == [str(tmp_path / f"{i}.png") for i in range(3)]
    assert report.patch_probs.shape == report.noise_probs.shape == (2, 3, 4, 3)
    pictures = [Image.open(s) for s in report.sources]
    np.testing.assert_allclose(report.clean_probs, zero_shot(vit_session, pictures, CLASSES), rtol=1e-5, atol=1e-6)
    target = CLASSES.index("a blue star")
    for s, scale in enumerate((0.25, 0.5)):
        side = patch_box(48, 48, scale, "top-left")[2]
        for n, picture in enumerate(pictures):
            index = [0, 1, 3][n]  # each image's place among the sources (sorted), the broken 1b.png included
            noise = noise_patch(side, (3, index, s))
            assert noise.shape == (side, side, 3)  # the control is the patch's size
            for kind, tile in (("patch", patch), ("noise", noise)):
                direct = zero_shot(vit_session, [paste_patch(picture, tile, scale=scale, corner=c) for c in CORNERS],
                                   CLASSES)  # fmt: skip
                probs = report.patch_probs if kind == "patch" else report.noise_probs
                np.testing.assert_allclose(probs[s, n], direct, rtol=1e-5, atol=1e-6)
                assert report.best_corner(kind)[s, n] == direct[:, target].argmax()
                assert report.predictions(kind)[s, n] == direct[direct[:, target].argmax()].argmax()
    # one fixed corner and no control; labels one per source (the broken file's too)
    with pytest.warns(UserWarning, match="1b.png"):
        report = patch_attack(vit_session, tmp_path, CLASSES, "a blue star", patch, scales=(0.3,),
                              corners="bottom-left", control=None, labels=["a red circle"] * 4,
                              progress=False)  # fmt: skip
    assert report.corners == ["bottom-left"] and report.noise_probs is None
    np.testing.assert_array_equal(report.labels, [0, 0, 0])
    with pytest.raises(ValueError, match="target 'a dog' is not among the classes"):
        patch_attack(vit_session, tmp_path, CLASSES, "a dog", patch, progress=False)
    with pytest.raises(ValueError, match="2 labels for 4 images"):
        patch_attack(vit_session, tmp_path, CLASSES, "a blue star", patch, labels=["a red circle"] * 2, progress=False)
    with pytest.raises(ValueError, match="unknown corner"):
        patch_attack(vit_session, tmp_path, CLASSES, "a blue star", patch, corners="centre", progress=False)


def _atlas() -> Atlas:
    counts = np.array([[5, 1], [0, 4]])
    cells = np.zeros((2, 2, 2), np.float32)
    cells[..., 1] = [[0.5, 3.0], [0.0, 1.0]]  # class "b": best in the cell with one activation
    cells[..., 0] = [[2.0, 0.0], [0.0, -1.0]]
    icons = np.arange(2 * 2 * 3 * 3 * 3, dtype=np.uint8).reshape(2, 2, 3, 3, 3)
    grid = AtlasGrid(2, counts, np.zeros((2, 2, 4), np.float32), np.zeros((10, 2), np.int64))
    return Atlas(None, np.zeros((10, 2)), {2: grid}, {2: icons}, ["a", "b"], np.zeros((10, 2)), {2: cells})


def test_the_class_patch_is_the_icon_of_the_cell_that_pushes_the_class_most():
    atlas = _atlas()
    found = class_patch(atlas, "b")
    assert (found.cell, found.score, found.count, found.grid_size) == ((0, 1), 3.0, 1, 2)
    np.testing.assert_array_equal(found.image, atlas.icons[2][0, 1])
    found = class_patch(atlas, "b", min_count=2)  # the one-activation cell is left out
    assert (found.cell, found.score) == ((1, 1), 1.0)
    assert {name: p.cell for name, p in class_patches(atlas).items()} == {"a": (0, 0), "b": (0, 1)}
    atlas.cells[2][0, 1, 0] = 5.0  # the cell pushes "a" even more than "b"
    # beyond the mean push to both classes: 0.5 - 1.25, 3 - 4 and 1 - 0
    found = class_patch(atlas, "b", relative=True)
    assert (found.cell, found.score) == ((1, 1), 1.0)
    with pytest.raises(KeyError, match="unknown class 'c'"):
        class_patch(atlas, "c")
    with pytest.raises(ClipWidgetsError, match="holds 9 activations"):
        class_patch(atlas, "a", min_count=9)
    atlas.cells = {}
    with pytest.raises(ClipWidgetsError, match="no class attributions"):
        class_patch(atlas, "a")


def _drawn(colour: str, shape: str, side: int = 64) -> np.ndarray:
    picture = Image.new("RGB", (side, side), (128, 128, 128))
    outline = shape_polygon(shape, (side / 2, side / 2), 0.44 * side, 0.0 if shape == "circle" else 0.3)
    ImageDraw.Draw(picture).polygon(outline, fill=COLOURS[colour])
    return np.asarray(picture)


def test_on_the_embedded_model_a_legible_patch_of_b_moves_scenes_to_b_and_noise_does_not():
    session = ModelSession.load("world-rn-robust", device="cpu")
    classes = [class_prompt(f"{c} {s}") for c in ("red", "green", "blue") for s in ("circle", "triangle", "star")]
    specs = [("green", "circle"), ("blue", "triangle"), ("green", "triangle"), ("blue", "circle")] * 3
    scenes = [draw_scene(2 * 10**9 + 9 * 10**6 + k, spec=[spec], size=128, word_probability=0.0).image
              for k, spec in enumerate(specs)]  # fmt: skip
    labels = [class_prompt(" ".join(spec)) for spec in specs]
    # B drawn plainly, its shape in its colour, at full saturation: a patch that says B
    report = patch_attack(session, scenes, classes, "a red star", _drawn("red", "star"), scales=(0.4,),
                          labels=labels, progress=False)  # fmt: skip
    assert report.eligible.sum() >= 10
    patch_rate, noise_rate = report.target_rate()[0], report.target_rate("noise")[0]
    assert patch_rate >= noise_rate + 0.3, (patch_rate, noise_rate)
