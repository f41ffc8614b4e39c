"""Dense maps: each attention variant against a naive per-head computation written out here, the
gradient methods against a second derivation of their gradients, the verb's contract, and what
the maps show on the embedded models' world scenes."""

from __future__ import annotations

import math

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import binary_dilation

from clip_widgets import dense_attention, dense_gradients
from clip_widgets.dense import METHODS, dense_maps, method_names
from clip_widgets.errors import UnsupportedModelError
from clip_widgets.session import ModelSession
from clip_widgets.surgery import surgery_maps, whole_image_pixels
from clip_widgets.testing import tiny_config
from clip_widgets.world import CLASSES, class_prompt, draw_scene

LABELS = ["a red circle", "a blue star", "a photo of a cat"]


# ---------------------------------------------------------------------------------------------
# Naive references: loops over heads and token pairs, nothing from the modules under test
# ---------------------------------------------------------------------------------------------


def tiny_model(name: str = "tiny-vit", **vision) -> open_clip.CLIP:
    torch.manual_seed(0)
    return open_clip.CLIP(**tiny_config(name, **vision)).eval().double()


def random_pixels(side: int) -> torch.Tensor:
    return torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def softmax_list(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    return [e / sum(exps) for e in exps]


def attention_rows(a: torch.Tensor, b: torch.Tensor, scale, prior=None) -> torch.Tensor:
    """Row i: softmax over j of ``a_i . b_j * scale (+ prior[i][j])``, one pair at a time."""
    rows = []
    for i in range(a.shape[0]):
        logits = [
            float(torch.dot(a[i], b[j])) * float(scale) + (prior[i][j] if prior else 0.0) for j in range(b.shape[0])
        ]
        rows.append(softmax_list(logits))
    return torch.tensor(rows, dtype=torch.float64)


def heads(block, x: torch.Tensor) -> tuple[list[tuple[torch.Tensor, ...]], int]:
    """Per head (q, k, v), each (T, d), of a block's attention for tokens ``x`` (T, C)."""
    width, count = x.shape[-1], block.attn.num_heads
    d = width // count
    h = block.ln_1(x)
    weight, bias = block.attn.in_proj_weight, block.attn.in_proj_bias
    q, k, v = (h @ weight[i * width : (i + 1) * width].T + bias[i * width : (i + 1) * width] for i in range(3))
    return [(q[:, j * d : (j + 1) * d], k[:, j * d : (j + 1) * d], v[:, j * d : (j + 1) * d]) for j in range(count)], d


def embed_by_hand(visual, pixels: torch.Tensor) -> torch.Tensor:
    """(T, C): class token and patches plus positions, ``ln_pre``; the model's native size."""
    patches = visual.conv1(pixels)[0].flatten(1).T
    x = torch.cat([visual.class_embedding[None], patches]) + visual.positional_embedding
    return visual.ln_pre(x)


def last_block_input(visual, pixels):
    x = embed_by_hand(visual, pixels)
    for block in list(visual.transformer.resblocks)[:-1]:
        x = block(x[None])[0]
    return x


def finish(visual, block, x, mixed: list[torch.Tensor], *, residual: bool, ffn: bool) -> torch.Tensor:
    out = block.attn.out_proj(torch.cat(mixed, dim=-1))
    if residual:
        out = x + out
    if ffn:
        out = out + block.mlp(block.ln_2(out))
    return F.normalize(visual.ln_post(out[1:]) @ visual.proj, dim=-1)


def neighbour_prior_by_hand(grid, std):
    h, w = grid
    size = 1 + h * w
    prior = [[0.0] * size for _ in range(size)]
    for i in range(1, size):
        for j in range(1, size):
            (r1, c1), (r2, c2) = divmod(i - 1, w), divmod(j - 1, w)
            prior[i][j] = math.exp(-((r1 - r2) ** 2 + (c1 - c2) ** 2) / (2 * std**2))
    return prior


def expected_last_block(visual, pixels, method: str, std: float = 5.0) -> torch.Tensor:
    block = visual.transformer.resblocks[-1]
    x = last_block_input(visual, pixels)
    per_head, d = heads(block, x)
    grid = visual.grid_size
    mixed = []
    for q, k, v in per_head:
        if method == "maskclip":
            mixed.append(v)
        elif method == "sclip":
            mixed.append((attention_rows(q, q, d**-0.5) + attention_rows(k, k, d**-0.5)) @ v)
        elif method == "clearclip":
            mixed.append(attention_rows(q, q, d**-0.5) @ v)
        elif method == "naclip":
            mixed.append(attention_rows(k, k, d**-0.5, neighbour_prior_by_hand(grid, std)) @ v)
    keep = method in ("maskclip", "sclip")  # residual and FFN kept, as their reference code does
    return finish(visual, block, x, mixed, residual=keep, ffn=keep)


def model_embedding(model, pixels):
    with torch.no_grad():
        return F.normalize(model.encode_image(pixels), dim=-1)[0]


# ---------------------------------------------------------------------------------------------
# The attention variants
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "function", "options"),
    [
        ("maskclip", dense_attention.maskclip_tokens, {}),
        ("sclip", dense_attention.sclip_tokens, {}),
        ("clearclip", dense_attention.clearclip_tokens, {}),
        ("naclip", dense_attention.naclip_tokens, {}),
        ("naclip", dense_attention.naclip_tokens, {"std": 1.5}),  # a prior that matters on a 4 x 4 grid
    ],
)
def test_last_block_variants_equal_a_hand_computation(method, function, options):
    model = tiny_model(layers=3)
    pixels = random_pixels(32)
    with torch.no_grad():
        features = function(model.visual, pixels, **options)
        expected = expected_last_block(model.visual, pixels, method, **options)
    assert features.grid == (4, 4) and features.tokens.shape == (1, 16, 32)
    torch.testing.assert_close(features.tokens[0], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(features.image[0], model_embedding(model, pixels), atol=1e-5, rtol=0)


def test_the_neighbour_prior_is_a_gaussian_of_grid_distance():
    prior = dense_attention.neighbour_prior((3, 4), std=2.0)
    expected = torch.tensor(neighbour_prior_by_hand((3, 4), 2.0), dtype=torch.float64)
    torch.testing.assert_close(prior, expected)


@pytest.mark.parametrize(("depth", "iterations", "inverse_temperature"), [(2, 1, None), (1, 2, None), (2, 1, 3.0)])
def test_gem_equals_a_hand_computation(depth, iterations, inverse_temperature):
    model = tiny_model(layers=3)
    visual, pixels = model.visual, random_pixels(32)
    blocks = list(visual.transformer.resblocks)
    with torch.no_grad():
        features = dense_attention.gem_tokens(visual, pixels, depth=depth, iterations=iterations,
                                              inverse_temperature=inverse_temperature)  # fmt: skip
        x = embed_by_hand(visual, pixels)
        for block in blocks[: len(blocks) - depth]:
            x = block(x[None])[0]
        original, gem = x, x
        for block in blocks[len(blocks) - depth :]:
            per_head, d = heads(block, original)
            if inverse_temperature is None:
                norms = [float(torch.linalg.vector_norm(t)) for t in block.ln_1(original)]
                temperature = sum(norms) / len(norms) * d**-0.5
            else:
                temperature = inverse_temperature
            mixed = []
            for q, k, v in per_head:
                outputs = []
                for t in (q, k, v):
                    for _ in range(iterations):
                        t = t / t.norm(dim=-1, keepdim=True)
                        t = attention_rows(t, t, temperature) @ t
                    t = t / t.norm(dim=-1, keepdim=True)
                    outputs.append(attention_rows(t, t, temperature) @ v)
                mixed.append((outputs[0] + outputs[1] + outputs[2]) / 3)
            gem = gem + block.attn.out_proj(torch.cat(mixed, dim=-1))
            original = block(original[None])[0]
        expected = F.normalize(visual.ln_post(gem[1:]) @ visual.proj, dim=-1)
    torch.testing.assert_close(features.tokens[0], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(features.image[0], model_embedding(model, pixels), atol=1e-5, rtol=0)


def test_resnet_maskclip_is_the_pools_value_path_at_every_position():
    model = tiny_model("tiny-resnet")
    visual, pixels = model.visual, random_pixels(64)
    pool = visual.attnpool
    with torch.no_grad():
        features = dense_attention.resnet_maskclip_tokens(visual, pixels)
        feature_map = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(pixels)))))[0]
        expected = []
        for row in range(feature_map.shape[1]):
            for col in range(feature_map.shape[2]):
                f = feature_map[:, row, col]
                value = pool.v_proj.weight @ f + pool.v_proj.bias
                expected.append(F.normalize(pool.c_proj.weight @ value + pool.c_proj.bias, dim=0))
    torch.testing.assert_close(features.tokens[0], torch.stack(expected), atol=1e-5, rtol=0)
    torch.testing.assert_close(features.image[0], model_embedding(model, pixels), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# Gradient methods: the gradients a second way
# ---------------------------------------------------------------------------------------------


def text_directions(count: int, width: int) -> torch.Tensor:
    return F.normalize(
        torch.randn(count, width, generator=torch.Generator().manual_seed(2), dtype=torch.float64), dim=-1
    )


def hooked_forward(model, pixels, blocks):
    """The model's own forward with each block's input, attention output and block output kept."""
    seen, handles = {}, []
    for index, block in enumerate(blocks):
        handles.append(block.register_forward_pre_hook(lambda m, a, i=index: seen.__setitem__(("in", i), a[0][0])))
        handles.append(
            block.attn.register_forward_hook(lambda m, a, out, i=index: seen.__setitem__(("attn", i), out[0]))
        )
        handles.append(block.register_forward_hook(lambda m, a, out, i=index: seen.__setitem__(("out", i), out)))
    embedding = F.normalize(model.encode_image(pixels), dim=-1)[0]
    for handle in handles:
        handle.remove()
    return embedding, seen


def test_grad_eclip_equals_a_hand_computation_on_the_models_own_forward():
    model = tiny_model(layers=3)
    visual, pixels = model.visual, random_pixels(32)
    text = text_directions(3, 32)
    relevance, image, grid = dense_gradients.grad_eclip_vit(visual, pixels, text)
    block = visual.transformer.resblocks[-1]
    embedding, seen = hooked_forward(model, pixels, [block])
    x = seen["in", 0]
    per_head, _ = heads(block, x)
    q = torch.cat([h[0] for h in per_head], dim=-1).detach()
    k = torch.cat([h[1] for h in per_head], dim=-1).detach()
    v = torch.cat([h[2] for h in per_head], dim=-1).detach()
    cosines = [float(torch.dot(q[0], k[i]) / (q[0].norm() * k[i].norm())) for i in range(1, k.shape[0])]
    low, high = min(cosines), max(cosines)
    loosened = [(c - low) / (high - low) for c in cosines]
    for label in range(len(text)):
        score = torch.dot(embedding, text[label])
        (grad_out,) = torch.autograd.grad(score, seen["attn", 0], retain_graph=True)
        w = grad_out[0, 0] @ block.attn.out_proj.weight  # chain rule through out_proj, by hand
        expected = [max(0.0, float((w * v[i + 1]).sum().detach()) * loosened[i]) for i in range(len(loosened))]
        torch.testing.assert_close(relevance[label].double(), torch.tensor(expected, dtype=torch.float64),
                                   atol=1e-5, rtol=0)  # fmt: skip
    assert grid == (4, 4) and relevance.min() >= 0 and relevance.max() > 0
    torch.testing.assert_close(image[0].double(), embedding.detach(), atol=1e-5, rtol=0)


def test_legrad_equals_the_chain_rule_through_the_models_own_forward():
    """dS/dA[h, n, m] = sum_d dS/do[n, h, d] v[m, h, d]: the attention output's gradient (from the
    model's own forward and autograd) times the values, per head, by hand."""
    model = tiny_model(layers=3)
    visual, pixels = model.visual, random_pixels(32)
    text = text_directions(2, 32)
    relevance, _, _ = dense_gradients.legrad_vit(visual, pixels, text, depth=2)
    blocks = list(visual.transformer.resblocks)[-2:]
    _, seen = hooked_forward(model, pixels, blocks)
    expected = torch.zeros(len(text), 16, dtype=torch.float64)
    for index, block in enumerate(blocks):
        with torch.no_grad():
            per_head, d = heads(block, seen["in", index])
        pooled = F.normalize(visual.ln_post(seen["out", index][0].mean(dim=0)) @ visual.proj, dim=-1)
        for label in range(len(text)):
            (grad_out,) = torch.autograd.grad(torch.dot(pooled, text[label]), seen["attn", index], retain_graph=True)
            grad_mixed = (grad_out[0] @ block.attn.out_proj.weight).detach()  # (T, C), before out_proj
            for m in range(1, 17):
                total = 0.0
                for h, (_, _, v) in enumerate(per_head):
                    for n in range(17):
                        total += max(0.0, float(torch.dot(grad_mixed[n, h * d : (h + 1) * d], v[m])))
                expected[label, m - 1] += total / (len(per_head) * 17)
    torch.testing.assert_close(relevance.double(), expected, atol=1e-5, rtol=0)


def test_resnet_gradient_methods_equal_the_analytic_gradient():
    """On the attention pool: S = <y / |y|, t> with y = c_proj(o), so dS/dy = (t - (y^ . t) y^) / |y|."""
    model = tiny_model("tiny-resnet")
    visual, pixels = model.visual, random_pixels(64)
    pool = visual.attnpool
    text = text_directions(2, 32)
    eclip, image, grid = dense_gradients.grad_eclip_resnet(visual, pixels, text)
    legrad, _, _ = dense_gradients.legrad_resnet(visual, pixels, text)
    with torch.no_grad():
        f = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(pixels)))))[0].flatten(1).T
        x = torch.cat([f.mean(dim=0, keepdim=True), f]) + pool.positional_embedding
        q, k, v = pool.q_proj(x), pool.k_proj(x), pool.v_proj(x)
        count, width = pool.num_heads, x.shape[-1]
        d = width // count
        rows = [attention_rows(q[:1, h * d : (h + 1) * d], k[:, h * d : (h + 1) * d], d**-0.5)[0] for h in range(count)]
        o = torch.cat([rows[h] @ v[:, h * d : (h + 1) * d] for h in range(count)])
        y = pool.c_proj(o)
        unit = y / y.norm()
        cosines = [float(torch.dot(q[0], k[i]) / (q[0].norm() * k[i].norm())) for i in range(1, len(k))]
        loosened = [(c - min(cosines)) / (max(cosines) - min(cosines)) for c in cosines]
        for label in range(len(text)):
            grad_o = pool.c_proj.weight.T @ ((text[label] - torch.dot(unit, text[label]) * unit) / y.norm())
            expected = [max(0.0, float(grad_o @ v[i + 1]) * loosened[i]) for i in range(len(loosened))]
            torch.testing.assert_close(
                eclip[label].double(), torch.tensor(expected, dtype=torch.float64), atol=1e-5, rtol=0
            )
            per_key = [
                sum(max(0.0, float(grad_o[h * d : (h + 1) * d] @ v[m, h * d : (h + 1) * d])) for h in range(count))
                / count
                for m in range(1, len(v))
            ]
            torch.testing.assert_close(
                legrad[label].double(), torch.tensor(per_key, dtype=torch.float64), atol=1e-5, rtol=0
            )
    assert grid == (2, 2)
    torch.testing.assert_close(image[0].double(), model_embedding(model, pixels), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# The verb
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def picture():
    return draw_scene(3, objects=(2, 3), word_probability=0.0).image.resize((40, 30))


def test_surgery_through_the_verb_is_surgery_maps(vit_session, resnet_session, picture):
    for session in (vit_session, resnet_session):
        expected = surgery_maps(session, picture, LABELS)
        result = dense_maps(session, picture, LABELS, method="surgery")
        np.testing.assert_array_equal(result.maps, expected.surgery)
        np.testing.assert_array_equal(result.tokens, expected.surgery_tokens)
        np.testing.assert_array_equal(result.probs, expected.probs)
        assert result.info["scale"] == expected.info["scale"]["surgery"] and result.method == "surgery"
    assert METHODS["surgery"].options["depth"] == 6 and dense_maps(vit_session, picture, LABELS).method == "surgery"


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_gives_maps_in_the_unit_range(vit_session, resnet_session, picture, method):
    for session, grid in ((vit_session, (4, 4)), (resnet_session, (2, 2))):
        if method not in method_names("vit" if session.is_vit else "resnet"):
            continue
        result = dense_maps(session, picture, LABELS, method=method)
        assert result.maps.shape == (3, 30, 40) and result.maps.dtype == np.float32
        assert result.maps.min() >= 0.0 and result.maps.max() <= 1.0 and result.maps.max() > 0.5
        assert result.tokens.shape == (3, *grid) and result.info["grid"] == grid
        assert result.probs.shape == (3,) and abs(float(result.probs.sum()) - 1) < 1e-5
        low, high = result.value_range("a blue star")
        assert low < high and result.info["method"] == method
        assert dense_maps(session, picture, LABELS, method=method, size="input").maps.shape == (3, *session.image_size)
        points, kinds = result.points(0)
        assert points.shape[1] == 2 and len(points) == len(kinds)
    raw = dense_maps(vit_session, picture, LABELS, method="raw")
    np.testing.assert_array_equal(raw.maps, surgery_maps(vit_session, picture, LABELS, floor=None).raw)


def test_the_joint_scale_spans_all_labels_and_per_label_stretches_each(vit_session, picture):
    joint = dense_maps(vit_session, picture, LABELS, method="naclip")
    assert joint.info["scale"]["kind"] == "joint" and len(joint.info["scale"]["low"]) == 1
    assert joint.info["scale"]["low"][0] == pytest.approx(float(joint.tokens.min()), abs=1e-6)
    assert joint.info["scale"]["high"][0] == pytest.approx(float(joint.tokens.max()), abs=1e-6)
    per_label = dense_maps(vit_session, picture, LABELS, method="naclip", scale="label")
    np.testing.assert_allclose(per_label.info["scale"]["low"], per_label.tokens.reshape(3, -1).min(1), atol=1e-6)
    np.testing.assert_allclose(per_label.info["scale"]["high"], per_label.tokens.reshape(3, -1).max(1), atol=1e-6)
    assert per_label.value_range(2) == (per_label.info["scale"]["low"][2], per_label.info["scale"]["high"][2])
    assert dense_maps(vit_session, picture, LABELS, method="naclip", floor=10.0).maps.max() == 0.0


def test_bad_method_names_and_options_are_clear(vit_session, resnet_session, picture):
    with pytest.raises(
        ValueError, match="unknown dense-map method 'sclp'; choose one of raw, surgery, maskclip, sclip"
    ):
        dense_maps(vit_session, picture, LABELS, method="sclp")
    for method in ("sclip", "clearclip", "naclip", "gem"):
        with pytest.raises(UnsupportedModelError, match="use one of: raw, surgery, maskclip, grad_eclip, legrad"):
            dense_maps(resnet_session, picture, LABELS, method=method)
    with pytest.raises(TypeError, match="'naclip' on a ViT takes no option 'sigma'; its options: std"):
        dense_maps(vit_session, picture, LABELS, method="naclip", sigma=2.0)
    with pytest.raises(TypeError, match="takes no option 'residual'"):
        dense_maps(resnet_session, picture, LABELS, method="maskclip", residual=False)
    assert method_names("resnet") == ["raw", "surgery", "maskclip", "grad_eclip", "legrad"]


def test_options_reach_the_method(vit_session, picture):
    kept = dense_maps(vit_session, picture, LABELS, method="maskclip")
    reduced = dense_maps(vit_session, picture, LABELS, method="maskclip", residual=False, ffn=False)
    assert reduced.info["options"] == {"residual": False, "ffn": False} and not np.allclose(kept.tokens, reduced.tokens)
    wide = dense_maps(vit_session, picture, LABELS, method="naclip", std=50.0)
    assert not np.allclose(wide.tokens, dense_maps(vit_session, picture, LABELS, method="naclip").tokens)


def test_input_size_changes_the_patch_grid(vit_session, resnet_session, picture):
    assert whole_image_pixels(vit_session, picture, 48).shape == (1, 3, 48, 48)
    assert whole_image_pixels(vit_session, picture, (32, 64)).shape == (1, 3, 32, 64)
    for method in ("naclip", "gem", "legrad", "grad_eclip", "surgery", "raw"):
        assert dense_maps(vit_session, picture, LABELS, method=method, input_size=48).tokens.shape == (3, 6, 6)
    wide = dense_maps(vit_session, picture, LABELS, method="sclip", input_size=(32, 64), size="input")
    assert wide.info["grid"] == (4, 8) and wide.maps.shape == (3, 32, 64) and wide.info["input_size"] == (32, 64)
    assert dense_maps(resnet_session, picture, LABELS, method="maskclip", input_size=128).info["grid"] == (4, 4)
    assert surgery_maps(vit_session, picture, LABELS, input_size=64).info["grid"] == (8, 8)
    assert surgery_maps(vit_session, picture, LABELS).info["grid"] == (4, 4)  # the model's own size by default
    with pytest.raises(ValueError, match="input_size"):
        whole_image_pixels(vit_session, picture, (32, 32, 3))


# ---------------------------------------------------------------------------------------------
# On the embedded models' world (measured behaviour, not exact numbers)
# ---------------------------------------------------------------------------------------------


def single_object_scenes(count: int = 5):
    """Single-object scenes, each with its label and a label sharing neither colour nor shape."""
    for k in range(count):
        colour, shape = CLASSES[(7 * k) % 30].split()
        scene = draw_scene(20_000 + k, spec=[(colour, shape)], word_probability=0.0)
        others = [c for c in CLASSES if c.split()[0] != colour and c.split()[1] != shape]
        yield scene, scene.objects[0], [class_prompt(scene.objects[0].label), class_prompt(others[k % len(others)])]


def colder_count(session, method: str) -> int:
    """In how many scenes the absent label's map is colder over the object than the present one's."""
    colder = 0
    for scene, obj, labels in single_object_scenes():
        maps = dense_maps(session, scene.image, labels, method=method).maps
        colder += maps[1][obj.mask].mean() < maps[0][obj.mask].mean()
    return colder


def test_absent_labels_are_colder_on_world_vit():
    """Measured on these 5 scenes: 5 for surgery, SCLIP and NACLIP, 4 for ClearCLIP (over 40
    scenes: 0.97, 0.85, 0.93, 0.88). Not asserted, as it holds less often: MaskCLIP (0.68 over
    40), GEM and raw CLIP (about half), LeGrad (0.70), and Grad-ECLIP (0.15: the gradient of a
    cosine shrinks as the image embedding turns towards the label, so a present label's
    relevance is the smaller one)."""
    session = ModelSession.from_embedded("world-vit", device="cpu")
    for method in ("surgery", "sclip", "naclip", "clearclip"):
        assert colder_count(session, method) >= 4, method


def test_world_rn_absent_labels_are_colder_and_gradient_maps_peak_on_the_object():
    session = ModelSession.from_embedded("world-rn", device="cpu")
    for method in ("raw", "surgery", "maskclip"):
        assert colder_count(session, method) == 5, method
    for method in ("grad_eclip", "legrad"):  # measured: peaks within half a cell 4 and 5, hotter inside 4 and 5
        near, inside = 0, 0
        for scene, obj, labels in single_object_scenes():
            heat = dense_maps(session, scene.image, labels[:1], method=method).maps[0]
            near += binary_dilation(obj.mask, iterations=8).flat[int(heat.argmax())]
            inside += heat[obj.mask].mean() > heat[~obj.mask].mean()
        assert near >= 4 and inside >= 4, (method, near, inside)
    blank = Image.new("RGB", (64, 64), (128, 128, 128))
    assert dense_maps(session, blank, ["a red circle"], method="legrad").maps.shape == (1, 64, 64)


def test_centring_removes_what_every_label_shares(vit_session, picture):
    labels = ["a cat", "a dog", "a car"]
    plain = dense_maps(vit_session, picture, labels, method="maskclip")
    centred = dense_maps(vit_session, picture, labels, method="maskclip", centre=True)
    np.testing.assert_allclose(centred.tokens, plain.tokens - plain.tokens.mean(0, keepdims=True), atol=1e-6)
    assert centred.info["centre"] and np.abs(centred.tokens.sum(0)).max() < 1e-5
    with pytest.raises(ValueError, match="two labels"):
        dense_maps(vit_session, picture, ["a cat"], method="maskclip", centre=True)
