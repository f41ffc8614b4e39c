"""Layer registry and activation capture on both tiny architectures."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clip_widgets.errors import LayerNotFoundError, UnsupportedModelError
from clip_widgets.layers import LayerInfo, LayerRegistry
from clip_widgets.session import ModelSession
from clip_widgets.testing import tiny_config

VIT_NAMES = ["conv1", "ln_pre", "blocks.0.mlp", "blocks.0", "blocks.1.mlp", "blocks.1", "ln_post"]
RESNET_NAMES = [
    "stem",
    "layer1",
    "layer1.0",
    "layer2",
    "layer2.0",
    "layer3",
    "layer3.0",
    "layer4",
    "layer4.0",
    "attnpool",
]


@pytest.fixture(params=["vit", "resnet"])
def session(request, vit_session, resnet_session) -> ModelSession:
    return vit_session if request.param == "vit" else resnet_session


def _pixels(session: ModelSession, n: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, *session.image_size, generator=g)


def _hook_count(session: ModelSession) -> int:
    return sum(len(m._forward_hooks) for m in session.model.modules())


def test_names(vit_session, resnet_session):
    assert vit_session.layers.names == VIT_NAMES
    assert resnet_session.layers.names == RESNET_NAMES
    assert "blocks.1" in vit_session.layers and "blocks.2" not in vit_session.layers
    assert "layer4.0" in resnet_session.layers
    assert [info.name for info in vit_session.layers] == VIT_NAMES
    assert vit_session.layers.module("blocks.1") is vit_session.model.visual.transformer.resblocks[1]
    assert resnet_session.layers.module("layer3") is resnet_session.model.visual.layer3


def test_vit_shapes_and_units(vit_session):
    layers = vit_session.layers
    tokens = 1 + 4 * 4  # class token + a 4 x 4 patch grid
    assert layers["conv1"] == LayerInfo("conv1", "conv1", "conv", (64, 4, 4), 64)
    for name in ["ln_pre", "blocks.0", "blocks.1", "ln_post"]:  # the residual stream
        info = layers[name]
        assert info.kind == "tokens" and info.shape == (tokens, 64) and info.units == 64
    assert layers["blocks.1"].module_path == "transformer.resblocks.1"


def test_vit_mlp_neurons_are_the_hidden_layer_that_makes_the_block_output(vit_session):
    layers = vit_session.layers
    assert layers["blocks.1.mlp"].shape == (17, 256) and layers["blocks.1.mlp"].units == 256
    block = vit_session.model.visual.transformer.resblocks[1]
    with torch.no_grad(), layers.capture("blocks.0", "blocks.1.mlp", "blocks.1") as acts:
        vit_session.model.encode_image(_pixels(vit_session))
        # by hand: the residual stream after attention, plus the MLP's output layer applied to
        # the captured hidden units, is the block's output
        x = acts["blocks.0"]
        mid = x + block.ls_1(block.attention(block.ln_1(x)))
        rebuilt = mid + block.ls_2(block.mlp.c_proj(acts["blocks.1.mlp"]))
    torch.testing.assert_close(rebuilt, acts["blocks.1"], atol=1e-5, rtol=1e-4)
    assert (acts["blocks.1.mlp"] > 0).float().mean() < 0.9  # after the GELU: many near or below 0


def test_a_stage_and_its_bottleneck_are_both_captured_when_the_pass_stops_early(resnet_session):
    pixels = _pixels(resnet_session)
    with torch.no_grad():
        early, output = resnet_session.layers.forward(pixels, "layer2", "layer2.0")
        with resnet_session.layers.capture("layer2", "layer2.0") as full:
            resnet_session.model.encode_image(pixels)
    assert output is None  # stopped after layer2, before the later stages
    for name in ("layer2", "layer2.0"):
        torch.testing.assert_close(early[name], full[name])


def test_resnet_shapes_and_units(resnet_session):
    layers = resnet_session.layers
    assert layers["stem"].shape == (16, 16, 16)  # 64 px input, stem downsamples by 4
    assert layers["layer4"].shape == (512, 2, 2) and layers["layer4"].units == 512
    assert layers["layer4.0"].kind == "conv"
    assert layers["attnpool"] == LayerInfo("attnpool", "attnpool", "vector", (32,), 32)


def test_captured_shapes_match_registry(session):
    names = session.layers.names
    with session.layers.capture(*names) as acts:
        session.model.encode_image(_pixels(session, n=3))
    assert set(acts) == set(names)
    for name in names:
        assert tuple(acts[name].shape) == (3, *session.layers[name].shape), name
        assert not acts[name].requires_grad


def test_capture_without_detach_keeps_graph(vit_session):
    pixels = _pixels(vit_session).requires_grad_(True)
    with vit_session.layers.capture("blocks.0", detach=False) as acts:
        vit_session.model.encode_image(pixels)
    acts["blocks.0"].sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_wrong_name_lists_valid_names(session):
    with pytest.raises(LayerNotFoundError) as info:
        session.layers["no_such_layer"]
    message = str(info.value)
    for name in session.layers.names:
        assert name in message
    assert isinstance(info.value, KeyError)


def test_wrong_name_suggests_close_match(vit_session, resnet_session):
    with pytest.raises(LayerNotFoundError, match="Did you mean 'blocks.1'"):
        vit_session.layers["block.1"]
    with pytest.raises(LayerNotFoundError, match="Did you mean 'layer4'"):
        resnet_session.layers.module("layer_4")


def test_hooks_removed_after_normal_exit_and_exception(session):
    before = _hook_count(session)
    names = session.layers.names
    with session.layers.capture(*names):
        assert _hook_count(session) == before + len(names)
        session.model.encode_image(_pixels(session))
    assert _hook_count(session) == before

    with pytest.raises(RuntimeError, match="boom"), session.layers.capture(*names):
        session.model.encode_image(_pixels(session))
        raise RuntimeError("boom")
    assert _hook_count(session) == before
    for name in names:
        assert not session.layers.module(name)._forward_hooks


def test_bad_name_registers_nothing(session):
    before = _hook_count(session)
    first = session.layers.names[0]
    with pytest.raises(LayerNotFoundError), session.layers.capture(first, "nope"):
        pass
    assert _hook_count(session) == before


def _manual_block(block, x: torch.Tensor, heads: int) -> torch.Tensor:
    """A pre-norm transformer block written out by hand (QuickGELU, no layer scale)."""
    n, t, d = x.shape
    h = F.layer_norm(x, (d,), block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
    qkv = h @ block.attn.in_proj_weight.T + block.attn.in_proj_bias
    q, k, v = (part.reshape(n, t, heads, d // heads).transpose(1, 2) for part in qkv.split(d, dim=-1))
    attn = torch.softmax(q @ k.transpose(-2, -1) / (d // heads) ** 0.5, dim=-1)
    mixed = (attn @ v).transpose(1, 2).reshape(n, t, d)
    x = x + mixed @ block.attn.out_proj.weight.T + block.attn.out_proj.bias
    h = F.layer_norm(x, (d,), block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
    h = h @ block.mlp.c_fc.weight.T + block.mlp.c_fc.bias
    h = h * torch.sigmoid(1.702 * h)
    return x + h @ block.mlp.c_proj.weight.T + block.mlp.c_proj.bias


def test_vit_block_output_matches_manual_recomputation(vit_session):
    visual = vit_session.model.visual
    pixels = _pixels(vit_session)
    with vit_session.layers.capture("ln_pre", "blocks.0", "blocks.1") as acts:
        vit_session.model.encode_image(pixels)

    # patch embedding, class token, positions and ln_pre, by hand
    with torch.no_grad():
        patches = F.conv2d(pixels, visual.conv1.weight, stride=visual.patch_size)
        tokens = patches.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.expand(tokens.shape[0], 1, -1)
        x = torch.cat([cls, tokens], dim=1) + visual.positional_embedding
        x = F.layer_norm(x, x.shape[-1:], visual.ln_pre.weight, visual.ln_pre.bias, visual.ln_pre.eps)
        torch.testing.assert_close(acts["ln_pre"], x, rtol=1e-5, atol=1e-5)

        heads = visual.transformer.resblocks[0].attn.num_heads
        b0 = _manual_block(visual.transformer.resblocks[0], x, heads)
        torch.testing.assert_close(acts["blocks.0"], b0, rtol=1e-4, atol=1e-5)
        b1 = _manual_block(visual.transformer.resblocks[1], acts["blocks.0"], heads)
        torch.testing.assert_close(acts["blocks.1"], b1, rtol=1e-4, atol=1e-5)
        # and open_clip's own block applied to the captured input agrees too
        torch.testing.assert_close(visual.transformer.resblocks[1](acts["blocks.0"]), acts["blocks.1"])


def test_sequence_first_transformer_is_reported_batch_first(vit_session):
    seq = ModelSession.from_config("tiny-vit", seed=0, device="cpu")
    transformer = seq.model.visual.transformer
    transformer.batch_first = False
    for block in transformer.resblocks:
        block.attn.batch_first = False
    pixels = _pixels(vit_session, n=3)
    torch.testing.assert_close(seq.encode_image(pixels), vit_session.encode_image(pixels))

    registry = LayerRegistry(seq.model)
    assert registry["blocks.0"].shape == vit_session.layers["blocks.0"].shape == (17, 64)
    with registry.capture("blocks.0", "blocks.1") as seq_acts:
        seq.model.encode_image(pixels)
    with vit_session.layers.capture("blocks.0", "blocks.1") as acts:
        vit_session.model.encode_image(pixels)
    for name in ("blocks.0", "blocks.1"):
        assert seq_acts[name].shape == (3, 17, 64)
        torch.testing.assert_close(seq_acts[name], acts[name])


def test_registry_accepts_visual_tower_and_deeper_configs():
    session = ModelSession.from_config(tiny_config("tiny-vit", layers=4), device="cpu")
    assert LayerRegistry(session.model.visual).names[-4:] == ["blocks.2", "blocks.3.mlp", "blocks.3", "ln_post"]
    resnet = ModelSession.from_config(tiny_config("tiny-resnet", layers=[1, 2, 1, 1]), device="cpu")
    assert "layer2.1" in resnet.layers and resnet.layers["layer2.1"].shape == (128, 8, 8)


def test_unsupported_tower():
    with pytest.raises(UnsupportedModelError, match="Linear"):
        LayerRegistry(torch.nn.Linear(3, 3))
