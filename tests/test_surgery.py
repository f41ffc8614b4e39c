"""CLIP Surgery against the paper's reference implementation, a hand computation and scikit-image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from safetensors import safe_open
from skimage.filters import threshold_otsu

from clip_widgets.errors import UnsupportedModelError
from clip_widgets.surgery import (
    dense_tokens,
    feature_surgery,
    map_range,
    similarity_map_to_points,
    similarity_to_maps,
    threshold_map,
    threshold_value,
)

FIXTURES = Path(__file__).parent / "fixtures"


def load_reference(arch: str):
    """Weights, inputs and the reference implementation's outputs (see tools/make_surgery_reference.py)."""
    path = FIXTURES / f"surgery_reference_{arch}.safetensors"
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    config = json.loads(meta["config"])
    dtype = getattr(torch, meta["dtype"].removeprefix("torch."))  # what the reference ran in
    torch.manual_seed(0)
    model = open_clip.CLIP(**config).eval().to(dtype)
    weights = {k.removeprefix("weights."): v.to(dtype) for k, v in tensors.items() if k.startswith("weights.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not unexpected and all(not k.startswith("visual.") for k in missing)
    expected = {k.removeprefix("expected."): v for k, v in tensors.items() if k.startswith("expected.")}
    return model, tensors, expected, tuple(json.loads(meta["out_size"]))


@pytest.mark.parametrize("arch", ["vit", "resnet"])
def test_maps_match_reference_implementation(arch):
    model, inputs, expected, out_size = load_reference(arch)
    tokens = dense_tokens(model, inputs["pixels"])

    surgery = feature_surgery(tokens.surgery, inputs["text"])
    torch.testing.assert_close(surgery, expected["surgery_similarity"], atol=1e-4, rtol=0)
    surgery_maps = similarity_to_maps(surgery[:, 1:], tokens.grid, out_size)
    # the reference lays maps out as (N, H, W, L)
    torch.testing.assert_close(surgery_maps.permute(0, 2, 3, 1), expected["surgery_maps"], atol=1e-4, rtol=0)

    raw = tokens.raw @ inputs["text"].T
    torch.testing.assert_close(raw, expected["raw_similarity"], atol=1e-4, rtol=0)
    raw_maps = similarity_to_maps(raw[:, 1:], tokens.grid, out_size)
    torch.testing.assert_close(raw_maps.permute(0, 2, 3, 1), expected["raw_maps"], atol=1e-4, rtol=0)

    single = feature_surgery(tokens.surgery, inputs["text"][:1], redundant=inputs["empty"])
    torch.testing.assert_close(single, expected["single_similarity"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ["vit", "resnet"])
def test_points_match_reference_implementation(arch):
    model, inputs, expected, out_size = load_reference(arch)
    tokens = dense_tokens(model, inputs["pixels"][:1])
    similarity = feature_surgery(tokens.surgery, inputs["text"])[0, 1:]
    h, w = tokens.grid
    for label in range(similarity.shape[1]):
        points, labels = similarity_map_to_points(similarity[:, label].reshape(h, w).numpy(), out_size)
        np.testing.assert_array_equal(points, expected[f"points_{label}"].numpy())
        np.testing.assert_array_equal(labels, expected[f"point_labels_{label}"].numpy())


def test_raw_path_is_the_models_own_forward():
    """The raw global token is exactly the model's image embedding (ViT and ResNet)."""
    for arch in ("vit", "resnet"):
        model, inputs, _, _ = load_reference(arch)
        tokens = dense_tokens(model, inputs["pixels"])
        with torch.no_grad():
            embedding = torch.nn.functional.normalize(model.encode_image(inputs["pixels"]), dim=-1)
        torch.testing.assert_close(tokens.raw[:, 0], embedding, atol=1e-5, rtol=0)


def test_feature_surgery_equals_hand_computation():
    generator = torch.Generator().manual_seed(0)
    n, t, d, labels = 2, 5, 4, 3
    image = torch.nn.functional.normalize(torch.randn(n, t, d, generator=generator), dim=-1).double()
    text = torch.nn.functional.normalize(torch.randn(labels, d, generator=generator), dim=-1).double()
    result = feature_surgery(image, text, temperature=2.0)

    expected = torch.zeros(n, t, labels, dtype=torch.float64)
    for b in range(n):
        logits = [2.0 * sum(image[b, 0, c] * text[j, c] for c in range(d)) for j in range(labels)]
        exps = [torch.exp(v) for v in logits]
        probs = [e / sum(exps) for e in exps]
        weights = [p / (sum(probs) / labels) for p in probs]
        for i in range(t):
            for j in range(labels):
                total = 0.0
                for c in range(d):
                    product = image[b, i, c] * text[j, c] * weights[j]
                    redundant = sum(image[b, i, c] * text[m, c] * weights[m] for m in range(labels)) / labels
                    total += product - redundant
                expected[b, i, j] = total
    torch.testing.assert_close(result, expected)
    # what all labels share is gone: each token's similarities sum to zero over labels
    torch.testing.assert_close(result.sum(-1), torch.zeros(n, t, dtype=torch.float64))


def test_feature_surgery_with_redundant_feature():
    image = torch.nn.functional.normalize(torch.randn(1, 3, 4), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(2, 4), dim=-1)
    empty = torch.nn.functional.normalize(torch.randn(4), dim=-1)
    expected = torch.einsum("ntc,lc->ntl", image, text) - torch.einsum("ntc,c->nt", image, empty)[..., None]
    torch.testing.assert_close(feature_surgery(image, text, redundant=empty), expected)


def test_similarity_to_maps_normalizes_each_label_and_resizes():
    similarity = torch.tensor([[[0.0, 10.0], [1.0, 20.0], [2.0, 30.0], [3.0, 40.0]]])  # (1, 4 tokens, 2 labels)
    maps = similarity_to_maps(similarity, (2, 2), (2, 2))
    assert maps.shape == (1, 2, 2, 2)
    expected = torch.tensor([[0.0, 1 / 3], [2 / 3, 1.0]])
    torch.testing.assert_close(maps[0, 0], expected)
    torch.testing.assert_close(maps[0, 1], expected)
    big = similarity_to_maps(similarity, (2, 2), (7, 5))
    assert big.shape == (1, 2, 7, 5)
    assert float(big.min()) >= 0.0 and float(big.max()) <= 1.0


def test_a_joint_scale_and_a_floor_keep_labels_comparable():
    similarity = torch.tensor([[[0.0, 10.0], [1.0, 20.0], [2.0, 30.0], [3.0, 40.0]]])  # (1, 4 tokens, 2 labels)
    joint = similarity_to_maps(similarity, (2, 2), (2, 2), scale="joint")
    # one scale from 0 (the lowest of all) to 40 (the highest of all), by hand
    torch.testing.assert_close(joint[0, 0], torch.tensor([[0.0, 1.0], [2.0, 3.0]]) / 40)
    torch.testing.assert_close(joint[0, 1], torch.tensor([[10.0, 20.0], [30.0, 40.0]]) / 40)
    floored = similarity_to_maps(similarity, (2, 2), (2, 2), scale="label", floor=2.0)
    torch.testing.assert_close(floored[0, 0], torch.tensor([[0.0, 0.0], [0.0, 1.0]]))  # (x - 2) / (3 - 2), clipped
    cold = torch.full((1, 4, 1), -0.5)  # nothing above the floor anywhere: all zero, not stretched
    assert float(similarity_to_maps(cold, (2, 2), (2, 2), scale="joint", floor=0.0).max()) == 0.0
    low, high = map_range(similarity, "joint", floor=5.0)
    assert float(low) == 5.0 and float(high) == 40.0
    with pytest.raises(ValueError, match="unknown map scale 'global'.*'joint' or 'label'"):
        map_range(similarity, "global")


def test_points_on_a_fixed_scale_skip_a_cold_map():
    tokens = np.linspace(-0.2, 0.05, 16).reshape(4, 4).astype(np.float32)
    points, kinds = similarity_map_to_points(tokens, (64, 64), threshold=0.5, down_sample=1)
    assert kinds.sum() > 0  # min-max stretches the cold map: positive points appear
    points, kinds = similarity_map_to_points(tokens, (64, 64), threshold=0.5, down_sample=1, value_range=(0.0, 0.3))
    assert len(points) == 0  # on the scale of the maps drawn beside it, nothing reaches the cutoff


def test_otsu_matches_scikit_image():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.2, 0.05, 3000), rng.normal(0.75, 0.08, 1000)]).clip(0, 1)
    ours = threshold_value(values, "otsu")
    assert abs(ours - threshold_otsu(values, nbins=256)) < 1.5 / 256
    assert 0.3 < ours < 0.65


def test_thresholds():
    values = np.linspace(0, 1, 101)
    assert threshold_map(values, "fixed", 0.5).sum() == 51
    assert threshold_map(values, "quantile", 0.9).sum() == 11
    with pytest.raises(ValueError, match="unknown threshold method"):
        threshold_value(values, "magic")
    with pytest.raises(ValueError, match="quantile"):
        threshold_value(values, "quantile", 2.0)


def test_points_are_positive_at_peak_and_negative_at_trough():
    token_map = np.zeros((8, 8), np.float32)
    token_map[:2, -2:] = 1.0  # hot top-right corner
    token_map[-2:, :2] = -1.0  # cold bottom-left corner
    points, labels = similarity_map_to_points(token_map, (80, 80), threshold=0.9)
    assert len(points) == len(labels) and labels.sum() >= 1
    positives, negatives = points[labels == 1], points[labels == 0]
    assert (positives[:, 0] >= 60).all() and (positives[:, 1] < 20).all()
    assert negatives[0, 0] < 20 and negatives[0, 1] >= 60
    with pytest.raises(ValueError, match="square"):
        similarity_map_to_points(np.zeros(10), (10, 10))


def test_unsupported_models_get_a_clear_error():
    class NotClip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = torch.nn.Linear(3, 3)

    with pytest.raises(UnsupportedModelError, match="ViT and ModifiedResNet"):
        dense_tokens(NotClip(), torch.zeros(1, 3, 8, 8))

    cfg = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "patch_size": 8,
            "width": 32,
            "layers": 1,
            "head_width": 16,
            "attentional_pool": True,
            "attn_pooler_queries": 4,
            "attn_pooler_heads": 2,
        },
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 1, "layers": 1},
    }
    with pytest.raises(UnsupportedModelError, match="attentional pooler"):
        dense_tokens(open_clip.CLIP(**cfg), torch.zeros(1, 3, 32, 32))


def test_other_input_sizes_resize_positional_embeddings():
    model, inputs, _, _ = load_reference("vit")
    tokens = dense_tokens(model, torch.nn.functional.interpolate(inputs["pixels"], size=(48, 64)))
    assert tokens.grid == (6, 8)
    assert tokens.surgery.shape == (2, 1 + 48, 32)
    assert torch.isfinite(tokens.surgery).all()
