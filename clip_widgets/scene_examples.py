"""Dataset examples without a dataset: a small :class:`ExampleStore` over drawn world scenes,
so a NeuronExplorer has examples to show before anyone has collected their own."""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Sequence
from typing import Any

from PIL import Image

from .examples import ExampleStore, collect_examples
from .world import draw_scene


def scene_examples(
    session: Any,
    layers: str | Sequence[str],
    *,
    count: int = 32,
    k: int = 8,
    batch_size: int = 8,
) -> tuple[ExampleStore, list[Image.Image]]:
    """Draw ``count`` world scenes (seeds 0 to count - 1) at the model's input size and collect
    their top and bottom ``k`` examples for ``layers``. Returns the store and the scenes: pass
    both to the explorer (``examples=store, images=scenes``), since the scenes live in memory.
    The store lives in a temporary folder, removed when the store is garbage collected or, at the
    latest, when Python exits."""
    layers = [layers] if isinstance(layers, str) else list(layers)
    side = int(session.image_size[0])
    scenes = [draw_scene(seed, size=side).image for seed in range(count)]
    folder = tempfile.mkdtemp(prefix="clip-widgets-examples-")
    try:
        # small batches: a ResNet's early feature maps for every layer at once are large
        store = collect_examples(session, scenes, layers, folder, k=k, batch_size=batch_size, progress=False)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    weakref.finalize(store, shutil.rmtree, folder, ignore_errors=True)
    return store, scenes
