"""Activation atlas speed and traffic, measured side by side in one run.

    python bench/bench_atlas.py [--model world-vit] [--layer blocks.3] [--images 512] [--rows 4000] [--repeats 3]
                                [--no-browser]

* Collection: images per second of :func:`collect_activations` (load, preprocess, forward to the
  layer, sample positions, append to the memory-mapped store) vs bare forward passes of the
  same batches up to the layer; the overhead in percent.
* Layout: :func:`layout` + :func:`bin_grid` at 8, 16, 32 and 64 cells a side vs umap-learn alone
  on the same activations; the ratio is what binning and normalization add.
* In the browser (JupyterLab in headless Chromium, as the tests run it): bytes the widget sends
  per zoom step (only the tiles in view) vs the whole level as one RGBA image, and the main-thread
  time of one zoom frame (wheel event to drawn canvas) vs a 60 Hz frame budget.

Rounds interleave the compared methods so machine noise hits both alike; absolute times mean
something only on a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from clip_widgets.atlas import bin_grid, collect_activations, layout
from clip_widgets.session import ModelSession
from clip_widgets.world import draw_scene

ROOT = Path(__file__).resolve().parents[1]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_collection(session: ModelSession, layer: str, images: int, repeats: int) -> None:
    scenes = [draw_scene(10**8 + i).image for i in range(images)]
    batch = 32
    collected, bare = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as store:
            collected.append(timed(lambda: collect_activations(session, scenes, layer, store, per_image=4,  # noqa: B023
                                                               batch_size=batch, progress=False)))  # fmt: skip

        def forward_to_layer():
            with torch.no_grad():
                for start in range(0, images, batch):
                    session.layers.forward(session.preprocess(scenes[start : start + batch]), layer)

        bare.append(timed(forward_to_layer))
    c, f = statistics.median(collected), statistics.median(bare)
    print(f"\n## Collection: {images} images, layer {layer}, 4 positions each, median of {repeats}")
    print(f"{'method':<36}{'seconds':>10}{'images/s':>10}")
    print(f"{'preprocess + tower up to layer':<36}{f:>10.2f}{images / f:>10.1f}")
    print(f"{'collect_activations':<36}{c:>10.2f}{images / c:>10.1f}")
    print(f"overhead of collecting vs the bare forward: {100 * (c / f - 1):+.0f}%")


def bench_attribution(session: ModelSession, layer: str, images: int, repeats: int) -> None:
    from clip_widgets.atlas import attribute_activations
    from clip_widgets.world import CLASSES, class_prompt

    scenes = [draw_scene(3 * 10**8 + i).image for i in range(images)]
    prompts = [class_prompt(c) for c in CLASSES[:10]]
    with tempfile.TemporaryDirectory() as root:
        store = collect_activations(session, scenes, layer, root, per_image=4, progress=False)
        methods = {
            "gradient x activation (one pass)": lambda: attribute_activations(
                session, store, prompts, method="gradient_x_activation", images=scenes, progress=False),
            "integrated gradients, 8 steps": lambda: attribute_activations(
                session, store, prompts, method="integrated_gradients", steps=8, images=scenes, progress=False),
            "... classes in one batched backward": lambda: attribute_activations(
                session, store, prompts, method="integrated_gradients", steps=8, images=scenes, progress=False,
                class_backward="batched"),
            "... one backward per class": lambda: attribute_activations(
                session, store, prompts, method="integrated_gradients", steps=8, images=scenes, progress=False,
                class_backward="loop"),
        }  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(repeats):  # interleaved, so noise hits both alike
            for name, fn in methods.items():
                times[name].append(timed(fn))
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"\n## Attribution: {images} images x 4 positions, 10 classes, layer {layer}, median of {repeats}")
    print(f"{'method':<36}{'seconds':>10}{'images/s':>10}")
    for name, m in medians.items():
        print(f"{name:<36}{m:>10.2f}{images / m:>10.1f}")
    first, second, batched, looped = medians.values()
    print(
        f"integrated gradients ({'batched' if session.device.type == 'cuda' else 'looped'} on {session.device.type})"
        f" / gradient x activation: {second / first:.1f}x the time"
    )
    print(f"one backward per class / one batched backward: {looped / batched:.2f}x the time")


def bench_layout(session: ModelSession, layer: str, rows: int, repeats: int) -> None:
    import umap

    with tempfile.TemporaryDirectory() as store:
        scenes = (draw_scene(2 * 10**8 + i).image for i in range(rows // 4))
        data = np.asarray(collect_activations(session, scenes, layer, store, per_image=4, progress=False).activations,
                          np.float32)  # fmt: skip
    layout(data[:300], seed=0)  # compile umap-learn's numba kernels before any timing
    ours, alone = [], []
    for _ in range(repeats):

        def pipeline():
            coords = layout(data, seed=0)
            for size in (8, 16, 32, 64):
                bin_grid(coords, data, size, min_count=3)

        ours.append(timed(pipeline))
        alone.append(timed(lambda: umap.UMAP(n_neighbors=15, min_dist=0.01, metric="cosine", random_state=0,
                                             n_jobs=1).fit_transform(data)))  # fmt: skip
    o, a = statistics.median(ours), statistics.median(alone)
    print(f"\n## Layout: {len(data)} x {data.shape[1]} activations, median of {repeats}")
    print(f"{'method':<44}{'seconds':>10}")
    print(f"{'umap-learn alone (cosine)':<44}{a:>10.2f}")
    print(f"{'layout + bin_grid at 8, 16, 32, 64':<44}{o:>10.2f}")
    print(f"layout + binning / UMAP alone: {o / a:.2f}x")


BROWSER_CELLS = [
    "import json, tempfile\n"
    "from clip_widgets import AtlasWidget, ModelSession, build_atlas\n"
    "from clip_widgets.atlas import collect_activations\n"
    "from clip_widgets.world import draw_scene\n"
    "session = ModelSession.load('tiny-vit')\n"
    "root = tempfile.mkdtemp()\n"
    "scenes = [draw_scene(i, size=48).image for i in range(600)]\n"
    "store = collect_activations(session, scenes, 'blocks.0', root + '/acts', per_image=8, progress=False)\n"
    "atlas = build_atlas(session, store, sizes=(8, 16, 32, 64), min_count=1, icon_steps=2, progress=False)\n"
    "w = AtlasWidget(atlas, tile_cells=8, icon_px=32)\n"
    "sent = []\n"
    "plain_send = w.send\n"
    "def counting_send(content, buffers=None):\n"
    "    sent.append(sum(memoryview(b).nbytes for b in buffers or []) + len(json.dumps(content)))\n"
    "    plain_send(content, buffers=buffers)\n"
    "w.send = counting_send\n"
    "display(w)",
]
COUNT_CELL = "print(json.dumps({'bytes': sum(sent), 'level': w.level})); sent.clear()"
LOADED = (
    "() => { const c = document.querySelector('.cw-atlas canvas.cw-atlas-canvas');"
    " return c && c.dataset.tiles && c.dataset.loaded === c.dataset.tiles; }"
)
FRAME_TIMES = """count => {
  const canvas = document.querySelector('.cw-atlas canvas.cw-atlas-canvas');
  const box = canvas.getBoundingClientRect();
  const times = [];
  for (let i = 0; i < count; i++) {
    const deltaY = (i % 20 < 10 ? -1 : 1) * 60;
    const start = performance.now();
    canvas.dispatchEvent(new WheelEvent('wheel', {deltaY, clientX: box.left + 200, clientY: box.top + 220,
                                                   bubbles: true, cancelable: true}));
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return {median: times[Math.floor(times.length / 2)], p90: times[Math.floor(times.length * 0.9)]};
}"""


def bench_browser(repeats: int) -> None:
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from tests.browser.harness import CHROMIUM, CHROMIUM_ARGS, LabNotebook, run_cell_in_lab, start_lab

    with tempfile.TemporaryDirectory() as root, sync_playwright() as playwright:
        server = start_lab(Path(root), Path(root) / "lab.log")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            notebook = LabNotebook(page, server, "atlas_bench", BROWSER_CELLS, timeout=600)
            notebook.run_next()
            page.wait_for_function(LOADED, timeout=120_000)
            steps = [json.loads(run_cell_in_lab(page, COUNT_CELL).splitlines()[0])]
            for _ in range(3):
                page.locator(".cw-atlas").first.focus()  # running a cell moved the focus to the notebook
                page.keyboard.press("+")
                page.wait_for_timeout(300)
                page.wait_for_function(LOADED, timeout=120_000)
                steps.append(json.loads(run_cell_in_lab(page, COUNT_CELL).splitlines()[0]))
            print("\n## Bytes per zoom step (tiles of 8 x 8 icons at 32 px, RGBA)")
            print(f"{'step':<22}{'grid':>6}{'bytes sent':>14}{'whole level':>14}{'ratio':>8}")
            for k, step in enumerate(steps):
                level = step["level"]
                whole = (level * 32) ** 2 * 4
                print(f"{'open' if k == 0 else f'zoom in x2 ({k})':<22}{level:>6}{step['bytes']:>14,}{whole:>14,}"
                      f"{step['bytes'] / whole:>8.2f}")  # fmt: skip
            frames = [page.evaluate(FRAME_TIMES, 200) for _ in range(repeats)]
            median = statistics.median(f["median"] for f in frames)
            p90 = statistics.median(f["p90"] for f in frames)
            print("\n## Zoom frame time in Chromium (wheel event to drawn canvas, main thread)")
            print(f"median {median:.2f} ms, p90 {p90:.2f} ms; a 60 Hz frame is 16.7 ms: {16.7 / median:.0f}x headroom")
        finally:
            browser.close()
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world-vit")
    parser.add_argument("--layer", default="blocks.3")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    session = ModelSession.load(args.model)
    print(f"# {session!r}, torch threads {torch.get_num_threads()}")
    bench_collection(session, args.layer, args.images, args.repeats)
    bench_attribution(session, args.layer, args.images // 4, args.repeats)
    bench_layout(session, args.layer, args.rows, args.repeats)
    if not args.no_browser:
        bench_browser(args.repeats)


if __name__ == "__main__":
    main()
