"""Images made by the model: class images (Simonyan et al., 2014) and DeepDream with octaves.

Both reuse the feature-visualization engine (:mod:`clip_widgets.featvis`): a class image
ascends a text class's CLIP score from a random natural-spectrum image (or, the 2014 way, from
pixel noise with an L2 penalty); DeepDream starts from a real
image and ascends a layer's (or a unit's) activation, octave by octave from coarse to fine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .featvis import objectives as obj
from .featvis import render
from .featvis.param import FixedImage, image
from .featvis.render import RenderResult, evaluate
from .featvis.transform import crop_transforms, jitter, random_dihedral
from .images import load_image

CLASS_IMAGE_CROP = 0.7
"""The smallest random crop a class image is seen through, as a share of its side. Under MACO's
0.4, where a crop can hold a fraction of the silhouette, every embedded model read its own class
images less often and the ViTs read the ResNets' less (README, three seeds)."""

CLASS_IMAGE_VIEWS = {"ViT": 4}
"""Random draws a class image's every step averages over, by image tower (1 for others). A
ViT's class images drawn from four draws a step were read by the ResNets far more often (0.83
and 0.70 against 0.67 and 0.53, two seeds) and by itself too; a ResNet's were read less often by
the ViTs (0.67 against 0.87), so ResNets keep one (README)."""

CLASS_IMAGE_RESTARTS = 2
"""Optimizations a class image is the best of (by its plain score), at that many times the time.
With two (seeds 0 and 1) ``world-vit`` and ``world-rn`` each read their own 30 class images at
1.00 and each other's at 0.80 and 0.83; one optimization from seed 0 gave 1.00 and 0.90, 0.83 and
0.87, and from seed 1 ``world-vit`` read its own at 0.80 (README): picking mostly removes the
images a model misdraws."""


def class_image(
    session: Any,
    prompt: str | Sequence[str],
    *,
    kind: str = "transparent",
    turns: bool = True,
    l2: float | None = None,
    steps: int = 256,
    views: int | None = None,
    restarts: int = CLASS_IMAGE_RESTARTS,
    lr: float | None = None,
    size: int | None = None,
    templates: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = True,
    param_kw: Mapping[str, Any] | None = None,
    **render_kw: Any,
) -> RenderResult:
    """One image per prompt that maximizes the prompt's CLIP score.

    ``kind`` is a parameterization of :func:`~.featvis.param.image`. ``"transparent"`` (default)
    optimizes the phase of a natural spectrum and a mean colour (MACO) with a sharp-edged alpha
    channel, seen over random backgrounds under random crops (no smaller than
    :data:`CLASS_IMAGE_CROP`) and noise, opacity at a cost: the class is drawn as a silhouette
    on an empty ground, which other models read far more often than a frame filled with texture
    (README). With ``turns`` (default) each step also sees the picture at a random quarter turn,
    mirrored or not: the world's shapes lie at any angle, and what the ResNets drew then read to
    the ViTs far more often (README; it takes the 256 steps, at 128 the gain is small). Pass
    ``turns=False`` for classes that have an up, such as photographs of animals. ``views``:
    random draws averaged per step (default :data:`CLASS_IMAGE_VIEWS` for the model's image
    tower: 4 on a ViT, 1 otherwise; each costs a pass). ``restarts``
    (default :data:`CLASS_IMAGE_RESTARTS`, 2): optimizations from seeds ``seed`` to ``seed +
    restarts - 1``, keeping for each prompt the image whose plain score (the prompt's cosine, no
    transforms) is highest. On ``world-rn`` two raised how often it read its own from 0.94 to 0.99
    on average (README), at twice the time; ``restarts=1`` for a quicker draft.
    ``"phase"`` is the same without the alpha channel, under MACO's crops. ``"pixel"`` is
    Simonyan et al. (2014): pixels from faint noise, a few pixels of jitter, and ``l2`` (default
    1.0 there, 0 otherwise) times the pixels' mean squared distance from grey subtracted from the
    score. ``param_kw`` goes to the parameterization (for example
    ``{"alpha_sharpness": 1.0}`` for a soft alpha); other keywords go to :func:`~.featvis.render.render`."""
    if isinstance(restarts, bool) or not isinstance(restarts, (int, np.integer)):
        raise TypeError(f"restarts is a whole number of optimizations, got {restarts!r}")
    if restarts < 1:
        raise ValueError(f"restarts must be at least 1, got {restarts}")
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    side = int(size or session.image_size[0])
    objective = score = obj.text_objective(session, prompts, templates=templates)
    simonyan = kind == "pixel"
    if l2 is None:
        l2 = 1.0 if simonyan else 0.0
    if l2:
        objective = objective + l2 * obj.l2()
    if simonyan:
        render_kw.setdefault("transforms", [jitter(max(1, side // 32))])
    elif kind == "transparent":
        turned = [random_dihedral()] if turns else []
        render_kw.setdefault("transforms", [*crop_transforms(CLASS_IMAGE_CROP), *turned])
    if views is None:
        views = CLASS_IMAGE_VIEWS.get(session.architecture, 1)
    results = []
    for start in range(seed, seed + restarts):
        param = image(len(prompts), side, kind=kind, seed=torch.Generator().manual_seed(start), **(param_kw or {}))
        results.append(render(session, objective, param=param, steps=steps, views=views, lr=lr, seed=start,
                              progress=progress, **render_kw))  # fmt: skip
        if results[-1].interrupted:
            break
    if len(results) == 1:
        return results[0]
    return _keep_best(results, np.stack([evaluate(session, score, r.images) for r in results]))


def _keep_best(results: list[RenderResult], achieved: np.ndarray) -> RenderResult:
    """Image by image, the result whose ``achieved`` score (``(len(results), N)``) is highest."""
    best, rows = achieved.argmax(0), np.arange(achieved.shape[1])

    def pick(arrays: list[np.ndarray]) -> np.ndarray:
        return np.stack(arrays)[best, rows]

    history = [pick([r.history[t] for r in results]) for t in range(min(len(r.history) for r in results))]
    importance = None if results[0].importance is None else pick([r.importance for r in results])
    return RenderResult(
        images=pick([r.images for r in results]), scores=pick([r.scores for r in results]), history=history,
        steps=min(r.steps for r in results), interrupted=any(r.interrupted for r in results), importance=importance,
    )  # fmt: skip


def _to_tensor(image: Any) -> torch.Tensor:
    array = np.asarray(load_image(image).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def deepdream(
    session: Any,
    image: Any,
    layer: str,
    *,
    unit: int | None = None,
    octaves: int = 3,
    octave_scale: float = 1.4,
    steps: int = 24,
    lr: float = 0.02,
    seed: int = 0,
    progress: bool = True,
) -> np.ndarray:
    """DeepDream ``image``: ascend ``layer``'s mean squared activation (or ``unit``'s channel) at
    ``octaves`` scales, smallest first; what each octave adds carries up to the next. Returns
    ``(H, W, 3)`` uint8 at the image's size."""
    objective = obj.deepdream(layer) if unit is None else obj.channel(layer, unit)
    original = _to_tensor(image)
    height, width = original.shape[-2:]
    sizes = [(max(8, round(height / octave_scale**k)), max(8, round(width / octave_scale**k)))
             for k in reversed(range(octaves))]  # fmt: skip
    detail = torch.zeros(1, 3, *sizes[0])
    result = original
    for size in sizes:
        base = F.interpolate(original, size=size, mode="bilinear", align_corners=False, antialias=True)
        detail = F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
        start = (base + detail).clamp(0, 1)
        param = FixedImage(start)
        dreamed = render(session, objective, param=param, steps=steps, lr=lr, seed=seed, progress=progress,
                         transforms=[jitter(max(1, min(size) // 32))])  # fmt: skip
        result = torch.from_numpy(dreamed.images[0]).permute(2, 0, 1)[None].float() / 255.0
        detail = result - base
    return (result[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
