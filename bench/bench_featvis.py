"""Feature visualization and dataset-example speed, measured side by side in one run.

    python bench/bench_featvis.py [--model world-vit] [--layer blocks.3] [--units 32] [--steps 32] [--repeats 3]

* Whole-layer rendering: ``units`` units of a layer, ``steps`` optimization steps each, as one
  batched render (one image per unit, one vectorised objective) vs a loop of one-unit renders
  with the same steps. Units per second and the ratio; the rounds interleave so machine noise
  hits both alike.
* Dataset examples: images per second of :func:`collect_examples` (load, preprocess, forward,
  top/bottom-k merge, on-disk log) vs bare forward passes of the same batches, through the
  whole tower and up to the layer (where collection stops too), and the overhead in percent.

The default model is the embedded one (offline); ``--model ViT-B-16`` builds that architecture
with random weights. Absolute times mean something only on a GPU; compare the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from clip_widgets.examples import collect_examples
from clip_widgets.featvis import objectives as obj
from clip_widgets.featvis import render
from clip_widgets.session import ModelSession
from clip_widgets.world import draw_scene


def load_session(name: str) -> ModelSession:
    """An embedded or built-in model by name, else the open_clip architecture with random weights."""
    if name in ModelSession.embedded_models() or name.startswith("tiny-"):
        return ModelSession.load(name)
    return ModelSession.from_config(name)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_render(session: ModelSession, layer: str, units: int, steps: int, repeats: int) -> None:
    unit_ids = list(range(units))
    batched, looped = [], []
    for _ in range(repeats):
        batched.append(timed(lambda: render(session, obj.channel(layer, unit_ids), batch=units, steps=steps,
                                            progress=False)))  # fmt: skip
        looped.append(timed(lambda: [render(session, obj.channel(layer, u), steps=steps, progress=False)
                                     for u in unit_ids]))  # fmt: skip
    b, loop = statistics.median(batched), statistics.median(looped)
    print(f"\n## Whole-layer rendering: {units} units of {layer}, {steps} steps, median of {repeats}")
    print(f"{'method':<34}{'seconds':>10}{'units/s':>10}")
    print(f"{'one-unit loop':<34}{loop:>10.2f}{units / loop:>10.2f}")
    print(f"{'batched (clip_widgets)':<34}{b:>10.2f}{units / b:>10.2f}")
    print(f"batched / loop speed: {loop / b:.1f}x")


def bench_examples(session: ModelSession, layer: str, images: int, repeats: int) -> None:
    scenes = [draw_scene(10**8 + i, size=96).image for i in range(images)]
    batch = 32
    collected, bare, truncated = [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as store:
            collected.append(timed(lambda: collect_examples(session, scenes, [layer], store, k=16,  # noqa: B023
                                                            batch_size=batch, progress=False)))  # fmt: skip

        def forward_only():
            with torch.no_grad():
                for start in range(0, images, batch):
                    session.model.visual(session.preprocess(scenes[start : start + batch]))

        def forward_to_layer():
            with torch.no_grad():
                for start in range(0, images, batch):
                    session.layers.forward(session.preprocess(scenes[start : start + batch]), layer)

        bare.append(timed(forward_only))
        truncated.append(timed(forward_to_layer))
    c, f, t = statistics.median(collected), statistics.median(bare), statistics.median(truncated)
    print(f"\n## Dataset examples: {images} images, layer {layer}, k=16, median of {repeats}")
    print(f"{'method':<34}{'seconds':>10}{'images/s':>10}")
    print(f"{'preprocess + whole tower':<34}{f:>10.2f}{images / f:>10.1f}")
    print(f"{'preprocess + tower up to layer':<34}{t:>10.2f}{images / t:>10.1f}")
    print(f"{'collect_examples':<34}{c:>10.2f}{images / c:>10.1f}")
    print(f"overhead of collecting vs the same forward up to the layer: {100 * (c / t - 1):+.0f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world-vit")
    parser.add_argument("--layer", default="blocks.3")
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    session = load_session(args.model)
    print(f"# {session!r}, torch threads {torch.get_num_threads()}")
    bench_render(session, args.layer, args.units, args.steps, args.repeats)
    bench_examples(session, args.layer, args.images, args.repeats)


if __name__ == "__main__":
    main()
