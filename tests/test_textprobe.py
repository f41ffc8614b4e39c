"""Text-side probing: written-word and text-embedding rankings equal direct computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clip_widgets import ModelSession
from clip_widgets.errors import UnsupportedModelError
from clip_widgets.examples import positions_of
from clip_widgets.textprobe import rank_words_by_embedding, rank_words_by_image, word_image

WORDS = ["cat", "dog", "ipod", "apple", "red", "star", "ship", "a long phrase here"]


@pytest.fixture(scope="module")
def session() -> ModelSession:
    return ModelSession.from_config("tiny-vit", device="cpu")


def test_word_image_writes_the_word_inside_the_frame():
    image = np.asarray(word_image("ipod", 64))
    ink = image.mean(-1) < 128
    assert ink.sum() > 30
    rows, cols = np.nonzero(ink)
    assert rows.min() > 0 and cols.min() > 0 and rows.max() < 63 and cols.max() < 63
    light = np.asarray(word_image("ipod", 64, ink=235, paper=20))
    assert abs(int((light.mean(-1) > 128).sum()) - int(ink.sum())) < 0.1 * ink.sum()  # the same glyphs, inverted


def test_rank_by_image_matches_a_direct_computation(session):
    ranked = rank_words_by_image(session, "blocks.1", [2, 5], WORDS, batch_size=3, progress=False)
    for result, unit in zip(ranked, [2, 5], strict=True):
        expected = {}
        for word in WORDS:
            images = [word_image(word, 32), word_image(word, 32, ink=235, paper=20)]
            with torch.no_grad(), session.layers.capture("blocks.1") as out:
                session.model.visual(session.preprocess(images))
            values, _ = positions_of(out["blocks.1"])
            expected[word] = float(values[:, :, unit].amax(1).mean())
        assert result.words == sorted(WORDS, key=expected.get, reverse=True)
        np.testing.assert_allclose(result.scores, sorted(expected.values(), reverse=True), rtol=1e-5, atol=1e-6)
    with pytest.raises(IndexError, match="out of range"):
        rank_words_by_image(session, "blocks.1", [999], WORDS, progress=False)


def test_rank_by_embedding_uses_the_projection(session):
    (result,) = rank_words_by_embedding(session, "ln_post", 7, WORDS)
    direction = F.normalize(session.model.visual.proj.detach()[7], dim=0)
    text = session.encode_text(WORDS)
    expected = (text @ direction).numpy()
    assert result.words == [WORDS[i] for i in np.argsort(-expected)]
    np.testing.assert_allclose(result.scores, np.sort(expected)[::-1], rtol=1e-5, atol=1e-6)
    with pytest.raises(UnsupportedModelError, match="rank_words_by_image works for every layer"):
        rank_words_by_embedding(session, "blocks.0", 0, WORDS)


def test_unit_directions_refuse_a_negative_unit(session):
    from clip_widgets.textprobe import unit_directions

    width = session.layers["ln_post"].units
    np.testing.assert_array_equal(unit_directions(session, "ln_post", [width - 1])[0],
                                  session.model.visual.proj.detach()[width - 1])  # fmt: skip
    for unit in (-1, width):
        with pytest.raises(IndexError, match=f"\\[{unit}\\] out of range .*valid units are 0 to {width - 1}"):
            unit_directions(session, "ln_post", [unit])


def test_a_bare_string_vocabulary_is_one_word_not_its_letters(session):
    (by_image,) = rank_words_by_image(session, "blocks.1", 2, "ipod", progress=False)
    (by_text,) = rank_words_by_embedding(session, "ln_post", 7, "ipod", templates="a photo of {}.")
    assert by_image.words == by_text.words == ["ipod"]
    (listed,) = rank_words_by_embedding(session, "ln_post", 7, ["ipod"], templates=["a photo of {}."])
    np.testing.assert_allclose(by_text.scores, listed.scores)
