"""A ViT's image embedding, split exactly into what each layer, head and image token adds to it.

The class token's residual stream is a sum: the embedded input, then each block's attention
output and MLP output. Each attention output is a sum over heads and over the tokens a head
reads from (``a_h[0, j] * v_h[j] @ W_O[h]``). The last layer norm is linear once its mean and
standard deviation are fixed by the whole stream, so every term goes through it on its own
(centred by its own channel mean, divided by the stream's standard deviation, scaled by the
norm's weight) and through the projection. The terms add up to the model's embedding
(Gandelsman et al., ICLR 2024, "Interpreting CLIP's Image Representation via Text-Based
Decomposition"; there the norm's mean is shared evenly among the terms, which gives the same sum).

The forward pass reuses the model's own modules and weights and never modifies the model;
:func:`decompose` checks its sum against the model's own embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import UnsupportedModelError
from .towers import vit_blocks, vit_embed

__all__ = ["EmbeddingParts", "decompose", "decompose_pixels", "head_grid"]


@dataclass
class EmbeddingParts:
    """The image embeddings of ``N`` images (before L2 normalization) split into parts that sum
    to them. Every part is in embedding units, ``D`` channels:

    * ``direct`` ``(N, D)``: the class token as embedded (patch projection skipped: only the
      class embedding and its position), straight through the final norm;
    * ``heads`` ``(N, L, H, T, D)`` with tokens (``T = 1 + h*w``, token 0 the class token, the
      rest row-major over ``grid``) or ``(N, L, H, D)`` summed over tokens;
    * ``mlps`` ``(N, L, D)``: each block's MLP;
    * ``bias`` ``(N, D)``: the attention output biases and the final norm's bias;
    * ``embedding`` ``(N, D)``: the model's own embedding, which the parts add up to.
    """

    direct: np.ndarray
    heads: np.ndarray
    mlps: np.ndarray
    bias: np.ndarray
    embedding: np.ndarray
    grid: tuple[int, int]

    @property
    def spatial(self) -> bool:
        return self.heads.ndim == 5

    def head_totals(self) -> np.ndarray:
        """``(N, L, H, D)``: each head's part, summed over the tokens it read."""
        return self.heads.sum(axis=3) if self.spatial else self.heads

    def total(self) -> np.ndarray:
        """``(N, D)``: the sum of all parts (equal to ``embedding`` up to rounding)."""
        heads = self.head_totals().sum(axis=(1, 2))
        return self.direct + heads + self.mlps.sum(axis=1) + self.bias


def _check_tower(visual: nn.Module) -> list[nn.Module]:
    """The tower's blocks, after the checks every method that re-runs them makes
    (:func:`~clip_widgets.towers.vit_blocks`) and the decomposition's own."""
    what = "the embedding decomposition"
    if not (hasattr(visual, "transformer") and hasattr(visual, "conv1")):
        raise UnsupportedModelError(f"{what} covers open_clip ViT image towers, not {type(visual).__name__}")
    blocks = vit_blocks(visual, what)
    if getattr(visual, "pool_type", "tok") != "tok":
        raise UnsupportedModelError(f"{what} needs a ViT pooled by its class token")
    for block in blocks:
        if hasattr(block, "ln_1_kv") or not isinstance(getattr(block, "ln_attn", nn.Identity()), nn.Identity):
            raise UnsupportedModelError(f"{what} does not cover blocks with extra norms around attention")
    return blocks


def head_grid(model: nn.Module) -> tuple[int, int]:
    """``(layers, heads)`` of the image tower of ``model`` (an ``open_clip.CLIP`` or its
    ``.visual``); raises :class:`UnsupportedModelError` for towers :func:`decompose_pixels`
    does not cover."""
    blocks = _check_tower(getattr(model, "visual", model))
    return len(blocks), int(blocks[0].attn.num_heads) if blocks else 0


@torch.no_grad()
def decompose_pixels(model: nn.Module, pixels: torch.Tensor, *, spatial: bool = True) -> EmbeddingParts:
    """Split the image embeddings of preprocessed ``pixels`` ``(N, 3, H, W)`` (see
    :class:`EmbeddingParts`); ``model`` is an ``open_clip.CLIP`` or its ``.visual``.
    ``spatial=False`` sums each head over tokens (``heads`` is then ``L`` x ``H`` times smaller
    than with tokens, which matters over a dataset). Raises :class:`UnsupportedModelError` for
    towers it does not cover (ResNets, attention-pooled or average-pooled ViTs)."""
    visual = getattr(model, "visual", model)
    blocks = _check_tower(visual)
    dtype = next(visual.parameters()).dtype
    pixels = pixels.to(dtype)
    x, grid = vit_embed(visual, pixels)  # the model's embedding step, positions resized for other input sizes
    x = x.float()
    n, tokens, width = x.shape

    # The class token's stream as a sum of raw (pre-norm) terms; the whole stream runs through
    # the model's own attention and MLP modules, since every token feeds the next block.
    direct = x[:, 0]
    heads, mlps, bias = [], [], torch.zeros(n, width)
    batch_first = getattr(visual.transformer, "batch_first", True)
    for block in blocks:
        attn: nn.MultiheadAttention = block.attn
        h = attn.num_heads
        d = attn.embed_dim // h
        normed = block.ln_1(x.to(dtype)).float()
        qkv = F.linear(normed, attn.in_proj_weight.float(), attn.in_proj_bias.float())
        q, k, v = (t.reshape(n, tokens, h, d).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
        weights = ((q[:, :, :1] * d**-0.5) @ k.transpose(-1, -2)).softmax(-1)[:, :, 0]  # (N, H, T): the class row
        w_out = attn.out_proj.weight.float().T.reshape(h, d, width)  # W_O's rows, per head
        per_token = block.ls_1(torch.einsum("nht,nhtd,hdc->nhtc", weights, v, w_out))  # (N, H, T, D)
        heads.append(per_token if spatial else per_token.sum(2))
        if attn.out_proj.bias is not None:
            bias = bias + block.ls_1(attn.out_proj.bias.float())

        attended = (
            block.attention(q_x=normed) if batch_first else block.attention(q_x=normed.transpose(0, 1)).transpose(0, 1)
        )
        x = x + block.ls_1(attended.float())
        mlp = block.ls_2(block.mlp(block.ln_2(x)).float())
        mlps.append(mlp[:, 0])
        x = x + mlp

    stream = x[:, 0]
    norm: nn.LayerNorm = visual.ln_post
    sigma = (stream.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt()
    gamma = norm.weight.float() if norm.weight is not None else torch.ones(width)
    proj = visual.proj.float() if visual.proj is not None else torch.eye(width)
    sigma_heads = sigma.reshape(n, 1, 1, *([1] * spatial), 1)

    def through_norm(term: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """A term's share of ``ln_post(stream) @ proj``: centred on its own channel mean."""
        return (gamma * (term - term.mean(-1, keepdim=True)) / sigma) @ proj

    heads_out = through_norm(torch.stack(heads, 1), sigma_heads)
    mlps_out = through_norm(torch.stack(mlps, 1), sigma[:, None])
    bias_out = through_norm(bias, sigma)
    if norm.bias is not None:
        bias_out = bias_out + norm.bias.float() @ proj
    embedding = norm(stream.to(dtype)).float() @ proj
    return EmbeddingParts(
        direct=through_norm(direct, sigma).numpy(),
        heads=heads_out.numpy(),
        mlps=mlps_out.numpy(),
        bias=bias_out.numpy(),
        embedding=embedding.numpy(),
        grid=grid,
    )


def decompose(session: Any, images: Any, *, spatial: bool = True) -> EmbeddingParts:
    """:func:`decompose_pixels` for images a :class:`~clip_widgets.ModelSession` preprocesses."""
    with session.lock:
        return decompose_pixels(session.model, session.preprocess(images), spatial=spatial)
