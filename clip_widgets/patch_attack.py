"""Patch attacks from a class activation atlas (Carter et al., Distill 2019, "Activation Atlas"):
the atlas icon that pushes class B most, pasted into images of class A at a corner, against a
uniform-noise patch of the same size.

    from clip_widgets.patch_attack import class_patch, paste_patch, patch_attack
    patch = class_patch(atlas, "a red star")  # the icon of the cell whose activations push it most
    patched = paste_patch(photo, patch.image, scale=0.3, corner="top-left")
    report = patch_attack(session, "circles/", classes, "a red star", patch.image, labels="a blue circle")
    report.target_rate(), report.target_rate("noise")  # per scale: the share moved to the target
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .errors import ClipWidgetsError
from .images import _expand, load_image, skip_warning
from .texts import template_list, text_list
from .typographic import class_probabilities

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass
class ClassPatch:
    """An atlas icon chosen as a patch for ``class_name``: the ``image`` (S, S, 3) uint8 of
    ``cell`` (row, col) in the ``grid_size`` grid, whose ``count`` activations push the class by
    ``score`` on average (mean attribution to its zero-shot logit)."""

    class_name: str
    image: np.ndarray = field(repr=False)
    grid_size: int
    cell: tuple[int, int]
    score: float
    count: int


def class_patch(atlas: Any, class_name: str, *, grid_size: int | None = None, min_count: int = 1,
                relative: bool = False) -> ClassPatch:  # fmt: skip
    """The icon of the atlas cell whose activations push ``class_name`` most on average (among
    cells holding at least ``min_count`` activations), in the ``grid_size`` grid (default: the
    atlas's coarsest, whose cells average the most activations): the article's choice of patch.
    ``relative``: push it most beyond the mean push to all classes (a zero-shot softmax sees only
    differences, and a cell that raises every class's logit alike is no evidence for any)."""
    if not atlas.cells:
        raise ClipWidgetsError("this atlas has no class attributions; build it with classes=[...]")
    if class_name not in atlas.classes:
        raise KeyError(f"unknown class {class_name!r}; this atlas has {atlas.classes}")
    size = int(grid_size) if grid_size is not None else min(atlas.sizes)
    grid = atlas.grid(size)
    scores = atlas.cells[size][..., atlas.classes.index(class_name)]
    if relative:
        scores = scores - atlas.cells[size].mean(-1)
    scores = np.where(grid.counts >= max(1, min_count), scores, -np.inf)
    if not np.isfinite(scores).any():
        raise ClipWidgetsError(f"no cell of the {size} x {size} grid holds {min_count} activations")
    row, col = (int(v) for v in np.unravel_index(np.argmax(scores), scores.shape))
    return ClassPatch(class_name, atlas.icons[size][row, col].copy(), size, (row, col), float(scores[row, col]),
                      int(grid.counts[row, col]))  # fmt: skip


def class_patches(atlas: Any, classes: Iterable[str] | None = None, **kw: Any) -> dict[str, ClassPatch]:
    """:func:`class_patch` for each of ``classes`` (default: all the atlas's classes)."""
    return {name: class_patch(atlas, name, **kw) for name in (atlas.classes if classes is None else classes)}


def patch_box(width: int, height: int, scale: float, corner: str) -> tuple[int, int, int]:
    """``(left, top, side)`` of a square patch ``scale`` times the shorter side in ``corner``."""
    if corner not in CORNERS:
        raise ValueError(f"unknown corner {corner!r}; choose one of {list(CORNERS)}")
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], a share of the image's shorter side; got {scale}")
    side = max(1, round(scale * min(width, height)))
    return (width - side if "right" in corner else 0), (height - side if "bottom" in corner else 0), side


def paste_patch(image: Any, patch: Any, *, scale: float = 0.3, corner: str = "top-left") -> Image.Image:
    """A copy of ``image`` with ``patch`` (any image; resized, Lanczos) pasted as a square of
    ``scale`` times the image's shorter side, flush with ``corner`` (one of :data:`CORNERS`)."""
    picture = load_image(image).copy()
    left, top, side = patch_box(*picture.size, scale, corner)
    tile = load_image(patch)
    if tile.size != (side, side):
        tile = tile.resize((side, side), Image.Resampling.LANCZOS)
    picture.paste(tile, (left, top))
    return picture


def noise_patch(side: int, seed: Any = 0) -> np.ndarray:
    """A ``(side, side, 3)`` uint8 patch of uniform noise (``seed``: anything numpy seeds with)."""
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


@dataclass
class PatchReport:
    """What pasting a patch did, per scale, per image, per corner tried. ``clean_probs`` is
    ``(N, C)``; ``patch_probs`` and ``noise_probs`` (None without the control) ``(scales, N,
    corners, C)``; ``labels`` the true class index of each image (-1: not given); images that
    could not be read are in ``skipped``."""

    target: str
    classes: list[str]
    scales: list[float]
    corners: list[str]
    sources: list[str] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    clean_probs: np.ndarray | None = None
    patch_probs: np.ndarray | None = None
    noise_probs: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def clean(self) -> np.ndarray:
        """The clean predictions, ``(N,)`` class indices."""
        return np.zeros(0, np.int64) if self.clean_probs is None else self.clean_probs.argmax(1)

    @property
    def eligible(self) -> np.ndarray:
        """``(N,)`` bool: images classified correctly before (when labels are given) and not as the target."""
        clean = self.clean
        return ((self.labels < 0) | (clean == self.labels)) & (clean != self.classes.index(self.target))

    def _probs(self, kind: str) -> np.ndarray:
        probs = {"patch": self.patch_probs, "noise": self.noise_probs}.get(kind, "unknown")
        if isinstance(probs, str):
            raise ValueError(f"unknown kind {kind!r}; choose 'patch' or 'noise'")
        if probs is None:
            raise ValueError(f"the report has no {kind} results")
        return probs

    def best_corner(self, kind: str = "patch") -> np.ndarray:
        """``(scales, N)``: the index into ``corners`` that gives the target its highest probability."""
        return self._probs(kind)[..., self.classes.index(self.target)].argmax(-1)

    def predictions(self, kind: str = "patch") -> np.ndarray:
        """``(scales, N)``: the predicted class with the patch at its best corner."""
        probs = self._probs(kind)
        best = self.best_corner(kind)[..., None, None]
        return np.take_along_axis(probs, best, axis=2)[:, :, 0].argmax(-1)

    def target_rate(self, kind: str = "patch") -> np.ndarray:
        """``(scales,)``: the share of eligible images whose prediction moves to the target."""
        return self.share(self.predictions(kind) == self.classes.index(self.target))

    def flip_rate(self, kind: str = "patch") -> np.ndarray:
        """``(scales,)``: the share of eligible images whose prediction changes at all."""
        return self.share(self.predictions(kind) != self.clean[None])

    def share(self, hits: np.ndarray) -> np.ndarray:
        """``(scales,)``: the share of eligible images where ``hits`` ``(scales, N)`` holds (NaN: none eligible)."""
        eligible = self.eligible
        if not eligible.any():
            return np.full(len(self.scales), np.nan)
        return hits[:, eligible].mean(1)


def patch_attack(
    session: Any,
    sources: Iterable[Any] | str,
    classes: Sequence[str],
    target: str,
    patch: Any,
    *,
    scales: Sequence[float] = (0.2, 0.3, 0.4),
    corners: str | Sequence[str] = "best",
    labels: str | Sequence[str] | None = None,
    control: str | None = "noise",
    templates: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
) -> PatchReport:
    """Paste ``patch`` into every image of ``sources`` (a folder, paths or images) at each of
    ``scales`` (shares of the shorter side) and each of ``corners`` (``"best"``: all four, the
    best one per image being the one that gives ``target`` its highest probability), and classify.
    ``control="noise"`` does the same with a uniform-noise patch of the same size (one per image
    and scale, seeded by ``seed``), to tell the patch's content from covering a corner.
    ``labels`` (one class for all images, or one per source) limits the rates to images
    classified correctly before. Unreadable images are named in a warning and in ``skipped``."""
    classes = text_list(classes, "classes")
    templates = template_list(templates)
    corners = list(CORNERS) if corners == "best" else text_list(corners, "corners")
    for name, role in ((target, "target"), *((n, "label") for n in ([] if labels is None else text_list(labels)))):
        if name not in classes:
            raise ValueError(f"{role} {name!r} is not among the classes {classes}")
    if control not in (None, "noise"):
        raise ValueError(f"unknown control {control!r}; choose 'noise' or None")
    patch_image = load_image(patch)
    for scale in scales:
        for corner in corners:
            patch_box(64, 64, scale, corner)  # bad options fail here, not once per image
    items = list(_expand(sources))
    per_source = [labels] * len(items) if isinstance(labels, str) or labels is None else list(labels)
    if len(per_source) != len(items):
        raise ValueError(f"{len(per_source)} labels for {len(items)} images")
    report = PatchReport(target, classes, [float(s) for s in scales], corners)
    kinds = ["patch"] + (["noise"] if control else [])
    names: list[str] = []
    pixels: list[torch.Tensor] = []
    probs: list[np.ndarray] = []
    label_ids: list[int] = []
    per_image = 1 + len(kinds) * len(scales) * len(corners)

    def flush() -> None:
        if names:
            features = session.encode_image(torch.cat(pixels))
            probs.append(class_probabilities(session, features, classes, templates).reshape(len(names), per_image, -1))
            report.sources.extend(names)
            names.clear()
            pixels.clear()

    with tqdm(desc=f"patch attack towards {target!r}", unit="img", disable=not progress) as bar:
        for index, (source, label) in enumerate(zip(items, per_source, strict=True)):
            name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<item {index}>"
            try:  # everything that concerns this image alone; a failure costs only this image
                picture = load_image(source)
                variants = [picture]
                for kind in kinds:
                    for s, scale in enumerate(scales):
                        side = patch_box(*picture.size, scale, corners[0])[2]
                        tile = patch_image if kind == "patch" else noise_patch(side, (seed, index, s))
                        variants += [paste_patch(picture, tile, scale=scale, corner=c) for c in corners]
                batch = session.preprocess(variants)
            except Exception as exc:  # noqa: BLE001 - named in the warning and the report
                skip_warning(name, exc)
                report.skipped.append(name)
                continue
            names.append(name)
            pixels.append(batch)
            label_ids.append(-1 if label is None else classes.index(label))
            bar.update(1)
            if len(names) >= batch_size:
                flush()
        flush()
    if probs:
        every = np.concatenate(probs)  # (N, 1 + kinds * scales * corners, C)
        n, c = len(every), len(classes)
        report.clean_probs = every[:, 0]
        grouped = every[:, 1:].reshape(n, len(kinds), len(scales), len(corners), c).transpose(1, 2, 0, 3, 4)
        report.patch_probs = grouped[0]
        report.noise_probs = grouped[1] if control else None
    report.labels = np.asarray(label_ids, np.int64)
    return report
