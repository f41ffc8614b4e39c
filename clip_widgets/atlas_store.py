"""The activation store of an atlas: :func:`collect_activations` streams images through a model
and keeps one or more random spatial activations per image (a ResNet map position or a ViT
patch token), with the image and position each came from, in an on-disk
:class:`ActivationStore` (memory-mapped float16, so a million rows of 2560 values need no RAM).
A killed job resumes without loss or duplicates: which positions an image contributes depends
only on (seed, image index)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .collection import Job, collect_with, trim_log, write_log
from .errors import ClipWidgetsError
from .examples import SHARDS_DIR, positions_of

META_FILE = "meta.json"
STATE_FILE = "state.json"
ACTIVATIONS_FILE = "activations.f16"
ORIGINS_FILE = "origins.i32"  # (image index, row, col) per activation
SOURCES_FILE = "sources.jsonl"


class ActivationStore:
    """The on-disk result of :func:`collect_activations`: ``activations`` ``(N, D)`` float16
    (memory-mapped), ``origins`` ``(N, 3)`` (image index, row, col) and ``sources``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not (self.path / META_FILE).is_file():
            raise FileNotFoundError(f"no activation store at {self.path} (missing {META_FILE})")
        self.meta = json.loads((self.path / META_FILE).read_text())
        state_path = self.path / STATE_FILE
        state = json.loads(state_path.read_text()) if state_path.is_file() else {"processed": 0, "rows": 0}
        self.processed, self.rows = int(state["processed"]), int(state["rows"])
        lines = (self.path / SOURCES_FILE).read_text().splitlines() if (self.path / SOURCES_FILE).is_file() else []
        self.sources = [json.loads(line) for line in lines[: self.processed]]

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def activations(self) -> np.ndarray:
        """``(rows, dim)`` float16, memory-mapped read-only."""
        if self.rows == 0:
            return np.zeros((0, self.dim), np.float16)
        return np.memmap(self.path / ACTIVATIONS_FILE, dtype=np.float16, mode="r", shape=(self.rows, self.dim))

    @property
    def origins(self) -> np.ndarray:
        """``(rows, 3)`` int32: the image index (into ``sources``), row and column of each activation."""
        if self.rows == 0:
            return np.zeros((0, 3), np.int32)
        return np.fromfile(self.path / ORIGINS_FILE, dtype=np.int32, count=self.rows * 3).reshape(self.rows, 3)

    def __len__(self) -> int:
        return self.rows

    def image_source(self, index: int, images: Sequence[Any] | None = None) -> Any:
        """What to load for image ``index``: its file, or ``images[index]`` for in-memory items."""
        entry = self.sources[index]
        if not entry.get("in_memory"):
            return entry["source"]
        if images is None:
            raise ClipWidgetsError(
                f"image {entry['source']} was collected from an in-memory iterable; pass images= "
                "(the same sequence) to read it again, or collect from files"
            )
        return images[index]


def _sample_positions(index: int, seed: int, count: int, positions: int) -> np.ndarray:
    """Which positions image ``index`` contributes: fixed by (seed, index) alone, so a resumed
    run picks exactly what an uninterrupted one would."""
    rng = np.random.default_rng([seed, index])
    return rng.choice(positions, size=min(count, positions), replace=False)


def sampled_activations(session: Any, pixels: torch.Tensor, indices: list[int], *, layer: str, per_image: int,
                        seed: int) -> dict:  # fmt: skip
    """Each image's picked positions of ``layer`` (:func:`_sample_positions`): ``rows``
    ``(N, picked, units)`` and ``origins`` ``(N, picked, 3)`` (item, row, col). Only the picked
    rows leave the device."""
    with torch.no_grad():
        captured, _ = session.layers.forward(pixels, layer)
    values, grid = positions_of(captured[layer].float())
    picked = np.stack([_sample_positions(index, seed, per_image, values.shape[1]) for index in indices])
    rows_at, cols_at = np.divmod(picked, grid[1])
    origins = np.stack([np.broadcast_to(np.asarray(indices)[:, None], picked.shape), rows_at, cols_at], -1)
    rows = values.gather(1, torch.as_tensor(picked, device=values.device)[..., None].expand(-1, -1, values.shape[2]))
    return {"rows": rows, "origins": torch.from_numpy(origins.astype(np.int32))}


def collect_activations(
    session: Any,
    sources: Iterable[Any] | str | os.PathLike,
    layer: str,
    store: str | os.PathLike,
    *,
    per_image: int = 1,
    seed: int = 0,
    batch_size: int = 32,
    checkpoint_every: int = 20,
    total: int | None = None,
    progress: bool = True,
    workers: int | None = None,
    engine: Any = "local",
) -> ActivationStore:
    """Keep ``per_image`` random spatial activations of ``layer`` per image of ``sources`` (a
    folder, a path or an iterable of images, in a stable order) in ``store``. Running it again
    on the same store resumes after the last checkpoint. ``workers``: as in
    :func:`clip_widgets.examples.collect_examples` (threads reading ahead of the model; 0 for one
    step at a time; None picks for the machine); ``engine``: ``"local"``, ``"ray"`` or a
    :class:`clip_widgets.ray_engine.RayEngine` (see :func:`clip_widgets.examples.collect_examples`).
    The store is the same either way."""
    info = session.layers[layer]  # unknown names raise, listing the valid ones
    if info.kind == "vector":
        raise ClipWidgetsError(f"layer {layer!r} has no spatial positions; choose a feature map or token layer")
    if per_image < 1 or batch_size < 1:
        raise ValueError(f"per_image and batch_size must be positive, got {per_image}, {batch_size}")
    root = Path(store)
    root.mkdir(parents=True, exist_ok=True)
    meta = {"model": session.name, "layer": layer, "per_image": per_image, "seed": seed, "dim": info.units}
    if (root / META_FILE).is_file():
        old = json.loads((root / META_FILE).read_text())
        if old != meta:
            raise ClipWidgetsError(
                f"{root} holds activations collected with {old}; asked for {meta}. Use another directory."
            )
    else:
        (root / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    result = ActivationStore(root)
    processed, rows = result.processed, result.rows
    row_bytes = info.units * 2
    # cut every file back to the last checkpoint: what follows it is redone
    for name, size in ((ACTIVATIONS_FILE, rows * row_bytes), (ORIGINS_FILE, rows * 12)):
        with (root / name).open("ab") as f:
            f.truncate(size)
    trim_log(root / SOURCES_FILE, processed)

    def save() -> None:
        for name in (ACTIVATIONS_FILE, ORIGINS_FILE, SOURCES_FILE):
            files[name].flush()
            os.fsync(files[name].fileno())
        tmp = root / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps({"processed": processed, "rows": rows}))
        os.replace(tmp, root / STATE_FILE)

    files = {
        ACTIVATIONS_FILE: (root / ACTIVATIONS_FILE).open("ab"),
        ORIGINS_FILE: (root / ORIGINS_FILE).open("ab"),
        SOURCES_FILE: (root / SOURCES_FILE).open("a"),
    }

    def write(picked: dict | None, indices: list[int], lines: list[dict], length: int) -> None:
        nonlocal processed, rows
        if picked is not None:
            block = torch.as_tensor(picked["rows"]).cpu().numpy().astype(np.float16).reshape(-1, info.units)
            files[ACTIVATIONS_FILE].write(block.tobytes())
            files[ORIGINS_FILE].write(np.asarray(picked["origins"], np.int32).reshape(-1, 3).tobytes())
            rows += len(block)
        write_log(files[SOURCES_FILE], lines)
        processed += length

    compute = partial(sampled_activations, layer=layer, per_image=per_image, seed=seed)
    bar = tqdm(total=total, initial=processed, desc=f"activations of {layer}", unit="img", disable=not progress)
    try:
        job = Job(session, sources, processed, batch_size, compute, write, save, bar)
        collect_with(engine, job, every=checkpoint_every, workers=workers, shard_dir=root / SHARDS_DIR)
    finally:
        for f in files.values():
            f.close()
    return ActivationStore(root)
