"""TypographicLab's Python side: what it shows is what the compute functions give."""

from __future__ import annotations

import numpy as np
import pytest

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
    assert lab.error == ""
