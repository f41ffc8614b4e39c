"""TypographicLab's Python side: what it shows is what the compute functions give."""

from __future__ import annotations

import numpy as np
import pytest
import traitlets

from clip_widgets import TypographicLab
from clip_widgets.errors import ClipWidgetsError
from clip_widgets.probe import pooled_activations
from clip_widgets.typographic import write_text, zero_shot
from clip_widgets.world import draw_scene

CLASSES = ["a red circle", "a blue star", "an ipod"]


def test_the_lab_shows_the_attack_as_the_functions_compute_it(vit_session):
    scene = draw_scene(3, size=96).image
    lab = TypographicLab(vit_session, scene, CLASSES, text="ipod", layer="blocks.1", units=4)
    attacked = write_text(scene, "ipod", position=(0.5, 0.5), size=0.2)
    np.testing.assert_array_equal(lab.attacked, np.asarray(attacked))
    probs = zero_shot(vit_session, [scene, attacked], CLASSES)
    np.testing.assert_allclose(lab.clean_probs, probs[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(lab.attacked_probs, probs[1], rtol=1e-5, atol=1e-7)
    clean_units, attacked_units = pooled_activations(vit_session, [scene, attacked], "blocks.1", progress=False)
    change = np.abs(attacked_units - clean_units)
    assert [u for u, _, _ in lab.top_units] == list(np.argsort(-change)[:4])

    before = lab.attacked.copy()
    lab.position = [0.2, 1.7]  # clamped into the image
    assert lab.position == [0.2, 1.0]
    assert not np.array_equal(lab.attacked, before)
    lab.ink, lab.text = "black", ""
    np.testing.assert_array_equal(lab.attacked, np.asarray(scene))  # no word, no change
    np.testing.assert_allclose(lab.attacked_probs, lab.clean_probs, rtol=1e-6)
    with pytest.raises(ClipWidgetsError, match="blocks.0"):
        lab.layer = "blocks.9"
    assert "no layer named 'blocks.9'" in lab.error and "blocks.0" in lab.error  # it names the choices
    assert lab.layer == "blocks.1"
    lab.layer = "blocks.0"  # a good value clears the error and recomputes
    assert lab.error == "" and len(lab.top_units) == 4


def test_failures_show_in_the_lab_and_it_recovers(vit_session, monkeypatch):
    scene = draw_scene(5, size=64).image
    lab = TypographicLab(vit_session, scene, "a red circle", templates="a drawing of {}.", text="ipod")
    assert lab.classes == ["a red circle"]  # a bare string is one class, and one template
    np.testing.assert_allclose(lab.clean_probs, [1.0], rtol=1e-6)
    expected = zero_shot(vit_session, [scene, lab.attacked_image()], CLASSES, templates=["a drawing of {}."])
    lab.classes = CLASSES
    np.testing.assert_allclose([lab.clean_probs, lab.attacked_probs], expected, rtol=1e-5, atol=1e-7)

    # from Python: a refused value raises and names the valid choices; a good one clears
    with pytest.raises(traitlets.TraitError, match="'white', 'black'"):
        lab.ink = "red"
    assert "'red'" in lab.error and "'black'" in lab.error and lab.ink == "white"
    lab.ink = "black"
    assert lab.error == "" and lab.ink == "black"

    # from the browser: the same, without raising, and the browser gets the kept value back
    resent = []
    monkeypatch.setattr(lab, "send_state", lambda key=None: resent.append(key))
    lab.set_state({"layer": "blocks.7"})
    assert "no layer named 'blocks.7'" in lab.error and "blocks.1" in lab.error
    assert lab.layer == "" and ["layer"] in resent
    lab.set_state({"layer": "blocks.1"})
    assert lab.error == "" and len(lab.top_units) == 8

    # a failed recomputation keeps the last good text, so sending it again retries
    def broken(*args, **kwargs):
        raise RuntimeError("image tower unavailable")

    monkeypatch.setattr(vit_session, "encode_image", broken)
    lab.set_state({"text": "apple"})
    assert lab.error == "RuntimeError: image tower unavailable" and lab.text == "ipod" and not lab.busy
    monkeypatch.undo()
    lab.set_state({"text": "apple"})
    assert lab.error == "" and lab.text == "apple"
    np.testing.assert_array_equal(lab.attacked, np.asarray(write_text(scene, "apple", fill=(0, 0, 0),
                                                                      outline=(255, 255, 255))))  # fmt: skip
    lab.close()


def test_patch_mode_shows_the_patch_at_the_corner_that_raises_its_class_most(vit_session):
    from clip_widgets.patch_attack import CORNERS, noise_patch, paste_patch

    scene = draw_scene(3, size=96).image
    star, ipod = np.asarray(draw_scene(11, size=40).image), np.full((8, 8, 3), 250, np.uint8)
    lab = TypographicLab(vit_session, scene, CLASSES, text="ipod", layer="blocks.1", units=4,
                         patches={"an ipod": ipod, "a blue star": star})  # fmt: skip
    assert lab.patch_classes == ["an ipod", "a blue star"] and lab.patch_class == "a blue star"  # first in classes
    assert lab.used_corner == ""  # word mode: no corner
    lab.mode = "patch"
    np.testing.assert_array_equal(lab.patch, star)
    candidates = [paste_patch(scene, star, scale=0.3, corner=c) for c in CORNERS]
    probs = zero_shot(vit_session, [scene, *candidates], CLASSES)
    best = int(probs[1:, CLASSES.index("a blue star")].argmax())
    assert lab.used_corner == CORNERS[best]
    np.testing.assert_array_equal(lab.attacked, np.asarray(candidates[best]))
    np.testing.assert_array_equal(np.asarray(lab.attacked_image()), lab.attacked)
    np.testing.assert_allclose([lab.clean_probs, lab.attacked_probs], probs[[0, 1 + best]], rtol=1e-5, atol=1e-7)
    assert len(lab.top_units) == 4

    with lab.hold_trait_notifications():
        lab.corner, lab.patch_size, lab.patch_class = "bottom-right", 0.5, "an ipod"
    assert lab.used_corner == "bottom-right"
    expected = paste_patch(scene, ipod, scale=0.5, corner="bottom-right")
    np.testing.assert_array_equal(lab.attacked, np.asarray(expected))
    assert (lab.attacked[48:, 48:] == 250).all() and (lab.attacked[:48] == np.asarray(scene)[:48]).all()
    lab.patch_noise = True  # the control: noise of the same size in the same place
    np.testing.assert_array_equal(lab.attacked, np.asarray(paste_patch(scene, noise_patch(48), scale=0.5,
                                                                       corner="bottom-right")))  # fmt: skip
    with pytest.raises(traitlets.TraitError, match="no patch for 'a cat'.*'an ipod', 'a blue star'"):
        lab.patch_class = "a cat"
    assert lab.patch_class == "an ipod"
    lab.mode = "word"
    np.testing.assert_array_equal(lab.attacked, np.asarray(write_text(scene, "ipod")))
    lab.close()


def test_patch_mode_errors_show_and_an_atlas_gives_the_patches(vit_session):
    from test_patch_attack import _atlas

    scene = draw_scene(4, size=64).image
    lab = TypographicLab(vit_session, scene, CLASSES)
    lab.set_state({"mode": "patch"})  # no patches at all
    assert "no patches to paste" in lab.error and lab.mode == "word"
    atlas = _atlas()
    lab = TypographicLab(vit_session, scene, ["a", "b"], patches=atlas, mode="patch")
    assert lab.error == "" and lab.patch_classes == ["a", "b"] and lab.patch_class == "a"
    np.testing.assert_array_equal(lab.patch, atlas.icons[2][0, 0])  # the cell that pushes "a" most
    lab.set_state({"patch_class": "b"})
    np.testing.assert_array_equal(lab.patch, atlas.icons[2][0, 1])
    with pytest.raises(ValueError, match="'b' is not among the classes"):
        lab.classes = ["a"]  # the best corner is the one that raises the patch's class: it must be a class
    assert "'b' is not among the classes ['a']" in lab.error and lab.classes == ["a", "b"]
    lab.corner = "top-left"  # a fixed corner needs no class
    lab.classes = ["a"]
    assert lab.error == "" and lab.used_corner == "top-left" and len(lab.attacked_probs) == 1
    lab.close()
