"""Collection speed: the sequential loop vs the pipelined one vs the bare forward pass, side by side.

    python bench/bench_collection.py [--model world-vit] [--layer blocks.3] [--images 384] [--batch 64]
                                     [--workers 1,2] [--repeats 3] [--threads N] [--device cpu|cuda]
                                     [--what examples,activations] [--ray ACTORS]

World scenes are written as PNG files to a temporary folder; each round times, in turn:

* the bare forward pass: the same batches, already preprocessed and on the device, through the
  tower up to the layer (where collection stops too);
* :func:`collect_examples` (or :func:`collect_activations`, 4 positions per image) with
  ``workers=0``: read, decode, preprocess, forward and write, one after another;
* the same with ``workers=N`` for each N of ``--workers``: reader threads decode and preprocess
  ahead of the model (pinned memory, non-blocking copies on CUDA), a writer thread applies the
  results behind it.
* with ``--ray N``, the same on the Ray engine (:class:`clip_widgets.ray_engine.RayEngine`, N
  model actors on a local cluster started before timing; each run includes starting its actors
  and shipping them the model, as a user's run does). On a cluster, each actor reserves one CPU
  (``--threads`` torch threads) or one GPU.

Rounds interleave the methods so machine noise hits them alike; the medians are printed as
images/s and as a fraction of the bare forward pass. Torch's intra-op threads are pinned
(``--threads``, default all cores) and printed, since the reader threads share the same cores on
the CPU. ``--device cuda`` records GPU figures (float32 unless ``--dtype float16``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from clip_widgets.atlas import collect_activations
from clip_widgets.examples import collect_examples
from clip_widgets.session import ModelSession
from clip_widgets.world import draw_scene


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world-vit")
    parser.add_argument("--layer", default=None, help="default: blocks.3 (ViT) or layer3 (ResNet)")
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--size", type=int, default=64, help="side of the PNG scenes, in pixels")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", default="1,2", help="comma-separated reader-thread counts to try")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--what", default="examples", help="examples, activations or both (comma-separated)")
    parser.add_argument("--ray", type=int, default=0, help="model actors for the Ray engine (0: leave it out)")
    args = parser.parse_args()
    engines: list = ["local"]
    if args.ray:
        import ray

        from clip_widgets.ray_engine import RayEngine

        ray.init(include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        engines.append(RayEngine(actors=args.ray, shard_size=256, cpus_per_actor=args.threads,
                                 gpus_per_actor=1 if args.device == "cuda" else 0))  # fmt: skip
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    session = ModelSession.load(args.model, device=args.device, **({"dtype": args.dtype} if args.dtype else {}))
    layer = args.layer or ("blocks.3" if "blocks.3" in session.layers.names else "layer3")
    device = session.device
    workers = [int(w) for w in args.workers.split(",") if w]
    print(f"# {session!r} on {device}, {session.dtype}; torch threads pinned to {torch.get_num_threads()}"
          f" of {os.cpu_count()} cores; layer {layer}")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "scenes"
        folder.mkdir()
        for i in range(args.images):
            draw_scene(10**8 + i, size=args.size).image.save(folder / f"{i:05d}.png")
        paths = sorted(folder.glob("*.png"))
        pixels = [session.preprocess([str(p) for p in paths[s : s + args.batch]])
                  for s in range(0, len(paths), args.batch)]  # fmt: skip

        def bare() -> None:
            with torch.no_grad():
                for batch in pixels:
                    session.layers.forward(batch, layer)

        runs = {"bare forward (preprocessed, on device)": bare}
        for what in args.what.split(","):
            for engine in engines:
                for w in [0, *workers] if engine == "local" else [None]:
                    if engine == "local":
                        label = f"{'collect_' + what} workers={w}" + (" (sequential)" if w == 0 else "")
                    else:
                        label = f"{'collect_' + what} on Ray, {engine.actors} actor(s)"

                    def collect(what=what, w=w, engine=engine) -> None:
                        with tempfile.TemporaryDirectory(dir=tmp) as store:
                            kw = dict(batch_size=args.batch, workers=w, progress=False, engine=engine)
                            if what == "examples":
                                collect_examples(session, folder, [layer], store, k=16, **kw)
                            else:
                                collect_activations(session, folder, layer, store, per_image=4, **kw)

                    runs[label] = collect
        for run in runs.values():  # warm-up: caches, allocator, lazy initialisation
            run()
        times: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(args.repeats):
            for label, run in runs.items():
                times[label].append(timed(run, device))

    base = args.images / statistics.median(times["bare forward (preprocessed, on device)"])
    print(f"\n## {args.images} PNG scenes of {args.size} px, batches of {args.batch}, median of {args.repeats} "
          "interleaved rounds")  # fmt: skip
    print(f"{'method':<46}{'seconds':>9}{'images/s':>10}{'of bare':>9}")
    for label, ts in times.items():
        t = statistics.median(ts)
        print(f"{label:<46}{t:>9.3f}{args.images / t:>10.1f}{args.images / t / base:>8.0%}")


if __name__ == "__main__":
    main()
