"""What the resumable collections (dataset examples, atlas activations) share: reading a batch
of sources where one bad item skips only itself, the sources log cut back to the last
checkpoint, and the loop that checkpoints every few batches and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from .images import _expand, load_image, skip_warning

__all__ = ["describe", "pending_batches", "read_batch", "run_checkpointed", "trim_log", "write_log"]


def describe(source: Any, index: int) -> str:
    """How the sources log names an item: its path, or its place in an in-memory stream."""
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<item {index}>"


def pending_batches(sources: Any, done: int, size: int) -> Iterator[list[tuple[int, Any]]]:
    """``(index, source)`` batches of the items after the first ``done``."""
    stream = islice(enumerate(_expand(sources)), done, None)
    while batch := list(islice(stream, size)):
        yield batch


def read_batch(session: Any, batch: list[tuple[int, Any]]) -> tuple[torch.Tensor | None, list[int], list[dict]]:
    """Read and preprocess each item on its own: the pixels of those that could be used (None if
    none), their indices, and one sources-log line per item (its name, or why it was skipped)."""
    images, indices, lines = [], [], []
    for index, source in batch:
        name = describe(source, index)
        try:  # reading and preprocessing concern this item alone: a failure skips only it
            images.append(session.preprocess(load_image(source)))
        except Exception as e:  # noqa: BLE001 - named in the warning and in the store
            lines.append({"source": name, "error": skip_warning(name, e)})
            continue
        indices.append(index)
        in_memory = not isinstance(source, (str, os.PathLike))
        lines.append({"source": name, "in_memory": True} if in_memory else {"source": name})
    return (torch.cat(images) if images else None), indices, lines


def write_log(log, lines: Iterable[dict]) -> None:
    log.write("".join(json.dumps(line) + "\n" for line in lines))


def trim_log(path: Path, keep: int) -> None:
    """Cut the sources log back to its first ``keep`` lines: items after the checkpoint are redone."""
    with path.open("a+") as f:
        f.seek(0)
        kept = f.read().splitlines()[:keep]
    path.write_text("".join(line + "\n" for line in kept))


def run_checkpointed(
    batches: Iterable[list], process: Callable[[list], None], save: Callable[[], None], bar: Any, every: int
) -> None:
    """``process`` each batch, ``save`` every ``every`` batches and at the end. Ctrl-C stops
    between items; a batch cut off half-way is not saved (the last checkpoint stands, and the
    batch is redone on resume), so a store never holds part of a batch."""
    since_save, consistent = 0, True
    try:
        for batch in batches:
            consistent = False
            process(batch)
            consistent = True
            bar.update(len(batch))
            since_save += 1
            if since_save >= every:
                save()
                since_save = 0
    except KeyboardInterrupt:
        bar.write(f"interrupted after {bar.n} images; run the same call again to resume")
    finally:
        bar.close()
        if consistent:
            save()
