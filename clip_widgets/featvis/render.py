"""The render loop: gradient ascent on a parameterized image batch for an objective.

Each step draws the images, applies random transforms, resizes them to the model's input size,
normalizes them with the model's own mean and std (not ImageNet's), runs the image tower with
hooks on the layers the objective reads, and ascends the objective's per-image scores. The
forward pass stops at the deepest layer needed unless the objective reads the embedding.

``render`` shows progress (tqdm), streams frames to a callback, and on Ctrl-C (or a callback
raising ``KeyboardInterrupt``) returns the images it has, marked ``interrupted``.
``render_units`` visualizes every unit of a layer, a chunk of units per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .objectives import Objective, channel
from .param import ImageParam, PhaseImage, image
from .transform import Transform, crop_transforms

FrameCallback = Callable[[int, np.ndarray, np.ndarray], None]
"""``callback(step, images uint8 (N, H, W, 3), scores (N,))``."""


@dataclass
class RenderResult:
    """Images ``(N, H, W, 3)`` uint8, each image's final score, and the score history."""

    images: np.ndarray
    scores: np.ndarray
    history: list[np.ndarray] = field(repr=False)
    steps: int
    interrupted: bool = False
    importance: np.ndarray | None = field(default=None, repr=False)
    """``(N, H, W)`` in [0, 1]: how much each pixel moved the objective over the optimization
    (the magnitude of its gradient, summed over steps and channels, smoothed, and scaled so each
    image's 99th percentile is 1). MACO's transparency map: where the feature is."""

    @property
    def pixels(self) -> torch.Tensor:
        """The images as float ``(N, 3, H, W)`` in [0, 1]."""
        return torch.from_numpy(self.images).permute(0, 3, 1, 2).float() / 255.0

    def composite(self, background: float = 0.5) -> np.ndarray:
        """The images faded into a flat ``background`` grey where they did not matter to the
        objective (alpha = :attr:`importance`), so the feature stands out of the texture the
        optimizer left around it. ``(N, H, W, 3)`` uint8; the images themselves without a map."""
        if self.importance is None:
            return self.images
        alpha = self.importance[..., None]
        return np.round(self.images * alpha + 255 * background * (1 - alpha)).clip(0, 255).astype(np.uint8)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] to (N, H, W, 3) uint8."""
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


_FREEZE_LOCK = threading.Lock()
_FROZEN: dict[int, tuple[int, bool, list[tuple[torch.nn.Parameter, bool]]]] = {}


@contextmanager
def _frozen(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration; restored afterwards. Counted per
    model, so overlapping renders (a widget's background thread and the notebook's) restore the
    state from before the first one, not a state another render left frozen."""
    with _FREEZE_LOCK:
        count, was_training, flags = _FROZEN.get(id(model), (0, model.training, []))
        if count == 0:
            flags = [(p, p.requires_grad) for p in model.parameters()]
            model.eval()
            for p, _ in flags:
                p.requires_grad_(False)
        _FROZEN[id(model)] = (count + 1, was_training, flags)
    try:
        yield
    finally:
        with _FREEZE_LOCK:
            count, was_training, flags = _FROZEN.pop(id(model))
            if count > 1:
                _FROZEN[id(model)] = (count - 1, was_training, flags)
            else:
                for p, flag in flags:
                    p.requires_grad_(flag)
                model.train(was_training)


class ActivationReader:
    """Runs a session's image tower on [0, 1] images and returns the activations an objective
    reads (and ``"embedding"`` if it needs it, ``"input"`` always: the images), with gradients."""

    def __init__(self, session: Any, objective: Objective):
        self.session = session
        for name in objective.layers:
            session.layers[name]  # unknown names raise here, listing the valid ones  # noqa: B018
        self.layers = objective.layers
        self.needs_embedding = objective.needs_embedding
        self.mean = torch.tensor(session.mean, device=session.device).view(1, 3, 1, 1)
        self.std = torch.tensor(session.std, device=session.device).view(1, 3, 1, 1)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        size = tuple(self.session.image_size)
        if tuple(images.shape[-2:]) != size:
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        return ((images - self.mean) / self.std).to(self.session.dtype)

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        captured, embedding = self.session.layers.forward(
            self.normalize(images), *self.layers, detach=False, need_output=self.needs_embedding
        )
        out = {name: value.float() for name, value in captured.items()}
        out["input"] = images  # the [0, 1] images themselves, for pixel-space terms such as l2
        if self.needs_embedding:
            out["embedding"] = embedding.float()
        return out


def render(
    session: Any,
    objective: Objective,
    *,
    param: ImageParam | None = None,
    batch: int | None = None,
    size: int | None = None,
    steps: int = 256,
    lr: float | None = None,
    transforms: Sequence[Transform] | None = None,
    views: int = 1,
    seed: int = 0,
    callback: FrameCallback | None = None,
    every: int = 16,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> RenderResult:
    """Optimize images for ``objective`` (see :mod:`clip_widgets.featvis.objectives`).

    ``param`` defaults to a MACO phase image batch (:class:`~.param.PhaseImage`) of ``batch``
    images (default: the number of units the objective names, else 1) at ``size`` px (default:
    the model's input size); ``lr`` to the parameterization's own ``learning_rate``.
    Each step the model sees ``param.draw()`` and the score less ``param.cost(score)`` is ascended
    (a :class:`~.param.TransparentImage` draws over random backgrounds and charges for opacity);
    the images returned are ``param()``.
    ``transforms`` default to :func:`~.transform.crop_transforms` (random crops and noise);
    ``[]`` disables them, :func:`~.transform.standard_transforms` are lucid's. ``views`` is how
    many random draws (background and transforms) each step averages its gradient over, MACO's
    crops per iteration: they go through the model as one batch, so memory and time grow with
    them, and they leave less for the optimizer to win from one lucky draw.
    ``callback`` receives frames every ``every`` steps and at the end; ``should_stop()`` returning
    true ends the loop early like an interrupt. Same seed and inputs, same images.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if views < 1:
        raise ValueError(f"views must be at least 1, got {views}")
    torch.manual_seed(seed)  # seeds anything an objective or model draws at random
    generator = torch.Generator().manual_seed(seed)
    if param is None:
        side = int(size or session.image_size[0])
        param = PhaseImage(batch or 1, side, side, seed=generator)
    param = param.to(session.device)
    transform_list = list(crop_transforms() if transforms is None else transforms)
    reader = ActivationReader(session, objective)
    optimizer = torch.optim.Adam(param.parameters(), lr=param.learning_rate if lr is None else lr)
    history: list[np.ndarray] = []
    scores = np.full(param.batch, np.nan, dtype=np.float32)
    interrupted = False
    done = 0
    framed = -1  # the step of the last frame sent
    bar = tqdm(total=steps, desc=f"render {objective.name}"[:60], unit="step", disable=not progress, leave=False)
    moved = torch.zeros(param.batch, param.height, param.width, device=session.device)
    with _frozen(session.model):
        try:
            for step in range(steps):
                optimizer.zero_grad(set_to_none=True)
                drawn, seen = [], []
                for _ in range(views):
                    images = param.draw(generator)
                    images.retain_grad()
                    drawn.append(images)
                    for t in transform_list:
                        images = t(images, generator)
                    seen.append(images)
                # every view in one pass through the tower; the objective scores each view's slice
                activations = reader(torch.cat(seen))
                per_view = {name: value.split(param.batch) for name, value in activations.items()}
                loss, total = 0.0, torch.zeros(param.batch, device=session.device)
                for view in range(views):
                    score = objective({name: parts[view] for name, parts in per_view.items()})
                    if score.shape != (param.batch,):
                        raise ValueError(
                            f"objective {objective.name} gave scores of shape {tuple(score.shape)}, "
                            f"expected ({param.batch},): one per image"
                        )
                    loss = loss - (score - param.cost(score.detach())).sum()
                    total += score.detach()
                (loss / views).backward()
                for images in drawn:
                    moved += images.grad.detach().abs().sum(1)
                optimizer.step()
                scores = (total / views).cpu().numpy().astype(np.float32)
                history.append(scores)
                done = step + 1
                bar.update(1)
                if callback is not None and every > 0 and done % every == 0 and done < steps:
                    framed = done
                    with torch.no_grad():
                        callback(done, to_uint8(param()), scores)
                if should_stop is not None and should_stop():
                    interrupted = True
                    break
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
    with torch.no_grad():
        final = to_uint8(param())
    if callback is not None and framed != done:
        callback(done, final, scores)
    return RenderResult(images=final, scores=scores, history=history, steps=done, interrupted=interrupted,
                        importance=importance_map(moved) if done else None)  # fmt: skip


def importance_map(moved: torch.Tensor) -> np.ndarray:
    """Accumulated gradient magnitudes ``(N, H, W)`` smoothed over a few pixels and scaled to
    [0, 1] per image (its 99th percentile to 1), so one hot pixel does not dim the rest."""
    side = max(moved.shape[-2:])
    radius = max(1, side // 32)
    smooth = F.avg_pool2d(moved[:, None], 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)[:, 0]
    top = torch.quantile(smooth.flatten(1), 0.99, dim=1).clamp(min=1e-12)
    return (smooth / top[:, None, None]).clamp(0, 1).cpu().numpy().astype(np.float32)


def grid(images: np.ndarray, columns: int | None = None, scale: int = 1, gap: int = 2):
    """``(N, H, W, 3)`` uint8 images side by side as one PIL image (``columns`` per row), each
    enlarged ``scale`` times without smoothing: a quick look in a notebook."""
    from PIL import Image

    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {images.shape}")
    n, height, width, _ = images.shape
    columns = max(1, min(n, columns or n))
    rows = -(-n // columns)
    cell_h, cell_w = height * scale, width * scale
    sheet = Image.new("RGB", (columns * (cell_w + gap) - gap, rows * (cell_h + gap) - gap), (255, 255, 255))
    for i, pixels in enumerate(images):
        tile = Image.fromarray(pixels).resize((cell_w, cell_h), Image.Resampling.NEAREST)
        sheet.paste(tile, ((i % columns) * (cell_w + gap), (i // columns) * (cell_h + gap)))
    return sheet


def evaluate(session: Any, objective: Objective, images: torch.Tensor | np.ndarray) -> np.ndarray:
    """The objective's per-image scores on fixed images (``(N, H, W, 3)`` uint8 or ``(N, 3, H, W)``
    in [0, 1]), without transforms: the yardstick for what a render achieved."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    reader = ActivationReader(session, objective)
    with torch.no_grad():
        return objective(reader(images.to(session.device).float())).cpu().numpy()


def render_units(
    session: Any,
    layer: str,
    units: Sequence[int] | None = None,
    *,
    chunk: int = 32,
    objective: Callable[[str, Sequence[int]], Objective] | None = None,
    param: Callable[[int], ImageParam] | None = None,
    progress: bool = True,
    **kw: Any,
) -> RenderResult:
    """Visualize many units of ``layer`` (default: all), ``chunk`` units per optimized batch;
    image ``i`` of the result shows ``units[i]``. ``objective(layer, units)`` builds the
    per-chunk objective (default: :func:`channel`), ``param(batch)`` its parameterization
    (default: :func:`render`'s). On interrupt, returns the units finished so far."""
    if isinstance(param, ImageParam):
        raise TypeError("render_units' param makes each chunk's parameterization: pass a function of the batch size")
    info = session.layers[layer]
    units = list(range(info.units) if units is None else units)
    if not units:
        raise ValueError("no units to render")
    make = objective or channel
    images, scores, importance, history, steps, interrupted = [], [], [], [], 0, False
    with tqdm(total=len(units), desc=f"units of {layer}", unit="unit", disable=not progress) as bar:
        for start in range(0, len(units), chunk):
            part = units[start : start + chunk]
            chosen = None if param is None else param(len(part))
            result = render(session, make(layer, part), param=chosen, batch=len(part), progress=False, **kw)
            images.append(result.images)  # an interrupted chunk still returns its images so far
            scores.append(result.scores)
            importance.append(result.importance)
            history += result.history
            steps = max(steps, result.steps)
            bar.update(len(part))
            if result.interrupted:
                interrupted = True
                break
    return RenderResult(np.concatenate(images), np.concatenate(scores), history, steps, interrupted,
                        np.concatenate(importance))  # fmt: skip


__all__ = ["RenderResult", "evaluate", "grid", "image", "render", "render_units", "to_uint8"]
