"""Patch attacks from a class activation atlas, the Activation Atlas article's experiment (Carter
et al., Distill 2019) on the embedded `world-rn-robust`.

    python bench/eval_patch_attack.py [--layer layer3] [--scenes 300] [--per-target 40] [--grid 8]

Builds an atlas of ``--layer`` over ``--scenes`` held-out world scenes (4 random positions each;
layout, icons and attribution to the 30 class prompts cached under ``--cache``; gradient x
activation by default, the article's attribution, which a convnet supports). For each target
class B, the patch is the icon of the atlas cell whose activations push B most
(:func:`clip_widgets.patch_attack.class_patch`). It is pasted into single-object scenes of classes
A that share neither colour nor shape with B, at three sizes and at the best of the four corners.
Two controls at the same size and their own best corner: uniform noise, and B itself drawn (B's
shape in B's colour on grey, what a legible patch of B could do). Prints, per scale, the share
of scenes classified correctly before whose prediction moves to B, to any class of B's colour,
and to any other class; per target and pooled (the last table in Markdown). Writes the patches
and a few attacked scenes to ``<cache>/patches_<layer>_<grid>.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from clip_widgets import ModelSession, atlas
from clip_widgets.patch_attack import CORNERS, class_patch, paste_patch, patch_attack
from clip_widgets.world import CLASSES, COLOURS, class_prompt, draw_scene, shape_polygon

SEED_BASE = 2 * 10**9 + 7 * 10**6  # seeds the training never uses (bench/eval_world.py's range)
TARGETS = ("red star", "green circle", "blue triangle", "yellow cross", "purple square", "orange star")
SCALES = (0.2, 0.3, 0.4)


def build(session: ModelSession, args: argparse.Namespace) -> atlas.Atlas:
    root = args.cache / f"{session.name}_{args.layer}_{args.scenes}"
    scenes = root / "scenes"
    if not scenes.is_dir() or len(list(scenes.glob("*.png"))) < args.scenes:
        scenes.mkdir(parents=True, exist_ok=True)
        for i in range(args.scenes):
            draw_scene(SEED_BASE + i, size=session.image_size[0], word_probability=0.0).image.save(
                scenes / f"scene_{i:04d}.png"
            )
    store = atlas.collect_activations(session, scenes, args.layer, root / "acts", per_image=4, progress=False)
    prompts = [class_prompt(c) for c in CLASSES]
    return atlas.build_atlas(session, store, sizes=(args.grid,), min_count=3, classes=prompts, icon_steps=64,
                             attribution=args.attribution, attribution_steps=args.steps,
                             progress=args.progress)  # fmt: skip


def drawn(target: str, side: int = 128) -> np.ndarray:
    """B drawn plainly: its shape in its colour, nearly filling a grey square."""
    colour, shape = target.split()
    picture = Image.new("RGB", (side, side), (128, 128, 128))
    outline = shape_polygon(shape, (side / 2, side / 2), 0.44 * side, 0.0 if shape == "circle" else 0.3)
    ImageDraw.Draw(picture).polygon(outline, fill=COLOURS[colour])
    return np.asarray(picture)


def sources_for(target: str, count: int) -> tuple[list[Image.Image], list[str]]:
    """Single-object scenes of the classes that share neither colour nor shape with ``target``."""
    colour, shape = target.split()
    others = [c for c in CLASSES if c.split()[0] != colour and c.split()[1] != shape]
    rng = np.random.default_rng(CLASSES.index(target))
    labels = [others[k] for k in rng.choice(len(others), count)]
    offset = SEED_BASE + 10**6 + 1000 * CLASSES.index(target)
    images = [draw_scene(offset + k, spec=[tuple(a.split())], size=128, word_probability=0.0).image
              for k, a in enumerate(labels)]  # fmt: skip
    return images, [class_prompt(a) for a in labels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world-rn-robust")
    parser.add_argument("--layer", default="layer3")
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--per-target", type=int, default=40)
    parser.add_argument("--grid", type=int, default=8, help="the atlas grid the patch's cell is chosen in")
    parser.add_argument("--attribution", default="gradient_x_activation")
    parser.add_argument("--steps", type=int, default=4, help="integrated-gradient steps")
    parser.add_argument("--relative", action="store_true", help="choose by the push to B beyond the mean push")
    parser.add_argument("--cache", type=Path, default=Path("runs/patch_attack"))
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    session = ModelSession.load(args.model, device="cpu")
    full = build(session, args)
    classes = [class_prompt(c) for c in CLASSES]
    columns = ("icon -> B", "noise -> B", "drawn B -> B", "icon -> B's colour", "icon: any", "noise: any")
    totals, eligible, sheet = np.zeros((len(columns), len(SCALES))), 0, []
    print(f"# {session.name} {args.layer}, {len(full.store)} activations, cells of the {args.grid} x {args.grid} grid"
          + (", relative" if args.relative else ""))  # fmt: skip
    print("per target, at scales " + " / ".join(f"{s:g}" for s in SCALES) + ": " + "; ".join(columns))
    for target in TARGETS:
        prompt = class_prompt(target)
        patch = class_patch(full, prompt, grid_size=args.grid, relative=args.relative)
        images, labels = sources_for(target, args.per_target)
        run = {"scales": SCALES, "labels": labels, "progress": False}
        report = patch_attack(session, images, classes, prompt, patch.image, **run)
        reference = patch_attack(session, images, classes, prompt, drawn(target), control=None, **run)
        colour = np.array([c.split()[0] == target.split()[0] for c in CLASSES])
        rates = np.stack([report.target_rate(), report.target_rate("noise"), reference.target_rate(),
                          report.share(colour[report.predictions()]), report.flip_rate(),
                          report.flip_rate("noise")])  # fmt: skip
        n = int(report.eligible.sum())
        totals += np.nan_to_num(rates) * n
        eligible += n
        used = np.bincount(report.best_corner()[-1][report.eligible], minlength=4)
        corners = ", ".join(f"{c} {u}" for c, u in zip(CORNERS, used, strict=True))
        print(f"{target:<14} cell {patch.cell} ({patch.count} acts, score {patch.score:.2f}), n={n}: "
              + "; ".join("/".join(f"{v:.2f}" for v in row) for row in rates)
              + f"; best corners at the largest size: {corners}")  # fmt: skip
        best = report.best_corner()[1]
        shown = [np.asarray(Image.fromarray(patch.image).resize((128, 128))), drawn(target)]
        shown += [np.asarray(paste_patch(images[k], patch.image, scale=0.3, corner=CORNERS[best[k]])) for k in range(3)]
        sheet.append(np.concatenate(shown, 1))
    print(f"\n| patch side (share of the shorter side), {eligible} scenes | " + " | ".join(columns) + " |")
    print("| ---: |" + " ---: |" * len(columns))
    for s, scale in enumerate(SCALES):
        print(f"| {scale:g} | " + " | ".join(f"{v:.3f}" for v in totals[:, s] / max(eligible, 1)) + " |")
    path = args.cache / f"patches_{args.layer}_{args.grid}{'_relative' if args.relative else ''}.png"
    Image.fromarray(np.concatenate(sheet, 0)).save(path)
    print(f"\nper target: the atlas patch, B drawn, three attacked scenes at scale 0.3: {path}")


if __name__ == "__main__":
    main()
