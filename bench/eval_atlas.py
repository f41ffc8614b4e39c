"""How much of the atlas square holds activations, and how much of the neighbourhoods survive.

    python bench/eval_atlas.py [--model world-vit] [--layer blocks.3] [--images 160] [--per-image 4]

Collects the notebook's activations (random patch tokens of held-out scenes), lays them out with
UMAP and prints, for several layout settings, the share of filled cells at 4 x 4, 8 x 8 (at
least 3 activations, as the notebook bins it; 2 elsewhere, as its widget does) and 16 x 16, and
the share of each activation's 10 nearest neighbours (cosine, in activation space) that are
among its 10 nearest in the layout.
The first row is the layout before the change (UMAP min_dist 0.01, linear scaling); the row
marked * is ``atlas.layout``'s default.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from clip_widgets import ModelSession, atlas
from clip_widgets.world import draw_scene

SETTINGS = [(0.01, 0.0), (0.01, 1.0), (0.3, 0.0), (0.3, 0.5), (0.3, 1.0), (0.8, 1.0)]


def neighbours_kept(activations: np.ndarray, coords: np.ndarray, k: int = 10) -> float:
    unit = activations / np.linalg.norm(activations, axis=1, keepdims=True)
    near = np.argsort(-(unit @ unit.T), 1)[:, 1 : k + 1]
    distances = ((coords[:, None] - coords[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    shown = np.argsort(distances, 1)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(near, shown, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world-vit")
    parser.add_argument("--layer", default="blocks.3")
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--per-image", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import umap  # noqa: PLC0415

    session = ModelSession.load(args.model, device="cpu")
    work = Path(tempfile.mkdtemp())
    for i in range(args.images):
        draw_scene(10**7 + i).image.save(work / f"scene_{i:03d}.png")
    store = atlas.collect_activations(session, work, args.layer, work / "acts", per_image=args.per_image,
                                      progress=False)  # fmt: skip
    acts = np.asarray(store.activations, dtype=np.float32)
    print(f"{len(acts)} activations of {args.layer} ({args.model})")
    print(f"{'UMAP min_dist':>14} {'uniform':>8} {'4x4':>6} {'8x8':>6} {'16x16':>6} {'kNN kept':>9}")
    for min_dist, uniform in SETTINGS:
        reducer = umap.UMAP(n_neighbors=15, min_dist=min_dist, metric="cosine", random_state=0, n_jobs=1)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore")
            coords = atlas.normalize_layout(reducer.fit_transform(acts), 0.01, uniform)
        fills = [atlas.bin_grid(coords, acts, size, min_count=3 if size == 8 else 2).filled.mean()
                 for size in (4, 8, 16)]  # fmt: skip
        mark = "*" if (min_dist, uniform) == (atlas.LAYOUT_MIN_DIST, atlas.LAYOUT_UNIFORM) else " "
        print(f"{min_dist:>14} {uniform:>8}{mark}" + "".join(f"{f:>6.2f} " for f in fills)
              + f"{neighbours_kept(acts, coords):>9.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
