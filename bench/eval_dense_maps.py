"""Score every dense-map method against the shapes world's ground truth masks.

    python bench/eval_dense_maps.py [--model world-vit | --model world-rn] [--scenes 100]
                                    [--methods raw surgery ...] [--background "a background"] [--json out.json]

On the held-out 2-3-object scenes ``bench/eval_world.py`` scores CLIP Surgery on (the same seeds
and scoring functions), with all 30 colour x shape classes as the label set, for each method of
:func:`clip_widgets.dense_maps.dense_maps`:

* pointing game: the maximum of the object's label map falls inside the object's mask;
* mean IoU over objects of the label's map, each map stretched on its own (min-max, as
  ``eval_world``), thresholded at the best threshold for the method and at a fixed 0.5;
* the pointing game and best-threshold IoU again with each patch's values centred over the
  labels (its mean over the 30 labels subtracted), which removes what all labels share, as
  feature surgery does and as an argmax over labels ignores;
* segmentation mean IoU: every pixel takes the label with the highest token value (bilinearly
  upsampled), the object's IoU is that of its label's pixels with its mask; without a
  background class (the 30 classes only) and with one (a 31st prompt, ``--background``).

Methods that do not apply to the model's tower are listed as such. Prints a table and, with
--json, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from eval_world import (
    THRESHOLDS,
    best_threshold,
    iou,
    load_session,
    localization_scene,
    pointing_hit,
    scored_objects,
    threshold_ious,
)

from clip_widgets.dense import METHODS, TOWER_NAMES, dense_maps, method_names, tower_of
from clip_widgets.world import CLASSES, class_prompt

FIXED_THRESHOLD = 0.5


def upsample(tokens: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Token values (L, h, w) bilinearly resized to ``size`` (L, H, W), as the maps are."""
    grid = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.float32))[None]
    return F.interpolate(grid, size=size, mode="bilinear")[0].numpy()


def per_label_maps(values: np.ndarray) -> np.ndarray:
    """Each label's map stretched from its own minimum to its maximum."""
    low = values.min(axis=(1, 2), keepdims=True)
    high = values.max(axis=(1, 2), keepdims=True)
    return (values - low) / np.maximum(high - low, 1e-12)


def score_method(session, method: str, scenes: int, background: str) -> dict[str, float]:
    labels = [class_prompt(c) for c in CLASSES]
    hits, ious, fixed, segment, segment_bg = [], [[] for _ in THRESHOLDS], [], [], []
    centred_hits, centred_ious = [], [[] for _ in THRESHOLDS]
    start = time.perf_counter()
    for k in range(scenes):
        scene = localization_scene(k)
        size = scene.image.size[::-1]
        with_bg = upsample(dense_maps(session, scene.image, [*labels, background], method=method).tokens, size)
        if METHODS[method].kind == "surgery":  # feature surgery couples the labels: score the 30 on their own
            values = upsample(dense_maps(session, scene.image, labels, method=method).tokens, size)
        else:  # the other methods' label maps do not depend on the other labels
            values = with_bg[: len(labels)]
        maps = per_label_maps(values)
        centred = per_label_maps(values - values.mean(axis=0, keepdims=True))
        winner, winner_bg = values.argmax(axis=0), with_bg.argmax(axis=0)
        for obj in scored_objects(scene):
            index = CLASSES.index(obj.label)
            hits.append(pointing_hit(maps[index], obj.mask))
            for i, value in enumerate(threshold_ious(maps[index], obj.mask)):
                ious[i].append(value)
            fixed.append(iou(maps[index] >= FIXED_THRESHOLD, obj.mask))
            centred_hits.append(pointing_hit(centred[index], obj.mask))
            for i, value in enumerate(threshold_ious(centred[index], obj.mask)):
                centred_ious[i].append(value)
            segment.append(iou(winner == index, obj.mask))
            segment_bg.append(iou(winner_bg == index, obj.mask))
    best_iou, threshold = best_threshold(ious)
    centred_iou, centred_threshold = best_threshold(centred_ious)
    return {
        "pointing": float(np.mean(hits)),
        "miou_best": best_iou,
        "best_threshold": threshold,
        "pointing_centred": float(np.mean(centred_hits)),
        "miou_best_centred": centred_iou,
        "best_threshold_centred": centred_threshold,
        "miou_fixed": float(np.mean(fixed)),
        "seg_miou": float(np.mean(segment)),
        "seg_miou_bg": float(np.mean(segment_bg)),
        "objects": len(hits),
        "seconds_per_scene": (time.perf_counter() - start) / max(scenes, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world-vit")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--arch", choices=["vit", "resnet"], default="vit", help="the checkpoint's image tower")
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--background", default="a background", help="the prompt of the background class")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    session = load_session(args)
    tower = tower_of(session.model)
    applicable = method_names(tower)
    results: dict[str, dict | str] = {}
    print(f"# {session!r}, {args.scenes} scenes")
    print("| method | pointing | mIoU, best threshold | mIoU at 0.5 | pointing, centred | mIoU, best, centred "
          "| seg. mIoU | seg. mIoU + background |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for method in args.methods:
        title = f"{METHODS[method].title} (`{method}`)"
        if method not in applicable:
            needs = " or ".join(TOWER_NAMES[t] for t in METHODS[method].towers)
            results[method] = f"does not apply ({needs} only)"
            print(f"| {title} | does not apply ({needs} only) | | | | | | |")
            continue
        r = score_method(session, method, args.scenes, args.background)
        results[method] = r
        cells = [f"{r['pointing']:.3f}", f"{r['miou_best']:.3f} ({r['best_threshold']:.2f})", f"{r['miou_fixed']:.3f}",
                 f"{r['pointing_centred']:.3f}", f"{r['miou_best_centred']:.3f} ({r['best_threshold_centred']:.2f})",
                 f"{r['seg_miou']:.3f}", f"{r['seg_miou_bg']:.3f}"]  # fmt: skip
        print(f"| {title} | {' | '.join(cells)} |", flush=True)
    if args.json:
        meta = {"model": str(session.name), "scenes": args.scenes, "background": args.background}
        args.json.write_text(json.dumps({"meta": meta, "methods": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
