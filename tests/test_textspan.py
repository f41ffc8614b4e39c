"""The embedding decomposition, TextSpan and mean-ablation: exact sums, per-head terms checked
through the model's own attention module, planted structure, and behaviour on world-vit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clip_widgets.decompose import EmbeddingParts, decompose, decompose_pixels, head_grid
from clip_widgets.errors import UnsupportedModelError
from clip_widgets.session import ModelSession
from clip_widgets.textspan import (
    class_indices,
    collect_parts,
    explain_heads,
    first_text_shares,
    head_map,
    mean_ablation,
    span_directions,
    span_maps,
    text_span,
)
from clip_widgets.world import CLASSES, class_prompt, draw_scene


@pytest.fixture(scope="module")
def world_vit() -> ModelSession:
    return ModelSession.from_embedded("world-vit", device="cpu")


def _scenes(count: int, offset: int = 0):
    scenes = []
    for k in range(offset, offset + count):
        colour, shape = CLASSES[k % len(CLASSES)].split()
        scenes.append(draw_scene(np.random.default_rng(k), spec=[(colour, shape)], word_probability=0.0))
    return scenes


@pytest.mark.parametrize("spatial", [True, False])
def test_the_parts_add_up_to_the_models_embedding(vit_session, world_vit, spatial):
    for session, size in ((vit_session, 32), (world_vit, 64)):
        pixels = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
        parts = decompose_pixels(session.model, pixels, spatial=spatial)
        with torch.no_grad():
            own = session.model.encode_image(pixels).numpy()
        np.testing.assert_allclose(parts.embedding, own, atol=1e-4)
        np.testing.assert_allclose(parts.total(), own, atol=1e-4)
        blocks = len(session.model.visual.transformer.resblocks)
        heads = session.model.visual.transformer.resblocks[0].attn.num_heads
        assert parts.head_totals().shape == (3, blocks, heads, own.shape[1])
        if spatial:
            assert parts.heads.shape[3] == 1 + parts.grid[0] * parts.grid[1]


def test_each_heads_part_is_what_the_attention_module_writes_for_that_head(world_vit):
    """Independent of the decomposition's own arithmetic: run each block's nn.MultiheadAttention
    with every other head's output columns zeroed, take the class token's row and send it through
    the final norm with the stream's standard deviation."""
    visual = world_vit.model.visual
    scene = _scenes(1)[0]
    pixels = world_vit.preprocess([scene.image])
    inputs: list[torch.Tensor] = []
    handles = [block.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach()))
               for block in visual.transformer.resblocks]  # fmt: skip
    try:
        with torch.no_grad():
            visual(pixels)
            final: list[torch.Tensor] = []
            hook = visual.ln_post.register_forward_pre_hook(lambda module, args: final.append(args[0].detach()))
            visual(pixels)
            hook.remove()
    finally:
        for handle in handles:
            handle.remove()
    stream = final[0][:, 0]
    sigma = (stream.var(-1, unbiased=False) + visual.ln_post.eps).sqrt()
    parts = decompose(world_vit, [scene.image], spatial=False)
    for layer, block in enumerate(visual.transformer.resblocks):
        attn = block.attn
        width = attn.embed_dim // attn.num_heads
        for head in range(attn.num_heads):
            keep = torch.zeros(attn.embed_dim)
            keep[head * width : (head + 1) * width] = 1
            with torch.no_grad():
                normed = block.ln_1(inputs[layer])
                values = torch.nn.functional.linear(normed, attn.in_proj_weight, attn.in_proj_bias)
                q, k, v = values.chunk(3, dim=-1)
                scores = (q[:, :1] * width**-0.5).reshape(1, 1, attn.num_heads, width)
                keys = k.reshape(1, -1, attn.num_heads, width)
                weights = torch.einsum("nqhd,nkhd->nhqk", scores, keys).softmax(-1)[0, head, 0]  # (T,)
                row = (weights[:, None] * (v[0] * keep)).sum(0) @ attn.out_proj.weight.T  # one head, no bias
                term = visual.ln_post.weight * (row - row.mean()) / sigma @ visual.proj
            np.testing.assert_allclose(parts.heads[0, layer, head], term.numpy(), atol=1e-4)


def test_towers_it_does_not_cover_are_refused(resnet_session):
    with pytest.raises(UnsupportedModelError, match="ViT"):
        decompose_pixels(resnet_session.model, torch.zeros(1, 3, 64, 64))


def test_text_span_finds_planted_directions_in_order():
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    texts = [f"text {i}" for i in range(16)]
    # a head that writes text 3 strongly, text 7 less, and nothing else
    outputs = (rng.standard_normal((500, 1)) * 3.0) * basis[3] + (rng.standard_normal((500, 1)) * 1.0) * basis[7]
    span = text_span(outputs + 5.0, basis, texts, count=2)  # a constant offset is not variance
    assert span.texts == ["text 3", "text 7"]
    assert span.explained[0] == pytest.approx(9 / 10, abs=0.05) and span.explained[1] == pytest.approx(0.1, abs=0.05)
    assert span.residual == pytest.approx(0.0, abs=1e-9)
    # texts outside the head's output space are projected away: a text mixing direction 3 with
    # directions the head never writes still wins, and one with no part in the span never does
    mixed = np.stack([0.5 * basis[3] + 0.86 * basis[0], basis[1], basis[2]])
    assert text_span(outputs, mixed, ["mixed", "b", "c"], count=1).texts == ["mixed"]
    with pytest.raises(ValueError, match="share D"):
        text_span(outputs, basis[:, :8], texts)


def test_mean_ablation_of_a_part_that_never_changes_changes_nothing():
    rng = np.random.default_rng(1)
    classifier = np.eye(4, 8)
    labels = np.arange(40) % 4
    heads = np.zeros((40, 2, 2, 8))
    heads[:, 1, 0, :4] = 3.0 * np.eye(4)[labels]  # this head alone carries the class
    heads[:, 0, 1] = rng.standard_normal(8)  # the same for every image: its mean is itself
    parts = EmbeddingParts(direct=np.zeros((40, 8)), heads=heads, mlps=np.zeros((40, 2, 8)), bias=np.zeros((40, 8)),
                           embedding=heads.sum((1, 2)), grid=(1, 1))  # fmt: skip
    result = mean_ablation(parts, classifier, labels)
    assert result.baseline == 1.0
    assert result.heads[0, 1] == 1.0 and result.heads[0, 0] == 1.0
    # without the class head every image gets the same embedding: one class right in four
    assert result.heads[1, 0] == pytest.approx(0.25) and result.layers[1] == pytest.approx(0.25)
    assert np.all(result.mlps == 1.0)


def test_heads_of_world_vit_read_as_its_world(world_vit):
    scenes = _scenes(60)
    parts = collect_parts(world_vit, [s.image for s in scenes], progress=False)
    classifier = world_vit.encode_text([class_prompt(c) for c in CLASSES]).numpy()
    labels = np.arange(60) % len(CLASSES)
    ablation = mean_ablation(parts, classifier, labels)
    own = (world_vit.encode_image(world_vit.preprocess([s.image for s in scenes])).numpy() @ classifier.T).argmax(-1)
    assert ablation.baseline == pytest.approx(float((own == labels).mean()))  # the sum classifies as the model does
    assert ablation.baseline > 0.9

    # The texts TextSpan picks explain more of the heads' variance than random directions do.
    spans = explain_heads(world_vit, parts, count=1)
    real, null = first_text_shares(parts, spans)
    assert np.mean(real > null) > 0.75 and real.mean() > 1.2 * null.mean()


def test_head_maps_put_a_class_on_its_object(world_vit):
    hits = 0
    scenes = _scenes(20, offset=100)
    for scene in scenes:
        parts = decompose(world_vit, [scene.image])
        label = CLASSES.index(f"{scene.objects[0].colour} {scene.objects[0].shape}")
        direction = world_vit.encode_text([class_prompt(CLASSES[label])])[0]
        layers, heads = parts.heads.shape[1:3]
        summed = sum(head_map(parts, i, h, direction) for i in range(layers) for h in range(heads))
        # a head's patches and its class token add up to the head's whole part
        whole = parts.heads[0, 2, 1].sum(0) @ direction.numpy()
        assert head_map(parts, 2, 1, direction).sum() + parts.heads[0, 2, 1, 0] @ direction.numpy() == pytest.approx(
            whole, abs=1e-4
        )
        row, col = np.unravel_index(summed.argmax(), summed.shape)
        mask = scene.objects[0].mask
        hits += bool(
            mask[int((row + 0.5) * mask.shape[0] / summed.shape[0]), int((col + 0.5) * mask.shape[1] / summed.shape[1])]
        )
    assert hits / len(scenes) >= 0.7
    with pytest.raises(ValueError, match="spatial"):
        head_map(collect_parts(world_vit, [scenes[0].image], progress=False), 0, 0, direction)


def test_span_maps_are_head_maps_for_every_head_and_text(world_vit):
    scenes = _scenes(12, offset=300)
    parts = collect_parts(world_vit, [s.image for s in scenes], progress=False)
    spans = explain_heads(world_vit, parts, count=2)
    directions = span_directions(world_vit, spans)
    assert directions.shape == (6, 4, 2, parts.embedding.shape[1])
    spatial = decompose(world_vit, [scenes[4].image])
    maps = span_maps(spatial, directions)
    assert maps.shape == (6, 4, 2, *spatial.grid)
    for layer in range(6):
        for head in range(4):
            for k, text in enumerate(spans.texts(layer, head)):
                direction = world_vit.encode_text([text])[0]
                np.testing.assert_allclose(directions[layer, head, k], direction.numpy(), atol=1e-6)
                np.testing.assert_allclose(maps[layer, head, k], head_map(spatial, layer, head, direction), atol=1e-5)
    with pytest.raises(ValueError, match="spatial"):
        span_maps(parts, directions)
    with pytest.raises(ValueError, match="do not match"):
        span_maps(spatial, directions[:3])


def test_collect_parts_reports_progress_and_labels_become_indices(world_vit):
    seen = []
    collect_parts(world_vit, [s.image for s in _scenes(5)], batch_size=2, progress=False,
                  callback=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert seen == [(2, 5), (4, 5), (5, 5)]
    classes = ["a red circle", "a blue star", "a square"]
    assert class_indices([2, "a blue star", np.int64(0)], classes).tolist() == [2, 1, 0]
    with pytest.raises(IndexError, match="0..2"):
        class_indices([3], classes)
    with pytest.raises(ValueError, match="none of the 3 classes"):
        class_indices(["a cat"], classes)
    with pytest.raises(TypeError, match="class index or a class prompt"):
        class_indices([1.5], classes)


def test_head_grid_counts_layers_and_heads(world_vit, resnet_session):
    assert head_grid(world_vit.model) == (6, 4)
    assert head_grid(world_vit.model.visual) == (6, 4)
    with pytest.raises(UnsupportedModelError):
        head_grid(resnet_session.model)
