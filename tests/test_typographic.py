"""Typographic attacks: text lands where asked, reports count flips, broken images are skipped."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clip_widgets.typographic import attack, write_text, zero_shot
from clip_widgets.world import draw_scene

CLASSES = ["a red circle", "a blue star", "a photo of a cat"]


def test_text_is_written_at_the_position_and_size_asked():
    base = Image.new("RGB", (200, 100), (90, 90, 90))
    for position in ((0.25, 0.3), (0.7, 0.75)):
        changed = np.asarray(write_text(base, "iPod", position=position, size=0.2)).astype(int) != 90
        rows, cols = np.nonzero(changed.any(-1))
        assert abs(cols.mean() / 200 - position[0]) < 0.06 and abs(rows.mean() / 100 - position[1]) < 0.08
    small = (np.asarray(write_text(base, "iPod", size=0.1)) != 90).any(-1).sum()
    large = (np.asarray(write_text(base, "iPod", size=0.3)) != 90).any(-1).sum()
    assert large > 4 * small
    assert np.asarray(base).max() == 90  # the original is left as it was


def test_attack_reports_each_image_and_skips_broken_ones(vit_session, tmp_path):
    for i in range(5):
        draw_scene(i, size=48).image.save(tmp_path / f"{i}.png")
    (tmp_path / "3b.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="3b.png"):
        report = attack(vit_session, tmp_path, "cat", CLASSES, target="a photo of a cat", batch_size=2,
                        progress=False)  # fmt: skip
    assert len(report.sources) == 5 and report.skipped == [str(tmp_path / "3b.png")]
    clean = zero_shot(vit_session, [Image.open(s) for s in report.sources], CLASSES)
    np.testing.assert_allclose(report.clean_probs, clean, rtol=1e-5, atol=1e-6)
    attacked = zero_shot(vit_session, [write_text(Image.open(s), "cat") for s in report.sources], CLASSES)
    np.testing.assert_allclose(report.attacked_probs, attacked, rtol=1e-5, atol=1e-6)
    assert report.flip_rate == np.mean(clean.argmax(1) != attacked.argmax(1))
    eligible = clean.argmax(1) != 2
    expected = np.mean(attacked.argmax(1)[eligible] == 2) if eligible.any() else np.nan
    assert report.success_rate == pytest.approx(expected, nan_ok=True)
    with pytest.raises(ValueError, match="not among the classes"):
        attack(vit_session, tmp_path, "cat", CLASSES, target="a dog", progress=False)


def test_a_tall_strip_in_the_folder_is_skipped_and_named_not_the_whole_batch(vit_session, tmp_path):
    for i in range(3):
        draw_scene(i, size=48).image.save(tmp_path / f"{i}.png")
    tall = tmp_path / "1b_tall.png"
    Image.new("RGB", (64, 60_000), (200, 30, 30)).save(tall)  # valid, but "cat" at 0.2 of its height is huge
    with pytest.warns(UserWarning, match="1b_tall.png: ValueError: the text 'cat' at 12000 px"):
        report = attack(vit_session, tmp_path, "cat", CLASSES, batch_size=2, progress=False)
    assert report.skipped == [str(tall)]
    assert report.sources == [str(tmp_path / f"{i}.png") for i in range(3)]
    clean = zero_shot(vit_session, [Image.open(s) for s in report.sources], CLASSES)
    np.testing.assert_allclose(report.clean_probs, clean, rtol=1e-5, atol=1e-6)
    # with a size that fits, the same strip is attacked like any image
    report = attack(vit_session, [tall], "cat", CLASSES, size=0.001, progress=False)
    assert report.skipped == [] and report.clean_probs.shape == (1, 3)


def test_write_text_refuses_text_over_the_pixel_budget_before_drawing_it():
    tall = Image.new("RGB", (64, 60_000))
    with pytest.raises(ValueError, match="'iPod' at 12000 px .* 64 x 60000 image.* limit of 40 megapixels"):
        write_text(tall, "iPod")
    out = write_text(tall, "iPod", size=0.0005)  # a 30 px font
    assert (np.asarray(out) != 0).any()


def test_bad_writing_options_fail_once_up_front(vit_session, tmp_path):
    draw_scene(0, size=48).image.save(tmp_path / "0.png")
    with pytest.raises(TypeError, match="colour"):
        attack(vit_session, tmp_path, "cat", CLASSES, colour="red", progress=False)


def test_a_bare_string_is_one_class_and_one_template(vit_session):
    scene = draw_scene(1, size=48).image
    probs = zero_shot(vit_session, [scene], "a red circle", templates="a photo of {}.")
    assert probs.shape == (1, 1)
    two = zero_shot(vit_session, [scene], ["a red circle", "a blue star"], templates="a photo of {}.")
    listed = zero_shot(vit_session, [scene], ["a red circle", "a blue star"], templates=["a photo of {}."])
    np.testing.assert_array_equal(two, listed)
    with pytest.raises(TypeError, match="classes must be a string or a list of strings, not int"):
        zero_shot(vit_session, [scene], 3)
