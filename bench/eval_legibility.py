"""Are pictures made by gradient ascent on one embedded model features, or adversarial patterns?

    python bench/eval_legibility.py [--models world-vit world-rn] [--steps 128] [--seed 0] [--units 32]

Class images: for each model, one image per colour x shape class, made seven ways:
``class_image`` at its defaults (MACO with a sharp alpha channel: a natural spectrum's phase over
random backgrounds, random crops of 0.7..1 of the side, quarter turns and mirroring, opacity at a
cost), the same upright (``turns=False``), the previous default (MACO's crops of 0.4..1, upright,
128 steps), the default with a soft alpha (``alpha_sharpness=1``),
``class_image(kind="phase")`` (the same without the alpha),
``class_image(kind="pixel")`` (Simonyan et al., 2014: pixels, L2, a few pixels of jitter) and
``featvis.render`` with lucid's Fourier parameterization and transforms. Every model classifies
every model's images zero-shot over the 30 classes. An image only the model that made it can
read is an adversarial pattern; one the other model reads shows the class. Prints the matrix of
accuracies (rows: the model that made the images; columns: the model that reads them); chance
is 1/30.

Units (``--units N``, the first N units of each model's late layer): a unit's visualization
should look like the scenes that excite it most. Of 600 held-out scenes in the varied style, take
the unit's top 9; the other model embeds the visualization, those 9 and 20 draws of 9 random
scenes. A unit passes when the visualization is nearer (cosine) to the centroid of its top 9
than to every random centroid (and, less strictly, the share of random centroids it beats, and
the share of units nearer their top 9 than to most random centroids).
Two frames are scored the same way in the pictures' place: the unit's next-best scenes (ranks
10 on, as many as the facets), what a real image of the unit reaches, and random scenes (chance).
``--facets N`` embeds N facets per unit (a diversity term apart) and averages them, as a
Microscope page shows several; ``--composite`` fades each picture where it did not matter to
the unit (MACO's transparency); ``--maco`` draws the units with MACO as published (a grey mean
and a fixed spectral slope) instead of the default phase image, whose mean colour is free
(both draw the same random crops); ``--tilt T`` frees the spectral slope by up to T too;
``--alpha C`` gives the pictures an alpha channel whose mean opacity costs C of the score's size;
``--spectrum STYLE`` keeps the mean amplitude spectrum of 400 world scenes in that style instead
of the photographs' power law (MACO keeps its training set's). ``--views V`` averages each
step's gradient over V random draws (MACO's crops per step), for class images (default: what
``class_image`` takes, four on a ViT) and units (default 1). ``--restarts K`` makes each class
image K times from successive seeds and keeps the one its maker scores highest (default:
``class_image``'s, two; the other class-image methods make one).
Prints the share of units that pass, per maker and reader.
--save DIR writes the image grids, --json the figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from eval_world import classify
from PIL import Image

from clip_widgets import ModelSession
from clip_widgets.featvis import objectives as obj
from clip_widgets.featvis.param import (
    MACO_AS_PUBLISHED,
    FourierImage,
    PhaseImage,
    TransparentImage,
    amplitude_spectrum,
)
from clip_widgets.featvis.render import render, render_units
from clip_widgets.featvis.transform import crop_transforms, standard_transforms
from clip_widgets.generate import class_image
from clip_widgets.surgery import whole_image_pixels
from clip_widgets.world import CLASSES, class_prompt, draw_scene

METHODS = ("class_image", "upright", "previous", "soft_alpha", "phase", "pixel", "fourier")
LATE_LAYER = {"vit": "blocks.5.mlp", "resnet": "layer4"}
SCENE_SEED = 3 * 10**9  # seeds no training run draws
SPECTRUM_SEED = 5 * 10**9  # the scenes whose spectrum --spectrum keeps


def make_images(session: ModelSession, method: str, steps: int | None, seed: int = 0, views: int | None = None,
                restarts: int | None = None) -> np.ndarray:  # fmt: skip
    prompts = [class_prompt(c) for c in CLASSES]
    kw = {**({"views": views} if views else {}), **({"steps": steps} if steps else {})}
    if method == "class_image":
        kw |= {"restarts": restarts} if restarts else {}
        return class_image(session, prompts, seed=seed, progress=False, **kw).images
    once = {**kw, "restarts": 1}  # the variants below are compared with one optimization each
    if method == "upright":
        return class_image(session, prompts, seed=seed, turns=False, progress=False, **once).images
    if method == "previous":  # MACO's crops, no turns, 128 steps
        once = {"steps": 128, **once}
        return class_image(session, prompts, seed=seed, transforms=crop_transforms(), progress=False, **once).images
    if method == "soft_alpha":
        return class_image(session, prompts, seed=seed, param_kw={"alpha_sharpness": 1.0}, progress=False,
                           **once).images  # fmt: skip
    if method in ("phase", "pixel"):
        return class_image(session, prompts, kind=method, seed=seed, progress=False, **once).images
    side = session.image_size[0]
    param = FourierImage(len(prompts), side, side, seed=seed)
    objective = obj.text_objective(session, prompts)
    return render(session, objective, param=param, transforms=standard_transforms(side), progress=False,
                  seed=seed, **{"views": 1, **kw}).images  # fmt: skip


def grid(images: np.ndarray, columns: int = 10) -> Image.Image:
    rows = -(-len(images) // columns)
    side = images.shape[1]
    out = Image.new("RGB", (columns * (side + 2), rows * (side + 2)), "white")
    for i, image in enumerate(images):
        out.paste(Image.fromarray(image), ((i % columns) * (side + 2), (i // columns) * (side + 2)))
    return out


@torch.no_grad()
def embed(session: ModelSession, images: list[Image.Image]) -> torch.Tensor:
    pixels = torch.cat([whole_image_pixels(session, image) for image in images])
    return F.normalize(torch.cat([session.encode_image(chunk) for chunk in pixels.split(64)]).float(), dim=-1)


@torch.no_grad()
def unit_responses(session: ModelSession, layer: str, scenes: list[Image.Image], units: int) -> np.ndarray:
    """(scenes, units): each unit's mean activation over positions."""
    rows = []
    for chunk in torch.cat([whole_image_pixels(session, s) for s in scenes]).split(64):
        acts, _ = session.layers.forward(chunk, layer)
        x = acts[layer].float()
        x = x.flatten(2).mean(-1) if x.ndim == 4 else x.mean(1) if x.ndim == 3 else x
        rows.append(x[:, :units].cpu())
    return torch.cat(rows).numpy()


def strict_test(shown: torch.Tensor, centroids: torch.Tensor, randoms: torch.Tensor) -> tuple[float, float, float]:
    """Share of units whose picture (row of ``shown``) is nearer its top scenes' centroid than
    every random set's centroid; the mean share of random sets it is nearer than; and the share
    of units whose picture is nearer its top scenes than most random sets (more than half)."""
    own = (shown * centroids).sum(-1, keepdim=True)
    beats = own > shown @ randoms.T  # (units, random sets)
    most = beats.float().mean(1) > 0.5
    return float(beats.all(1).float().mean()), float(beats.float().mean()), float(most.float().mean())


def unit_parameterization(side: int, engine: dict, alpha: float | None):
    """Each chunk's images: the phase image with ``engine``'s options, with an alpha channel
    whose mean opacity costs ``alpha`` of the score's size if given; every chunk starts from the
    same seed."""

    def make(n: int) -> PhaseImage | TransparentImage:
        seed = torch.Generator().manual_seed(0)
        if alpha is None:
            return PhaseImage(n, side, side, seed=seed, **engine)
        return TransparentImage(n, side, side, opacity_cost=alpha, relative=True, seed=seed, **engine)

    return make


def unit_legibility(makers: dict, readers: dict, units: int, steps: int | None, save: Path | None,
                    facets: int = 1, composite: bool = False, maco: bool = False,
                    tilt: float = 0.0, spectrum: str | None = None, alpha: float | None = None,
                    views: int = 1) -> dict:  # fmt: skip
    scenes = [draw_scene(SCENE_SEED + k, style="varied").image for k in range(600)]
    rng = np.random.default_rng(0)
    random_sets = [rng.choice(len(scenes), 9, replace=False) for _ in range(20)]
    results = {}
    for maker, session in makers.items():
        layer = LATE_LAYER[session.layers.architecture]
        responses = unit_responses(session, layer, scenes, units)
        kw = {"views": views, **({"steps": steps} if steps else {})}
        side = session.image_size[0]
        engine = dict(MACO_AS_PUBLISHED) if maco else {"tilt": tilt}
        if spectrum:  # the mean spectrum of the world's scenes instead of the photographs' power law
            drawn = [draw_scene(SPECTRUM_SEED + k, size=side, style=spectrum).image for k in range(400)]
            engine["spectrum"] = amplitude_spectrum(torch.stack([TF.to_tensor(image) for image in drawn]))
        kw["param"] = unit_parameterization(side, engine, alpha)
        if facets > 1:  # several facets per unit (a diversity term apart), their embeddings averaged
            repeated = [u for u in range(units) for _ in range(facets)]
            objective = lambda name, part: obj.channel(name, part) + 0.05 * obj.diversity(name)  # noqa: E731
            result = render_units(session, layer, repeated, chunk=32 // facets * facets, objective=objective,
                                  progress=False, **kw)  # fmt: skip
        else:
            result = render_units(session, layer, range(units), progress=False, **kw)
        made = result.composite() if composite else result.images
        if save:
            grid(made, columns=8).save(save / f"units-{Path(maker).name}.png")
        rng = np.random.default_rng(1)
        orders = [np.argsort(-responses[:, unit]) for unit in range(units)]
        for reader, other in readers.items():
            scene_embeddings = embed(other, scenes)
            embedded = embed(other, [Image.fromarray(image) for image in made])
            randoms = torch.stack([F.normalize(scene_embeddings[s].mean(0), dim=-1) for s in random_sets])
            centroids = torch.stack([F.normalize(scene_embeddings[order[:9]].mean(0), dim=-1) for order in orders])
            # frames: the unit's next-best scenes (ranks 10 on, as many as the facets) in place of the
            # pictures, the ceiling of "looks like its top scenes" for a real image; random scenes, chance
            frames = {
                "pictures": embedded.view(units, facets, -1).mean(1),
                "its next scenes (ceiling)": torch.stack([scene_embeddings[o[9 : 9 + facets]].mean(0) for o in orders]),
                "random scenes (chance)": torch.stack(
                    [scene_embeddings[rng.choice(o[9:], facets, replace=False)].mean(0) for o in orders]
                ),
            }
            for frame, shown in frames.items():
                passed, beaten, most = strict_test(F.normalize(shown, dim=-1), centroids, randoms)
                key = f"units of {layer}, made by {maker}, read by {reader}"
                key = key if frame == "pictures" else f"{key}, {frame}"
                results[key] = passed
                results[key + ", share of random sets beaten"] = beaten
                results[key + ", nearer than most random sets"] = most
                print(f"units of {layer:<12} made by {Path(maker).name:<18} read by {Path(reader).name:<18}"
                      f"{frame:<26}{passed:6.2f} (random sets beaten: {beaten:.2f}; "
                      f"units nearer than most: {most:.2f})")  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["world-vit", "world-rn"],
        help="embedded names, export directories or checkpoints loadable by ModelSession.load",
    )
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--steps", type=int, default=None, help="optimization steps (default: each method's own)")
    parser.add_argument("--seed", type=int, default=0, help="class images: the optimization's seed")
    parser.add_argument("--units", type=int, default=0, help="score the first N units of a late layer (0: skip)")
    parser.add_argument("--facets", type=int, default=1, help="visualizations per unit, embeddings averaged")
    parser.add_argument("--composite", action="store_true", help="fade each picture where it did not matter (MACO)")
    parser.add_argument("--maco", action="store_true", help="units: MACO as published (grey mean, fixed slope)")
    parser.add_argument("--tilt", type=float, default=0.0, help="units: free the spectral slope by up to this much")
    parser.add_argument("--alpha", type=float, default=None, help="units: an alpha channel, opacity costing this share")
    parser.add_argument(
        "--spectrum",
        choices=("plain", "varied"),
        default=None,
        help="units: keep the mean spectrum of the world's scenes in this style (MACO's recipe)",
    )
    parser.add_argument(
        "--views",
        type=int,
        default=None,
        help="random draws a step (MACO's crops per step; default: class_image's, 1 for units)",
    )
    parser.add_argument(
        "--restarts",
        type=int,
        default=None,
        help="class_image: optimizations per class, the best by the maker's own score kept (default: its own, 2)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (pin them for steady figures)")
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sessions = {name: ModelSession.load(str(Path(name).resolve()) if Path(name).exists() else name, device="cpu")
                for name in args.models}  # fmt: skip
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    results = {}
    for method in args.methods:
        print(f"# {method}: rows made the images, columns read them (30 classes, chance 0.033)")
        print(f"{'':<18}" + "".join(f"{Path(n).name:>18}" for n in sessions))
        for maker, session in sessions.items():
            images = make_images(session, method, args.steps, args.seed, args.views, args.restarts)
            if args.save:
                grid(images).save(args.save / f"{method}-{Path(maker).name}.png")
            row = {}
            for reader, other in sessions.items():
                predicted = classify(other, [Image.fromarray(image) for image in images])
                row[reader] = float(np.mean([p == t for p, t in zip(predicted, CLASSES, strict=True)]))
            results[f"{method}, made by {maker}"] = row
            print(f"{Path(maker).name:<18}" + "".join(f"{row[r]:>18.2f}" for r in sessions))
    if args.units:
        results |= unit_legibility(sessions, sessions, args.units, args.steps, args.save, args.facets, args.composite,
                                  args.maco, args.tilt, args.spectrum, args.alpha, args.views or 1)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
