"""Do an atlas's icons look like the patches their cells hold?

    python bench/eval_atlas_icons.py [--model world-rn-robust] [--layer layer3] [--reader world-rn]
        [--images 300] [--per-image 4] [--size 8] [--steps 64] [--variants default before ...]

Collects random spatial activations of held-out scenes (as the atlas notebook does), lays them out
and bins them at ``--size`` x ``--size`` (at least 3 activations a cell). Each activation comes from
one position of one scene: its patch is the square of ``--crop`` of the scene's side centred on that
position. A reader model embeds every patch and every icon (the maker itself, and ``--reader``).
Per icon variant, two figures over the filled cells:

- *cell found*: the icon is nearer (cosine) to the centroid of its own cell's patches than to the
  centroid of every other filled cell (chance: one over the number of cells);
- *beats random*: the icon is nearer to its cell's centroid than to each of 20 centroids of as many
  random patches (the strict test ``eval_legibility`` uses for units).

Two rows frame the icons: *one member patch* (the patch of the cell's activation nearest its
mean, as an icon: roughly the best a picture can do) and *a random patch* (a patch from another
cell: chance). Variants (``atlas_icons`` settings, see ``VARIANTS``): ``default`` (the library's:
dot x cosine^4, not whitened), ``before`` (whitened dot x cosine, the objective icons had before),
other powers, whitened with the default power, and ``center`` (the objective at the middle
position only, as lucid's atlas does).
``--grid-scenes N`` also scores activation-grid icons (one per position of one scene, the same
objective) with the power 1 and the default, each against its own patch among all the positions'
patches of N scenes. --save DIR writes each variant's atlas as a PNG.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from eval_legibility import embed
from PIL import Image

from clip_widgets import ModelSession, atlas
from clip_widgets.activation_grid import activation_grid
from clip_widgets.atlas_render import atlas_icons, render_atlas, whitening_matrix
from clip_widgets.examples import positions_of
from clip_widgets.featvis.objectives import ICON_POWER
from clip_widgets.featvis.param import FourierImage
from clip_widgets.featvis.transform import standard_transforms
from clip_widgets.world import draw_scene

VARIANTS = {  # atlas_icons settings; "whitening" is the ridge of whitening_matrix (absent: not whitened)
    "default": {},
    "before": {"whitening": 1e-2, "power": 1.0},  # the objective icons had until power 4 was measured
    "power1": {"power": 1.0},
    "power2": {"power": 2.0},
    "power8": {"power": 8.0},
    "whitened": {"whitening": 1e-2},
    "whitened-ridge1": {"whitening": 1.0},
    "center": {"where": "center"},
    "fourier": {"fourier": True},  # lucid's parameterization and transforms instead of the phase image
}
SCENE_SEED = 10**7  # the atlas notebook's held-out scenes


def patch(scene: Image.Image, row: int, col: int, grid: tuple[int, int], crop: float) -> Image.Image:
    """The square of ``crop`` of the side centred on position (row, col), shifted inside the scene."""
    width, height = scene.size
    side = round(crop * min(width, height))
    cx, cy = (col + 0.5) * width / grid[1], (row + 0.5) * height / grid[0]
    left = int(np.clip(round(cx - side / 2), 0, width - side))
    top = int(np.clip(round(cy - side / 2), 0, height - side))
    return scene.crop((left, top, left + side, top + side))


def scores(icons: torch.Tensor, centroids: torch.Tensor, randoms: torch.Tensor) -> tuple[float, float]:
    """(cell found, beats every random centroid) shares; row i of ``icons`` belongs to centroid i."""
    near = icons @ centroids.T
    found = (near.argmax(1) == torch.arange(len(icons))).float().mean()
    own = near.diagonal()
    beats = (own[:, None] > torch.einsum("cd,crd->cr", icons, randoms)).all(1).float().mean()
    return float(found), float(beats)


def grid_icons(maker: ModelSession, layer: str, readers: dict, scenes: int, steps: int, crop: float) -> dict:
    """Activation-grid icons (one per position of one scene) with the cosine power 1 and the
    default: is each icon nearer its own patch than every other position's patch of ``scenes``
    scenes (chance: one over the positions), and what share of the patches are nearer to it."""
    results = {}
    for power in (1.0, ICON_POWER):
        icons, patches = [], []
        for i in range(scenes):
            made = activation_grid(maker, draw_scene(SCENE_SEED + i).image, layer, icon_steps=steps,
                                   icon_power=power, progress=False)  # fmt: skip
            picture = Image.fromarray(made.image)  # the scene as the model saw it
            icons += [Image.fromarray(icon) for icon in made.icons]
            rows, cols = made.grid
            patches += [patch(picture, r, c, made.grid, crop) for r in range(rows) for c in range(cols)]
        for name, reader in readers.items():
            near = embed(reader, icons) @ embed(reader, patches).T
            found = float((near.argmax(1) == torch.arange(len(icons))).float().mean())
            nearer = float((near > near.diagonal()[:, None]).float().mean())
            key = f"grid icons, power {power:g}, read by {name}"
            results[key] = {"own patch found": found, "patches nearer": nearer}
            print(f"grid icons, power {power:g}, read by {name:<16} own patch found {found:.3f}, "
                  f"patches nearer than its own {nearer:.3f} (of {len(icons)})")  # fmt: skip
    return results


def atlas_scores(maker: ModelSession, readers: dict, args: argparse.Namespace) -> dict:
    """The atlas's icons per variant, and the two frames, against their cells' patches."""
    work = Path(tempfile.mkdtemp())
    scenes = [draw_scene(SCENE_SEED + i).image for i in range(args.images)]
    store = atlas.collect_activations(maker, scenes, args.layer, work / "acts", per_image=args.per_image,
                                      progress=False)  # fmt: skip
    acts = np.asarray(store.activations, np.float32)
    _, grid_shape = positions_of(torch.zeros(1, *maker.layers[args.layer].shape))  # the layer's position grid
    grid = atlas.bin_grid(atlas.layout(acts, seed=0), acts, args.size, min_count=3)
    cells = np.argwhere(grid.filled)
    members = [grid.members(r, c) for r, c in cells]
    origins = store.origins  # (scene, row, col) of each activation
    patches = [patch(scenes[origins[k, 0]], origins[k, 1], origins[k, 2], grid_shape, args.crop)
               for k in range(len(acts))]  # fmt: skip
    print(f"{args.model} {args.layer}: {len(acts)} activations on a {grid_shape[0]}x{grid_shape[1]} grid, "
          f"{len(cells)} of {args.size * args.size} cells filled; patches {args.crop:g} of the side")  # fmt: skip

    rng = np.random.default_rng(0)
    unit_acts = acts / np.linalg.norm(acts, axis=1, keepdims=True)
    medoids = []
    for (r, c), rows in zip(cells, members, strict=True):
        mean = grid.means[r, c] / np.linalg.norm(grid.means[r, c])
        medoids.append(rows[np.argmax(unit_acts[rows] @ mean)])
    strangers = [rng.choice(np.setdiff1d(np.arange(len(acts)), rows)) for rows in members]

    pictures: dict[str, list[Image.Image]] = {}
    for name in args.variants:
        settings = dict(VARIANTS[name])
        ridge = settings.pop("whitening", None)
        white = None if ridge is None else whitening_matrix(acts, eps=ridge)
        if settings.pop("fourier", False):
            side = maker.image_size[0]
            settings |= {"param": lambda n: FourierImage(n, side, side, seed=0),  # noqa: B023
                         "transforms": standard_transforms(side)}  # fmt: skip
        icons = atlas_icons(maker, args.layer, grid, whitening=white, steps=args.steps, progress=False, **settings)
        pictures[name] = [Image.fromarray(icons[r, c]) for r, c in cells]
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            Image.fromarray(render_atlas(icons)).save(args.save / f"atlas-{name}.png")
    pictures["one member patch"] = [patches[k] for k in medoids]
    pictures["a random patch"] = [patches[k] for k in strangers]

    results = {}
    print(f"{'icons':<18} {'reader':<16} {'cell found':>10} {'beats random':>13}")
    for reader_name, reader in readers.items():
        patch_embeddings = embed(reader, patches)
        # the member patch shown as an icon is left out of its own cell's centroid
        centroids, randoms = [], []
        for rows, shown in zip(members, medoids, strict=True):
            centroids.append(F.normalize(patch_embeddings[rows[rows != shown]].mean(0), dim=-1))
            draws = [rng.choice(len(patches), len(rows) - 1, replace=False) for _ in range(20)]
            randoms.append(torch.stack([F.normalize(patch_embeddings[d].mean(0), dim=-1) for d in draws]))
        centroids_t, randoms_t = torch.stack(centroids), torch.stack(randoms)
        for name, images in pictures.items():
            found, beats = scores(embed(reader, images), centroids_t, randoms_t)
            results[f"{name}, read by {reader_name}"] = {"cell found": found, "beats random": beats}
            print(f"{name:<18} {reader_name:<16} {found:>10.2f} {beats:>13.2f}")
        print(f"{'(chance)':<18} {reader_name:<16} {1 / len(cells):>10.2f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world-rn-robust")
    parser.add_argument("--layer", default="layer3")
    parser.add_argument("--reader", default="world-rn")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--per-image", type=int, default=4)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--crop", type=float, default=0.5)
    parser.add_argument("--variants", nargs="*", default=["default", "before"], choices=list(VARIANTS))
    parser.add_argument("--grid-scenes", type=int, default=0, help="also score activation-grid icons of N scenes")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    maker = ModelSession.load(args.model, device="cpu")
    readers = {args.model: maker, args.reader: ModelSession.load(args.reader, device="cpu")}
    results = atlas_scores(maker, readers, args) if args.variants else {}
    if args.grid_scenes:
        results |= grid_icons(maker, args.layer, readers, args.grid_scenes, args.steps, args.crop)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
