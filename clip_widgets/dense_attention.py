"""Training-free dense CLIP features from a modified last attention block.

CLIP's patch tokens after the last block carry the image's global content more than their own
place. A family of training-free methods changes only how the last block(s) of the image tower
mix tokens, reusing every pretrained weight:

* **MaskCLIP** (Zhou, Loy and Dai, ECCV 2022, "Extract Free Dense Labels from CLIP"): no mixing
  at all; each token keeps its own value. ResNets: ``c_proj(v_proj(x))`` at every position.
* **SCLIP** (Wang, Mei and Yuille, ECCV 2024, "Rethinking Self-Attention for Dense
  Vision-Language Inference"): correlative self-attention, ``softmax(q q^T) + softmax(k k^T)``.
* **ClearCLIP** (Lan et al., ECCV 2024, "Decomposing CLIP Representations for Dense
  Vision-Language Inference"): ``softmax(q q^T)``, with the residual and the FFN removed.
* **NACLIP** (Hajimiri, Ben Ayed and Dolz, WACV 2025, "Pay Attention to Your Neighbours"):
  ``softmax(k k^T + G)`` with ``G`` a Gaussian neighbourhood prior, residual and FFN removed.
* **GEM** (Bousselham et al., CVPR 2024, "Grounding Everything"): a second path through the
  last blocks with self-self attention (q-q, k-k and v-v, averaged), as in CLIP Surgery.

Which parts of the last block each keeps follows the authors' public implementations (noted
per function). Every function here returns :class:`DenseFeatures`; they run the tower's own
modules without modifying the model (callers hold ``session.lock``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .towers import (
    merge_heads,
    resnet_features,
    resnet_pool_inputs,
    run_blocks,
    split_heads,
    unit_norm,
    vit_blocks,
    vit_embed,
    vit_global_token,
    vit_projection,
)

NACLIP_STD = 5.0
"""Standard deviation of NACLIP's Gaussian prior, in patches (the reference's default)."""
GEM_DEPTH = 6
"""Blocks GEM's self-self path runs through (the reference's ``gem_depth=7`` changes six)."""


@dataclass
class DenseFeatures:
    """Unit-norm patch embeddings ``tokens`` (N, h*w, D) on a ``grid`` (h, w), row-major, and
    the model's own unit-norm image embedding ``image`` (N, D) for the same pixels."""

    tokens: torch.Tensor
    image: torch.Tensor
    grid: tuple[int, int]


def qkv_heads(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Queries, keys and values of a block's attention for tokens ``x`` (N, T, C), each split
    into heads (N, heads, T, C / heads), and the attention's scale ``(C / heads) ** -0.5``."""
    attn: nn.MultiheadAttention = block.attn
    qkv = nn.functional.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = (split_heads(t, attn.num_heads) for t in qkv.chunk(3, dim=-1))
    return q, k, v, (attn.embed_dim // attn.num_heads) ** -0.5


def neighbour_prior(grid: tuple[int, int], std: float = NACLIP_STD) -> torch.Tensor:
    """NACLIP's neighbourhood prior (1 + h*w, 1 + h*w): between patches at grid cells ``a`` and
    ``b``, ``exp(-|a - b|^2 / (2 std^2))`` (1 for a patch with itself); 0 in the class token's
    row and column, so the class token's attention is left alone."""
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    cells = torch.stack([rows.flatten(), cols.flatten()], dim=1).double()
    gaussian = torch.exp(-(torch.cdist(cells, cells) ** 2) / (2 * float(std) ** 2))
    prior = torch.zeros(1 + len(cells), 1 + len(cells), dtype=torch.float64)
    prior[1:, 1:] = gaussian
    return prior


def attention_weights(kind: str, q: torch.Tensor, k: torch.Tensor, scale: float, prior: torch.Tensor | None = None):
    """The attention matrix (N, heads, T, T) of one variant from per-head queries and keys.

    ``"qk"``: the model's own, ``softmax(q k^T s)``. ``"csa"``: SCLIP's correlative
    self-attention ``softmax(q q^T s) + softmax(k k^T s)`` (each row sums to 2, as in the
    reference). ``"qq"``: ClearCLIP's ``softmax(q q^T s)``. ``"kk"``: ``softmax(k k^T s + prior)``,
    NACLIP's with its neighbourhood ``prior`` (T, T) (none: plain key-key attention).
    """
    if kind == "qk":
        return (q @ k.transpose(-2, -1) * scale).softmax(dim=-1)
    if kind == "csa":
        return (q @ q.transpose(-2, -1) * scale).softmax(dim=-1) + (k @ k.transpose(-2, -1) * scale).softmax(dim=-1)
    if kind == "qq":
        return (q @ q.transpose(-2, -1) * scale).softmax(dim=-1)
    if kind == "kk":
        logits = k @ k.transpose(-2, -1) * scale
        if prior is not None:
            logits = logits + prior.to(logits)
        return logits.softmax(dim=-1)
    raise ValueError(f"unknown attention kind {kind!r}; choose 'qk', 'csa', 'qq' or 'kk'")


def _last_block_input(visual: nn.Module, pixels: torch.Tensor, method: str):
    blocks = vit_blocks(visual, method)
    x, grid = vit_embed(visual, pixels)
    return run_blocks(visual, blocks[:-1], x), blocks[-1], grid


def _image_embedding(visual: nn.Module, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's own image embedding from the last block's input ``x``: the block run unmodified."""
    out = run_blocks(visual, [block], x)
    return vit_projection(visual)(vit_global_token(visual, out))[:, 0]


def last_block_tokens(
    visual: nn.Module,
    pixels: torch.Tensor,
    attention: str,
    *,
    residual: bool,
    ffn: bool,
    std: float = NACLIP_STD,
    method: str = "this method",
) -> DenseFeatures:
    """Patch embeddings with the last ViT block's attention replaced.

    ``attention`` is ``"value"`` (no mixing: every token's output is its own value, MaskCLIP) or a
    kind of :func:`attention_weights` (``"kk"`` gets NACLIP's prior with ``std``). The new
    attention output goes through the block's ``out_proj`` (and layer scale); ``residual`` adds
    the block's input back, ``ffn`` then applies the block's feed-forward layer with its residual.
    The tokens end with ``ln_post`` and ``proj``, as the model's own output does.
    """
    x, block, grid = _last_block_input(visual, pixels, method)
    q, k, v, scale = qkv_heads(block, x)
    if attention == "value":
        mixed = v
    else:
        prior = neighbour_prior(grid, std) if attention == "kk" else None
        mixed = attention_weights(attention, q, k, scale, prior) @ v
    out = block.ls_1(block.attn.out_proj(merge_heads(mixed)))
    if residual:
        out = x + out
    if ffn:
        out = out + block.ls_2(block.mlp(block.ln_2(out)))
    tokens = vit_projection(visual)(out[:, 1:])
    return DenseFeatures(tokens=tokens, image=_image_embedding(visual, block, x), grid=grid)


def maskclip_tokens(visual: nn.Module, pixels: torch.Tensor, *, residual: bool = True, ffn: bool = True):
    """MaskCLIP (Zhou et al., 2022) for a ViT: the last block's attention is replaced by each
    token's own value (``v`` through ``out_proj``; no query-key mixing).

    Why: the last attention pools every patch towards the global content; the value embedding
    alone keeps each patch's own content in the space the text is matched in. The reference
    implementation (chongzhou96/MaskCLIP, ``mmseg/models/backbones/vit.py``, ``return_qkv``)
    adds the block's input back to the projected value and then applies the block's FFN with its
    residual before the final norm and projection; those are the defaults here. ``residual=False,
    ffn=False`` gives the value-only variant later papers (e.g. ClearCLIP) also call MaskCLIP.
    """
    return last_block_tokens(visual, pixels, "value", residual=residual, ffn=ffn, method="MaskCLIP")


def sclip_tokens(visual: nn.Module, pixels: torch.Tensor, *, residual: bool = True, ffn: bool = True):
    """SCLIP (Wang et al., 2024): correlative self-attention in the last block,
    ``softmax(q q^T / sqrt(d)) + softmax(k k^T / sqrt(d))`` per head, applied to ``v``.

    Why: query-query and key-key similarities are highest between a token and the tokens that
    look like it, so attention stays with a patch's own region instead of the same few global
    tokens for every patch (the paper's "spatial invariance"). Following the reference
    implementation (wangf3014/SCLIP, ``clip/model.py``, ``VisionTransformer.forward`` with
    ``csa=True``), the residual connection and the FFN of the last block are kept; the two
    softmaxes are summed, not averaged.
    """
    return last_block_tokens(visual, pixels, "csa", residual=residual, ffn=ffn, method="SCLIP")


def clearclip_tokens(visual: nn.Module, pixels: torch.Tensor):
    """ClearCLIP (Lan et al., 2024): the last block is reduced to its attention output
    ``out_proj(softmax(q q^T / sqrt(d)) v)``: query-query attention, no residual, no FFN.

    Why: the paper finds the residual stream is what makes CLIP's patch maps noisy (it carries
    global features with a large norm), and the FFN adds little once it is gone. The
    reference (mc-lan/ClearCLIP, ``open_clip/transformer.py``, ``custom_attn`` with
    ``model_type='ClearCLIP'`` and ``ignore_residual=True``) passes the attention output straight
    to ``ln_post`` and ``proj``.
    """
    return last_block_tokens(visual, pixels, "qq", residual=False, ffn=False, method="ClearCLIP")


def naclip_tokens(visual: nn.Module, pixels: torch.Tensor, *, std: float = NACLIP_STD):
    """NACLIP (Hajimiri et al., 2025): the last block is reduced to
    ``out_proj(softmax(k k^T / sqrt(d) + G) v)``, no residual and no FFN.

    Why: key-key similarity groups patches of similar content, and the Gaussian prior ``G``
    (see :func:`neighbour_prior`; ``std`` = 5 patches by default), added to the logits, makes
    every patch attend to its neighbourhood, the locality a segmentation needs. From the
    reference (sinahmr/NACLIP, ``clip/model.py``, ``arch='reduced'``, ``attn_strategy='naclip'``,
    ``gaussian_std=5``); its optional PAMR post-processing is not applied here.
    """
    return last_block_tokens(visual, pixels, "kk", residual=False, ffn=False, std=std, method="NACLIP")


def self_self_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, inverse_temperature: torch.Tensor | float, iterations: int = 1
) -> torch.Tensor:
    """GEM's self-self attention output (N, heads, T, d): the mean over ``x`` in (q, k, v) of
    ``softmax(x' x'^T t) v``, where ``x'`` is ``x`` refined ``iterations`` times by
    ``x <- softmax(x^ x^T t) x^`` (``x^``: ``x`` L2-normalized per head) and normalized once
    more, and ``t`` is the ``inverse_temperature`` (a number or a tensor broadcastable to the
    logits)."""
    outputs = []
    for x in (q, k, v):
        for _ in range(iterations):
            x = nn.functional.normalize(x, dim=-1)
            x = (x @ x.transpose(-2, -1) * inverse_temperature).softmax(dim=-1) @ x
        x = nn.functional.normalize(x, dim=-1)
        outputs.append((x @ x.transpose(-2, -1) * inverse_temperature).softmax(dim=-1) @ v)
    return sum(outputs) / len(outputs)


def gem_tokens(
    visual: nn.Module,
    pixels: torch.Tensor,
    *,
    depth: int = GEM_DEPTH,
    iterations: int = 1,
    inverse_temperature: float | None = None,
) -> DenseFeatures:
    """GEM (Bousselham et al., 2024): a self-self attention path beside the model's own through
    the last ``depth`` blocks.

    Both paths start at the input of the first of those blocks. In each block, q, k and v come
    from the original path's tokens (as the model computes them); the GEM path adds
    ``out_proj(`` :func:`self_self_attention` ``)`` (with layer scale) to its own running tokens
    and skips the FFN, while the original path runs the block unmodified. Why: self-self
    attention clusters tokens of the same object (a few rounds of soft k-means in the paper's
    view), so the GEM path's patch tokens keep their locality.

    From the reference (WalBouss/GEM, ``gem/gem_utils.py`` and ``gem_wrapper.py``): defaults
    ``gem_depth=7`` (which changes the last six blocks: ``depth=6`` here), ``ss_attn_iter=1``,
    and without ``ss_attn_temp`` an adaptive inverse temperature, the mean over tokens of the
    L2 norm of the block's normalized input (``ln_1`` output) times ``d ** -0.5``, per image.
    A number for ``inverse_temperature`` replaces it.
    """
    blocks = vit_blocks(visual, "GEM")
    depth = max(1, min(int(depth), len(blocks)))
    x, grid = vit_embed(visual, pixels)
    x = run_blocks(visual, blocks[: len(blocks) - depth], x)
    original, gem = x, x
    for block in blocks[len(blocks) - depth :]:
        q, k, v, scale = qkv_heads(block, original)
        if inverse_temperature is None:
            temperature = block.ln_1(original).norm(dim=-1).mean(dim=-1).reshape(-1, 1, 1, 1) * scale
        else:
            temperature = float(inverse_temperature)
        gem = gem + block.ls_1(block.attn.out_proj(merge_heads(self_self_attention(q, k, v, temperature, iterations))))
        original = run_blocks(visual, [block], original)
    project = vit_projection(visual)
    image = project(vit_global_token(visual, original))[:, 0]
    return DenseFeatures(tokens=project(gem[:, 1:]), image=image, grid=grid)


def resnet_maskclip_tokens(visual: nn.Module, pixels: torch.Tensor) -> DenseFeatures:
    """MaskCLIP (Zhou et al., 2022) for a ModifiedResNet: the attention pool's value and output
    projections applied at every position, ``c_proj(v_proj(x))``, with no query-key attention.

    Why: the pool's single query mixes all positions into one vector; its value path alone, a
    pair of 1x1 convolutions, maps each position into the joint space. As in the reference
    (chongzhou96/MaskCLIP, ``mmseg/models/decode_heads/maskclip_head.py``, ``MaskClipHead``
    without ``attn_pooling``), the positional embedding is not added to the features.
    """
    pool = visual.attnpool
    features, grid = resnet_features(visual, pixels)
    tokens = unit_norm(pool.c_proj(pool.v_proj(features)))
    x = resnet_pool_inputs(visual, features, grid)
    q = split_heads(pool.q_proj(x[:, :1]), pool.num_heads)
    k = split_heads(pool.k_proj(x), pool.num_heads)
    v = split_heads(pool.v_proj(x), pool.num_heads)
    scale = (x.shape[-1] // pool.num_heads) ** -0.5
    image = unit_norm(pool.c_proj(merge_heads(attention_weights("qk", q, k, scale) @ v)))[:, 0]
    return DenseFeatures(tokens=tokens, image=image, grid=grid)
