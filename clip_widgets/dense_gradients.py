"""Gradient-based explanation maps of CLIP's image-text similarity: Grad-ECLIP and LeGrad.

Both explain the score ``cos(image embedding, text embedding)`` of each label through the last
attention layer(s) of the image tower, using autograd on the model's own modules (callers hold
``session.lock``). Each label's gradient is taken on its own copy of the activations, so one
backward pass gives every label's map. Neither changes the model or needs parameter gradients:
the tensors differentiated against are made leaves of the graph.

* **Grad-ECLIP** (Zhao et al., ICML 2024, "Gradient-based Visual Explanation for CLIP").
* **LeGrad** (Bousselham et al., 2024, "LeGrad: An Explainability Method for Vision Transformers
  via Feature Formation Sensitivity").

Both return relevance (L, h*w) on the patch grid (non-negative), the model's own image
embedding (1, D) and the grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dense_attention import attention_weights, qkv_heads
from .errors import UnsupportedModelError
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

LEGRAD_DEPTH = 2
"""Blocks LeGrad reads (the reference's default ``layer_index=-2``: the last two)."""

Relevance = tuple[torch.Tensor, torch.Tensor, tuple[int, int]]


def _min_max(values: torch.Tensor) -> torch.Tensor:
    low, high = values.min(), values.max()
    return (values - low) / (high - low).clamp_min(1e-12)


def _eclip_map(grad: torch.Tensor, q_cls: torch.Tensor, k_patches: torch.Tensor, v_patches: torch.Tensor):
    """``ReLU(sum_c grad[l, c] * v[i, c] * lambda_i)`` with ``lambda`` the min-max normalized
    cosine between the class query and each patch key: (L, h*w)."""
    loosened = _min_max(F.cosine_similarity(k_patches, q_cls[None], dim=-1))
    return F.relu((grad @ v_patches.T) * loosened[None])


def grad_eclip_vit(visual: nn.Module, pixels: torch.Tensor, text: torch.Tensor) -> Relevance:
    """Grad-ECLIP (Zhao et al., 2024) for a ViT: the relevance of patch ``i`` to label ``l`` is
    ``ReLU(sum_c w[l, c] * v[i, c] * lambda_i)`` in the last block.

    ``w[l] = dS_l / do_cls``, the gradient of the cosine similarity ``S_l`` of the image and the
    label's text embedding with respect to the last attention's output at the class token
    (before ``out_proj``, all heads side by side); ``v[i]`` is patch ``i``'s value there; and
    ``lambda_i`` is the cosine of the class query and patch ``i``'s key over all channels,
    min-max normalized over the patches ("loosened" attention: the softmax weights are too sparse
    to spread relevance over an object). Why: the class token's output is a weighted sum of
    values, so gradient x value is each patch's first-order contribution to the score, and
    ``lambda`` keeps it spatially spread. Defined from the paper's image-branch formula and
    the reference notebook (Cyang-Zhao/Grad-Eclip, ``grad_eclip_image.ipynb``); unlike that
    notebook, which re-runs the last block as single-head attention, the model's own heads
    compute the score here, so the map explains the model's own similarity.
    """
    blocks = vit_blocks(visual, "Grad-ECLIP")
    if getattr(visual, "pool_type", "tok") != "tok":
        raise UnsupportedModelError("Grad-ECLIP explains a ViT's class token; this tower has none")
    with torch.no_grad():
        x, grid = vit_embed(visual, pixels[:1])
        x = run_blocks(visual, blocks[:-1], x)
        block = blocks[-1]
        q, k, v, scale = qkv_heads(block, x)
        mixed = merge_heads(attention_weights("qk", q, k, scale) @ v)  # (1, T, C)
    with torch.enable_grad():
        leaf = mixed.expand(len(text), -1, -1).clone().requires_grad_(True)
        out = x + block.ls_1(block.attn.out_proj(leaf))
        out = out + block.ls_2(block.mlp(block.ln_2(out)))
        embedding = vit_projection(visual)(vit_global_token(visual, out))[:, 0]
        (grad,) = torch.autograd.grad((embedding * text.to(embedding)).sum(), leaf)
    with torch.no_grad():
        q, k, v = (merge_heads(t)[0] for t in (q, k, v))
        relevance = _eclip_map(grad[:, 0].to(v), q[0], k[1:], v[1:])
        return relevance.float(), embedding[:1].detach().float(), grid


def grad_eclip_resnet(visual: nn.Module, pixels: torch.Tensor, text: torch.Tensor) -> Relevance:
    """Grad-ECLIP on a ModifiedResNet's attention pool, the tower's last attention layer: the
    same formula with the pool's mean-token query as the class query and its positions as the
    patches (``w`` is the gradient at the pooled output before ``c_proj``). An application of the
    paper's formula to the ResNet pool; the paper itself shows ViTs."""
    pool = visual.attnpool
    with torch.no_grad():
        features, grid = resnet_features(visual, pixels[:1])
        x = resnet_pool_inputs(visual, features, grid)
        q, k, v = pool.q_proj(x), pool.k_proj(x), pool.v_proj(x)
        heads = pool.num_heads
        scale = (x.shape[-1] // heads) ** -0.5
        weights = attention_weights("qk", split_heads(q[:, :1], heads), split_heads(k, heads), scale)
        pooled = merge_heads(weights @ split_heads(v, heads))[:, 0]  # (1, C)
    with torch.enable_grad():
        leaf = pooled.expand(len(text), -1).clone().requires_grad_(True)
        embedding = unit_norm(pool.c_proj(leaf))
        (grad,) = torch.autograd.grad((embedding * text.to(embedding)).sum(), leaf)
    with torch.no_grad():
        relevance = _eclip_map(grad.to(v), q[0, 0], k[0, 1:], v[0, 1:])
        return relevance.float(), embedding[:1].detach().float(), grid


def legrad_vit(visual: nn.Module, pixels: torch.Tensor, text: torch.Tensor, *, depth: int = LEGRAD_DEPTH) -> Relevance:
    """LeGrad (Bousselham et al., 2024) for a ViT: the sum over the last ``depth`` blocks of the
    positive gradient of each label's score with respect to that block's attention maps.

    For block ``b``, the score is ``cos(proj(ln_post(mean of b's output tokens)), text)``: the
    block's output read as if it were the last (mean over all tokens, class token included, then
    the final norm and projection). Its gradient with respect to ``b``'s attention probabilities
    (heads x queries x keys) is clamped at 0 and averaged over heads and over query rows; the key
    column of each patch is its relevance. Why: the gradient on an attention weight says how
    much routing more of that token into the representation would raise the label's score, and
    reading every one of the last layers through the final projection catches where the
    feature forms. Facts from the reference (WalBouss/LeGrad, ``legrad/wrapper.py``,
    ``compute_legrad_clip``, default ``layer_index=-2``: the last two blocks); its final min-max
    is left to the map scale.
    """
    blocks = vit_blocks(visual, "LeGrad")
    depth = max(1, min(int(depth), len(blocks)))
    with torch.no_grad():
        x, grid = vit_embed(visual, pixels[:1])
        x = run_blocks(visual, blocks[: len(blocks) - depth], x)
    x = x.expand(len(text), -1, -1)
    project = vit_projection(visual)
    relevance = 0
    for block in blocks[len(blocks) - depth :]:
        with torch.enable_grad():
            q, k, v, scale = qkv_heads(block, x)
            weights = attention_weights("qk", q, k, scale).detach().requires_grad_(True)
            out = x + block.ls_1(block.attn.out_proj(merge_heads(weights @ v)))
            out = out + block.ls_2(block.mlp(block.ln_2(out)))
            embedding = project(out.mean(dim=1))
            (grad,) = torch.autograd.grad((embedding * text.to(embedding)).sum(), weights)
        relevance = relevance + grad.clamp(min=0).mean(dim=1).mean(dim=1)[:, 1:].float()
        x = out.detach()
    with torch.no_grad():  # the blocks ran unmodified: the last output is the model's own
        image = project(vit_global_token(visual, x[:1]))[:, 0]
    return relevance, image.float(), grid


def legrad_resnet(visual: nn.Module, pixels: torch.Tensor, text: torch.Tensor) -> Relevance:
    """LeGrad on a ModifiedResNet's attention pool: the positive gradient of each label's score
    with respect to the pool's attention probabilities (its one query over the positions),
    averaged over heads. This is how the reference treats towers whose last step is an attention
    pool (its SigLIP and CoCa paths: a single layer, the pooled query's row), without the
    SigLIP-only correction for an empty prompt."""
    pool = visual.attnpool
    heads = pool.num_heads
    with torch.no_grad():
        features, grid = resnet_features(visual, pixels[:1])
        x = resnet_pool_inputs(visual, features, grid)
        q = split_heads(pool.q_proj(x[:, :1]), heads)
        k, v = split_heads(pool.k_proj(x), heads), split_heads(pool.v_proj(x), heads)
        weights = attention_weights("qk", q, k, (x.shape[-1] // heads) ** -0.5)  # (1, heads, 1, T)
    with torch.enable_grad():
        leaf = weights.expand(len(text), -1, -1, -1).clone().requires_grad_(True)
        embedding = unit_norm(pool.c_proj(merge_heads(leaf @ v)[:, 0]))
        (grad,) = torch.autograd.grad((embedding * text.to(embedding)).sum(), leaf)
    relevance = grad.clamp(min=0).mean(dim=1)[:, 0, 1:].float()
    return relevance, embedding[:1].detach().float(), grid
