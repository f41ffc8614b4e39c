"""Objectives: what a feature visualization maximizes, one score per image in the batch.

An objective reads the activations captured in one forward pass (a dict from layer name to
tensor, plus ``"embedding"`` for the image embedding) and returns a score of shape ``(N,)``:
image ``i`` is optimized for its own score, so one batch can visualize many units at once
(``channel("blocks.3", range(64))`` gives image ``i`` unit ``i``). Objectives compose::

    channel("blocks.5", 7) + 0.5 * text("a red circle") - 1e-2 * diversity("blocks.2")

Activation layouts: ResNet feature maps are ``(N, C, H, W)``; ViT token tensors are
``(N, tokens, D)`` with the class token first. For tokens, ``where`` says which tokens count:
``"patches"`` (the mean over patch tokens, the default), ``"class"`` (the class token), ``"all"``,
or a token index. Vectors (``(N, D)``, e.g. an attention pool's output) have no positions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

Activations = dict[str, torch.Tensor]
Where = str | int | tuple[int, int]


class Objective:
    """A per-image score ``fn(activations) -> (N,)`` that needs the layers in ``layers``."""

    def __init__(self, fn: Callable[[Activations], torch.Tensor], layers: Sequence[str] = (), name: str = "",
                 needs_embedding: bool = False):  # fmt: skip
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.name = name or getattr(fn, "__name__", "objective")
        self.needs_embedding = needs_embedding

    def __call__(self, activations: Activations) -> torch.Tensor:
        return self.fn(activations)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    # -- composition -------------------------------------------------------------------------

    def _combine(self, other: Any, op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], symbol: str):
        if isinstance(other, Objective):
            return Objective(lambda a: op(self(a), other(a)), (*self.layers, *other.layers),
                             f"({self.name} {symbol} {other.name})",
                             self.needs_embedding or other.needs_embedding)  # fmt: skip
        if isinstance(other, (int, float)):
            return Objective(lambda a: op(self(a), torch.as_tensor(float(other))), self.layers,
                             f"({self.name} {symbol} {other:g})", self.needs_embedding)  # fmt: skip
        return NotImplemented

    def __add__(self, other):
        return self._combine(other, torch.add, "+")

    def __sub__(self, other):
        return self._combine(other, torch.sub, "-")

    def __mul__(self, other):
        return self._combine(other, torch.mul, "*")

    def __truediv__(self, other):
        return self._combine(other, torch.div, "/")

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __rsub__(self, other):
        return (-self) + other

    def __neg__(self):
        return Objective(lambda a: -self(a), self.layers, f"-{self.name}", self.needs_embedding)

    @staticmethod
    def sum(objectives: Sequence[Objective]) -> Objective:
        """The sum of several objectives."""
        if not objectives:
            raise ValueError("no objectives to sum")
        total = objectives[0]
        for objective in objectives[1:]:
            total = total + objective
        return total


# -- helpers -----------------------------------------------------------------------------------


def _get(activations: Activations, layer: str) -> torch.Tensor:
    if layer not in activations:
        raise KeyError(f"layer {layer!r} was not captured; captured: {', '.join(activations) or 'none'}")
    return activations[layer]


def _units(unit: int | Sequence[int] | torch.Tensor, n: int, device) -> torch.Tensor:
    """One unit index per image: an int for all, or a sequence of length 1 or ``n``."""
    index = torch.as_tensor(unit if not isinstance(unit, range) else list(unit), device=device).long().reshape(-1)
    if index.numel() == 1:
        return index.expand(n)
    if index.numel() != n:
        raise ValueError(f"{index.numel()} units given for a batch of {n} images; give one per image or one for all")
    return index


def _positions(x: torch.Tensor, where: Where) -> torch.Tensor:
    """Activations as ``(N, positions, units)`` for the positions ``where`` selects."""
    if x.ndim == 4:  # (N, C, H, W) feature map
        if where in ("patches", "all"):
            return x.flatten(2).transpose(1, 2)
        if isinstance(where, tuple):
            y, x_ = where
            return x[:, :, y, x_][:, None, :]
        if where == "center":
            return x[:, :, x.shape[2] // 2, x.shape[3] // 2][:, None, :]
        raise ValueError(f"for a feature map, where is 'all', 'center' or (y, x); got {where!r}")
    if x.ndim == 3:  # (N, tokens, D), class token first
        if where == "patches":
            return x[:, 1:]
        if where == "all":
            return x
        if where == "class":
            return x[:, :1]
        if where == "center":
            side = round((x.shape[1] - 1) ** 0.5)
            return x[:, 1 + (side // 2) * side + side // 2][:, None, :]
        if isinstance(where, int):
            return x[:, where][:, None, :]
        if isinstance(where, tuple):  # (row, column) on the patch grid
            side = round((x.shape[1] - 1) ** 0.5)
            return x[:, 1 + where[0] * side + where[1]][:, None, :]
        raise ValueError(f"for tokens, where is 'patches', 'class', 'all', 'center', a token index or (row, col); "
                         f"got {where!r}")  # fmt: skip
    if x.ndim == 2:  # (N, D): one position
        return x[:, None, :]
    raise ValueError(f"cannot read units from activations of shape {tuple(x.shape)}")


def _unit_dim(x: torch.Tensor) -> int:
    return x.shape[1] if x.ndim == 4 else x.shape[-1]


def _check_unit(x: torch.Tensor, units: torch.Tensor, layer: str) -> None:
    count = _unit_dim(x)
    if units.numel() and (int(units.max()) >= count or int(units.min()) < 0):
        raise IndexError(f"unit {int(units.max())} out of range for layer {layer!r}, which has {count} units")


# -- unit objectives ---------------------------------------------------------------------------


def channel(layer: str, unit: int | Sequence[int], where: Where = "patches") -> Objective:
    """Mean activation of ``unit`` (one per image, or one for all) over the positions ``where``
    selects: all spatial positions of a feature map, the patch tokens of a ViT by default."""

    def score(activations: Activations) -> torch.Tensor:
        x = _get(activations, layer)
        units = _units(unit, len(x), x.device)
        _check_unit(x, units, layer)
        values = _positions(x, "all" if where == "patches" and x.ndim == 4 else where)
        return values.gather(2, units[:, None, None].expand(-1, values.shape[1], 1)).squeeze(2).mean(1)

    return Objective(score, [layer], f"channel({layer}, {_short(unit)})")


def neuron(layer: str, unit: int | Sequence[int], where: Where = "center") -> Objective:
    """Activation of ``unit`` at one position: the centre (default), ``(y, x)`` on a feature map
    or ``(row, col)`` on the patch grid, a token index, or ``"class"`` for the class token."""
    if where in ("patches", "all"):
        raise ValueError("a neuron sits at one position; use channel() for a mean over positions")
    return Objective(channel(layer, unit, where).fn, [layer], f"neuron({layer}, {_short(unit)}, {where})")


def _as_directions(vector: torch.Tensor | Sequence[float], n: int, device, dtype) -> torch.Tensor:
    v = torch.as_tensor(vector, device=device, dtype=dtype)
    if v.ndim == 1:
        v = v[None].expand(n, -1)
    if v.shape[0] != n:
        raise ValueError(f"{v.shape[0]} directions for a batch of {n} images; give one per image or one for all")
    return v


def direction(layer: str, vector: torch.Tensor | Sequence[float], where: Where = "patches") -> Objective:
    """Mean over positions of the activation's dot product with ``vector`` (one ``(D,)`` for all
    images, or ``(N, D)``, one per image)."""

    def score(activations: Activations) -> torch.Tensor:
        x = _get(activations, layer)
        values = _positions(x, "all" if where == "patches" and x.ndim == 4 else where)
        v = _as_directions(vector, len(x), x.device, values.dtype)
        return torch.einsum("npd,nd->np", values, v).mean(1)

    return Objective(score, [layer], f"direction({layer})")


# The cosine power at which icons (atlas cells, activation-grid positions) draw a direction: the
# cells' means share a large common part, and a low power lets every icon draw it
# (bench/eval_atlas_icons.py: power 4 against 1 finds its cell 0.12 against 0.02 on
# world-rn-robust layer3)
ICON_POWER = 4.0


def direction_cossim(layer: str, vector: torch.Tensor | Sequence[float], power: float = 1.0,
                     where: Where = "patches", whitening: torch.Tensor | None = None) -> Objective:  # fmt: skip
    """The activation atlas objective: dot(a, v / |v|) * max(cos(a, v), 0.1)^power, averaged over
    positions. ``power`` > 0 rewards the direction itself over merely large activations. With
    ``whitening`` (a ``(D, D)`` matrix, e.g. the inverse covariance), ``v`` is first mapped through
    it, so the objective is taken in whitened space."""

    def score(activations: Activations) -> torch.Tensor:
        x = _get(activations, layer)
        values = _positions(x, "all" if where == "patches" and x.ndim == 4 else where)
        v = _as_directions(vector, len(x), x.device, values.dtype)
        if whitening is not None:
            v = v @ torch.as_tensor(whitening, device=x.device, dtype=values.dtype).T
        v = F.normalize(v, dim=-1)
        dot = torch.einsum("npd,nd->np", values, v)
        cos = dot / values.norm(dim=-1).clamp(min=1e-8)
        return (dot * cos.clamp(min=0.1) ** power).mean(1)

    return Objective(score, [layer], f"direction_cossim({layer}, power={power:g})")


def deepdream(layer: str, where: Where = "all") -> Objective:
    """DeepDream: the mean squared activation of a whole layer."""

    def score(activations: Activations) -> torch.Tensor:
        x = _get(activations, layer)
        values = _positions(x, where)
        return values.pow(2).mean(dim=(1, 2))

    return Objective(score, [layer], f"deepdream({layer})")


def text(embedding: torch.Tensor, name: str = "text") -> Objective:
    """CLIP alignment: cosine similarity between the image embedding and a text embedding
    (``(D,)`` for all images or ``(N, D)``; see :func:`text_objective` for a prompt)."""

    def score(activations: Activations) -> torch.Tensor:
        image = _get(activations, "embedding")
        t = _as_directions(embedding, len(image), image.device, image.dtype)
        return F.cosine_similarity(image, t, dim=-1)

    return Objective(score, [], name, needs_embedding=True)


def text_objective(session: Any, prompt: str | Sequence[str], templates: Sequence[str] | None = None) -> Objective:
    """:func:`text` for a prompt (or one per image), embedded by a :class:`ModelSession`."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    embeddings = session.encode_text(prompts, templates=templates)
    return text(embeddings[0] if isinstance(prompt, str) else embeddings, name=f"text({_short(prompt)})")


def l2(center: float = 0.5) -> Objective:
    """Minus the mean squared distance of the pixels from ``center`` (images in [0, 1]): add it
    with a weight, ``text_objective(...) + 0.5 * l2()``, for the L2-regularized class images of
    Simonyan et al. (2014)."""

    def score(activations: Activations) -> torch.Tensor:
        pixels = _get(activations, "input")
        return -(pixels - center).pow(2).flatten(1).mean(1)

    return Objective(score, [], f"l2({center:g})")


def diversity(layer: str) -> Objective:
    """Pushes the images of a batch apart (lucid's diversity term): minus each image's mean
    cosine similarity to the others, on the Gram matrices of ``layer``'s activations. Add it
    with a small weight to get different facets of one unit."""

    def score(activations: Activations) -> torch.Tensor:
        x = _get(activations, layer)
        n = len(x)
        if n < 2:
            return torch.zeros(n, device=x.device, dtype=x.dtype)
        values = _positions(x, "all")  # (N, P, D)
        gram = torch.einsum("npd,npe->nde", values, values) / values.shape[1]
        flat = F.normalize(gram.flatten(1), dim=-1)
        similarity = flat @ flat.T
        off_diagonal = similarity.sum(1) - similarity.diagonal()
        return -off_diagonal / (n - 1)

    return Objective(score, [layer], f"diversity({layer})")


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple, range)) and len(value) > 3:
        return f"[{value[0]}, ..., {value[-1]}] ({len(value)})"
    return repr(value) if isinstance(value, str) else str(value)
