"""Dataset examples: for every unit of some layers, the images that excite it most (and least).

:func:`collect_examples` streams a folder or iterable of images through the image tower once and
keeps, per unit, the top-k images by the unit's maximum over positions (and the bottom-k by its
minimum), with the position where that extreme occurred. Memory is bounded by units x k, never by
the number of images. Everything lives in an on-disk :class:`ExampleStore`:

* ``sources.jsonl``: one line per item of the stream, in order: its source, or why it was skipped;
* ``state.npz``: the running top/bottom tables and the count of items they include, replaced
  atomically at each checkpoint.

A killed job resumes from the last checkpoint: the sources file is cut back to the count the
tables include, and the stream skips that many items, so nothing is lost or counted twice.
Unreadable images are named (in a warning and in the store) and skipped.
:func:`example_views` turns a unit's examples into pixels ready to draw: whole images, crops
around the extreme and the unit's heat over both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .collection import Job, collect_with, trim_log, write_log
from .errors import ClipWidgetsError
from .images import load_image

STATE_FILE = "state.npz"
SOURCES_FILE = "sources.jsonl"
META_FILE = "meta.json"
SHARDS_DIR = "shards"
"""Where the Ray engine keeps finished shards until they are merged in order."""
EXTREMES = ("max", "argmax", "min", "argmin")
"""What :func:`unit_extremes` gives per layer."""


@dataclass(frozen=True)
class Example:
    """One dataset example of a unit: the item's index in the stream, its source, the unit's
    extreme value on it, and where: ``position`` is ``(row, col)`` on the layer's grid."""

    index: int
    source: str
    value: float
    position: tuple[int, int]
    grid: tuple[int, int]


def positions_of(activations: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """A layer's output as ``(N, positions, units)`` and its grid: feature maps ``(N, C, H, W)``
    give the H x W positions; ViT tokens ``(N, tokens, D)`` the patch grid (the class token is
    left out: it has no place in the image); vectors ``(N, D)`` one position."""
    if activations.ndim == 4:
        n, c, h, w = activations.shape
        return activations.flatten(2).transpose(1, 2), (h, w)
    if activations.ndim == 3:
        patches = activations[:, 1:]
        side = round(patches.shape[1] ** 0.5)
        if side * side != patches.shape[1]:
            raise ClipWidgetsError(f"{patches.shape[1]} patch tokens do not form a square grid")
        return patches, (side, side)
    if activations.ndim == 2:
        return activations[:, None, :], (1, 1)
    raise ClipWidgetsError(f"cannot read units from activations of shape {tuple(activations.shape)}")


class _Table:
    """Top-k (largest) extremes per unit: values, item indices and flat positions."""

    def __init__(self, units: int, k: int, largest: bool):
        fill = -np.inf if largest else np.inf
        self.largest = largest
        self.values = torch.full((units, k), fill)
        self.items = torch.full((units, k), -1, dtype=torch.long)
        self.positions = torch.zeros((units, k), dtype=torch.long)

    def merge(self, values: torch.Tensor, positions: torch.Tensor, items: torch.Tensor) -> None:
        """``values``/``positions``: ``(N, units)`` per-image extremes; ``items``: ``(N,)``.

        Equal values are ranked by item (the earlier image first), so the table does not depend
        on how the stream was cut into batches or in which order the batches were merged."""
        all_items = torch.cat([self.items, items.long()[None].expand(values.shape[1], -1)], 1)
        by_item = all_items.argsort(dim=1, stable=True)
        all_values = torch.cat([self.values, values.T.float()], 1).gather(1, by_item)
        all_positions = torch.cat([self.positions, positions.T.long()], 1).gather(1, by_item)
        all_items = all_items.gather(1, by_item)
        keep = all_values.sort(dim=1, descending=self.largest, stable=True).indices[:, : self.values.shape[1]]
        self.values = all_values.gather(1, keep)
        self.items = all_items.gather(1, keep)
        self.positions = all_positions.gather(1, keep)


class ExampleStore:
    """The on-disk result of :func:`collect_examples`; open one with ``ExampleStore(path)``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_path = self.path / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"no example store at {self.path} (missing {META_FILE})")
        self.meta = json.loads(meta_path.read_text())
        self._load_state()

    def _load_state(self) -> None:
        state_path = self.path / STATE_FILE
        self.state = dict(np.load(state_path)) if state_path.is_file() else {}
        self.processed = int(self.state.get("processed", 0))
        lines = (self.path / SOURCES_FILE).read_text().splitlines() if (self.path / SOURCES_FILE).is_file() else []
        self.sources = [json.loads(line) for line in lines[: self.processed]]

    @property
    def layers(self) -> list[str]:
        return list(self.meta["layers"])

    @property
    def skipped(self) -> list[dict]:
        """Items that could not be read: ``{"index", "source", "error"}``."""
        return [{"index": i, **s} for i, s in enumerate(self.sources) if "error" in s]

    def _check(self, layer: str, which: str) -> None:
        if layer not in self.meta["layers"]:
            raise KeyError(f"layer {layer!r} was not collected; collected: {', '.join(self.layers)}")
        if which not in ("top", "bottom"):
            raise ValueError(f"which is 'top' or 'bottom', not {which!r}")

    def examples(self, layer: str, unit: int, which: str = "top") -> list[Example]:
        """The unit's examples, most extreme first (fewer than k if fewer images were seen)."""
        self._check(layer, which)
        units = len(self.state[f"{layer}/{which}/values"]) if self.state else self.meta["units"][layer]
        if not 0 <= unit < units:  # numpy would wrap a negative index to the last units silently
            raise IndexError(f"unit {unit} out of range for layer {layer!r}: valid units are 0 to {units - 1}")
        grid = tuple(self.meta["grids"][layer])
        values = self.state[f"{layer}/{which}/values"][unit]
        items = self.state[f"{layer}/{which}/items"][unit]
        positions = self.state[f"{layer}/{which}/positions"][unit]
        out = []
        for value, item, flat in zip(values, items, positions, strict=True):
            if item < 0:
                continue
            out.append(Example(int(item), self.sources[item]["source"], float(value),
                               divmod(int(flat), grid[1]), grid))  # fmt: skip
        return out

    def image(self, example: Example, images: Sequence[Any] | None = None) -> Image.Image:
        """The example's image: read from its file, or ``images[example.index]`` for items that
        came from an in-memory iterable (pass the same sequence that was collected)."""
        if self.sources[example.index].get("in_memory"):
            if images is None:
                raise ClipWidgetsError(
                    f"example {example.source} came from an in-memory iterable; pass images= (the same "
                    "sequence that was collected) to show it, or collect from files"
                )
            return load_image(images[example.index])
        return load_image(example.source)

    def values(self, layer: str, which: str = "top") -> np.ndarray:
        """``(units, k)`` extreme values of every unit of ``layer``."""
        self._check(layer, which)
        return self.state[f"{layer}/{which}/values"]


def model_view(session: Any, image: Any) -> Image.Image:
    """The image as the model sees it: resized and cropped by the session's own preprocessing,
    without normalization."""
    pixels = session.preprocess(image)[0].float().cpu()
    mean = torch.tensor(session.mean).view(3, 1, 1)
    std = torch.tensor(session.std).view(3, 1, 1)
    rgb = ((pixels * std + mean).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(rgb)


def crop_box(size: tuple[int, int], example: Example, scale: float = 2.0) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` in an image of ``size`` (width, height): a square ``scale``
    grid cells wide, centred on the example's cell, clipped to the image."""
    width, height = size
    rows, cols = example.grid
    cell_h, cell_w = height / rows, width / cols
    cy, cx = (example.position[0] + 0.5) * cell_h, (example.position[1] + 0.5) * cell_w
    half_h, half_w = max(cell_h * scale / 2, 1), max(cell_w * scale / 2, 1)
    top, left = max(0, round(cy - half_h)), max(0, round(cx - half_w))
    bottom, right = min(height, round(cy + half_h)), min(width, round(cx + half_w))
    return left, top, right, bottom


def crop_around(view: Image.Image, example: Example, scale: float = 2.0) -> Image.Image:
    """The part of the model's view around the example's position (see :func:`crop_box`)."""
    return view.crop(crop_box(view.size, example, scale))


def collect_examples(
    session: Any,
    sources: Iterable[Any] | str | os.PathLike,
    layers: str | list[str],
    store: str | os.PathLike,
    *,
    k: int = 16,
    batch_size: int = 32,
    checkpoint_every: int = 20,
    total: int | None = None,
    progress: bool = True,
    workers: int | None = None,
    engine: Any = "local",
) -> ExampleStore:
    """Stream ``sources`` (a folder, a path, or an iterable of anything :func:`load_image`
    reads, in a stable order) through ``session``'s image tower and keep each unit's ``k``
    highest and lowest images of ``layers`` in ``store`` (a directory). Re-running with the same
    store resumes where the last checkpoint (every ``checkpoint_every`` batches) left off. A
    store made for other layers, k or model is refused rather than mixed.

    ``workers``: threads that read and preprocess the next batches while the model runs, with the
    results written by another thread (see :mod:`clip_widgets.collection`); 0 does each step in
    turn on this thread; None picks for the machine (:func:`clip_widgets.collection.default_workers`).

    ``engine``: ``"local"`` runs here; ``"ray"`` or a :class:`clip_widgets.ray_engine.RayEngine`
    reads and runs the model on a Ray cluster, one model per actor, resuming shard by shard
    (``pip install clip_widgets[ray]``). The store is the same with every engine."""
    layers = [layers] if isinstance(layers, str) else list(layers)
    for name in layers:
        session.layers[name]  # unknown names raise, listing the valid ones  # noqa: B018
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be positive, got k={k}, batch_size={batch_size}")
    root = Path(store)
    root.mkdir(parents=True, exist_ok=True)
    meta = {"model": session.name, "layers": layers, "k": k}
    meta_path = root / META_FILE
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if {key: old.get(key) for key in meta} != meta:
            raise ClipWidgetsError(
                f"{root} holds examples for {old.get('model')!r}, layers {old.get('layers')}, k={old.get('k')}; "
                f"asked for {meta['model']!r}, layers {layers}, k={k}. Use another directory."
            )
        meta = old
    else:
        info = {name: session.layers[name] for name in layers}
        meta["grids"] = {}
        for name, layer_info in info.items():
            shape = (1, *layer_info.shape)
            meta["grids"][name] = list(positions_of(torch.zeros(shape))[1])
        meta["units"] = {name: layer_info.units for name, layer_info in info.items()}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")

    result = ExampleStore(root)
    tables = {}
    for name in layers:
        units = meta["units"][name]
        for which in ("top", "bottom"):
            table = _Table(units, k, largest=which == "top")
            if result.state:
                table.values = torch.from_numpy(result.state[f"{name}/{which}/values"])
                table.items = torch.from_numpy(result.state[f"{name}/{which}/items"])
                table.positions = torch.from_numpy(result.state[f"{name}/{which}/positions"])
            tables[name, which] = table
    processed = result.processed
    # cut the sources log back to what the tables include: items after the checkpoint are redone
    trim_log(root / SOURCES_FILE, processed)

    def save() -> None:
        arrays = {"processed": np.array(processed)}
        for (name, which), table in tables.items():
            arrays[f"{name}/{which}/values"] = table.values.numpy()
            arrays[f"{name}/{which}/items"] = table.items.numpy()
            arrays[f"{name}/{which}/positions"] = table.positions.numpy()
        tmp = root / (STATE_FILE + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, root / STATE_FILE)  # atomic: a kill mid-save keeps the previous state

    def write(extremes: dict | None, indices: list[int], lines: list[dict], length: int) -> None:
        nonlocal processed
        if extremes is not None:
            items = torch.tensor(indices)
            for name in layers:
                part = {key: torch.as_tensor(extremes[f"{name}/{key}"]).cpu() for key in EXTREMES}
                tables[name, "top"].merge(part["max"], part["argmax"], items)
                tables[name, "bottom"].merge(part["min"], part["argmin"], items)
        write_log(log, lines)
        log.flush()
        processed += length

    compute = partial(unit_extremes, layers=tuple(layers))
    bar = tqdm(total=total, initial=processed, desc="dataset examples", unit="img", disable=not progress)
    with (root / SOURCES_FILE).open("a") as log:
        job = Job(session, sources, processed, batch_size, compute, write, save, bar)
        collect_with(engine, job, every=checkpoint_every, workers=workers, shard_dir=root / SHARDS_DIR)
    result._load_state()
    return result


def unit_extremes(session: Any, pixels: torch.Tensor, indices: list[int], *, layers: tuple[str, ...]) -> dict:
    """Each image's largest and smallest value of every unit of ``layers`` and where they occur
    (``{layer}/max``, ``/argmax``, ``/min``, ``/argmin``, each ``(N, units)``): reduced over
    positions where the model ran, so only ``(N, units)`` leaves the device."""
    with torch.no_grad():
        captured, _ = session.layers.forward(pixels, *layers)
    extremes = {}
    for name in layers:
        values, _grid = positions_of(captured[name].float())
        (high, high_at), (low, low_at) = values.max(dim=1), values.min(dim=1)
        extremes |= {f"{name}/max": high, f"{name}/argmax": high_at, f"{name}/min": low, f"{name}/argmin": low_at}
    return extremes


@dataclass(frozen=True)
class ExampleViews:
    """A unit's dataset examples as pixels ready to draw (see :func:`example_views`).

    The heat maps say how close the unit comes to its extreme at each point: 255 where it is
    highest over all the examples (lowest, for bottom examples), 0 at the other end, so the maps
    of different examples compare; all 0 where the unit takes one value over every example."""

    examples: list[Example]
    images: np.ndarray
    """``(n, H, W, 3)`` uint8: each whole image as the model sees it (:func:`model_view`)."""
    heat: np.ndarray
    """``(n, rows, cols)`` uint8: the unit over the layer's grid of each image."""
    boxes: np.ndarray
    """``(n, 4)`` int: each crop's ``(left, top, right, bottom)`` in ``images`` (:func:`crop_box`)."""
    crops: np.ndarray
    """``(n, size, size, 3)`` uint8: the part of each image around the unit's extreme."""
    crop_heat: np.ndarray
    """``(n, size, size)`` uint8: ``heat`` under each crop, pixel for pixel."""


def example_views(
    session: Any,
    store: ExampleStore,
    layer: str,
    unit: int,
    *,
    which: str = "top",
    count: int = 8,
    size: int = 128,
    images: Sequence[Any] | None = None,
    scale: float = 2.0,
) -> ExampleViews:
    """The unit's first ``count`` ``which`` (``"top"`` or ``"bottom"``) examples in ``store``:
    whole images, crops of ``size`` px around the extreme (``scale`` grid cells wide) and the
    unit's heat over both. ``images``: the sequence the store was collected from, for in-memory
    items (see :meth:`ExampleStore.image`)."""
    found = store.examples(layer, unit, which)[: max(0, count)]
    views = [model_view(session, store.image(e, images)) for e in found]
    if not views:
        empty = np.zeros((0, size, size), np.uint8)
        return ExampleViews([], np.zeros((0, 1, 1, 3), np.uint8), np.zeros((0, 1, 1), np.uint8),
                            np.zeros((0, 4), int), np.zeros((0, size, size, 3), np.uint8), empty)  # fmt: skip
    maps = unit_maps(session, layer, unit, views)
    low, high = float(maps.min()), float(maps.max())
    if high - low <= 1e-6 * max(1.0, abs(high)):
        # the unit is flat over every example (a ReLU unit's bottom examples are all zero): no
        # place is nearer the extreme than another, so nothing is hot
        heat = np.zeros(maps.shape, np.uint8)
    else:
        closeness = (maps - low) / (high - low)
        heat = np.rint((1 - closeness if which == "bottom" else closeness) * 255).astype(np.uint8)
    boxes, crops, crop_heat = [], [], []
    for view, example, grid_heat in zip(views, found, heat, strict=True):
        box = crop_box(view.size, example, scale)
        boxes.append(box)
        crops.append(np.asarray(view.crop(box).resize((size, size)), np.uint8))
        # nearest-neighbour keeps each grid cell a sharp square, as the layer sees it
        cells = Image.fromarray(grid_heat).resize(view.size, resample=Image.Resampling.NEAREST)
        crop_heat.append(np.asarray(cells.crop(box).resize((size, size), resample=Image.Resampling.NEAREST)))
    return ExampleViews(found, np.stack([np.asarray(v, np.uint8) for v in views]), heat, np.array(boxes, int),
                        np.stack(crops), np.stack(crop_heat))  # fmt: skip


def unit_maps(session: Any, layer: str, unit: int, images: list[Any]) -> np.ndarray:
    """``(N, rows, cols)`` activation maps of one unit over the layer's grid, for the images as
    the model sees them (see :func:`model_view`)."""
    info = session.layers[layer]
    if not 0 <= unit < info.units:
        raise IndexError(f"unit {unit} out of range for layer {layer!r}, which has {info.units} units")
    if not images:
        return np.zeros((0, 1, 1), np.float32)
    with torch.no_grad():
        captured, _ = session.layers.forward(session.preprocess(images), layer)
    values, grid = positions_of(captured[layer].float().cpu())
    return values[:, :, unit].reshape(len(images), *grid).numpy()
