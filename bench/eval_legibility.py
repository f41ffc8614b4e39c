"""Are pictures made by gradient ascent on one embedded model features, or adversarial patterns?

    python bench/eval_legibility.py [--models world-vit world-rn] [--steps 128]

For each model, one class image per colour x shape class (``generate.class_image`` and
``featvis.render`` on the text objective, each at its defaults), then every model classifies
every model's images zero-shot over the 30 classes. An image that only the model that made it
can read is an adversarial pattern; one the other model reads shows the class. Prints the
matrix of accuracies (rows: the model that made the images; columns: the model that reads
them); chance is 1/30. --save DIR writes the image grids.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from eval_world import classify
from PIL import Image

from clip_widgets import ModelSession
from clip_widgets.featvis import objectives as obj
from clip_widgets.featvis.render import render
from clip_widgets.generate import class_image
from clip_widgets.world import CLASSES, class_prompt


def make_images(session: ModelSession, method: str, steps: int | None) -> np.ndarray:
    prompts = [class_prompt(c) for c in CLASSES]
    kw = {"steps": steps} if steps else {}
    if method == "class_image":
        return class_image(session, prompts, progress=False, **kw).images
    return render(session, obj.text_objective(session, prompts), batch=len(prompts), progress=False, **kw).images


def grid(images: np.ndarray, columns: int = 10) -> Image.Image:
    rows = -(-len(images) // columns)
    side = images.shape[1]
    out = Image.new("RGB", (columns * (side + 2), rows * (side + 2)), "white")
    for i, image in enumerate(images):
        out.paste(Image.fromarray(image), ((i % columns) * (side + 2), (i // columns) * (side + 2)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["world-vit", "world-rn"],
                        help="embedded names, export directories or checkpoints loadable by ModelSession.load")
    parser.add_argument("--methods", nargs="+", default=["class_image", "render"], choices=["class_image", "render"])
    parser.add_argument("--steps", type=int, default=None, help="optimization steps (default: each method's own)")
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    sessions = {name: ModelSession.load(name, device="cpu") for name in args.models}
    results = {}
    for method in args.methods:
        print(f"# {method}: rows made the images, columns read them (30 classes, chance 0.033)")
        print(f"{'':<14}" + "".join(f"{Path(n).name:>14}" for n in sessions))
        for maker, session in sessions.items():
            images = make_images(session, method, args.steps)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                grid(images).save(args.save / f"{method}-{Path(maker).name}.png")
            row = {}
            for reader, other in sessions.items():
                predicted = classify(other, [Image.fromarray(image) for image in images])
                row[reader] = float(np.mean([p == t for p, t in zip(predicted, CLASSES, strict=True)]))
            results[f"{method}, made by {maker}"] = row
            print(f"{Path(maker).name:<14}" + "".join(f"{row[r]:>14.2f}" for r in sessions))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
