"""Point prompts to masks, scored against the shapes world's masks for every dense-map method.

    python bench/eval_masks.py [--model world-vit | --model world-rn] [--scenes 40] [--methods surgery ...]

On the held-out 2-3-object scenes of ``bench/eval_world.py`` (drawn at 128 px here, so a mask
has room to be better than a patch), for each method of :func:`clip_widgets.dense_maps`:
:func:`clip_widgets.segment.label_mask` with the offline random-walker segmenter, once per
object present (the labels: the classes present plus two absent ones) and once per absent label.

* mask IoU with the object's mask, mean over objects; the share of objects with IoU >= 0.5;
* the share of absent labels whose mask is empty (no object point: their map stays cold);
* with ``--centre``, each patch's values are centred over the labels first (``dense_maps``'s
  ``centre=True``; Surgery does its own centring and ignores it);
* mean IoU of a control: the random walker seeded at the object's own centre pixel (an oracle
  point; what the segmenter can do with perfect points) and with random points (a null).
"""

from __future__ import annotations

import numpy as np
from eval_world import EVAL_SEED_BASE, iou, load_session, model_parser

from clip_widgets.dense import method_names, tower_of
from clip_widgets.segment import RandomWalkerSegmenter, label_mask
from clip_widgets.world import CLASSES, class_prompt, draw_scene


def scenes(count: int) -> list:
    return [draw_scene(EVAL_SEED_BASE + 10**6 + k, objects=(2, 3), word_probability=0.0, size=128)
            for k in range(count)]  # fmt: skip


def inside_point(mask: np.ndarray) -> np.ndarray:
    """The mask pixel nearest to its centroid, as an ``(x, y)`` point."""
    ys, xs = np.nonzero(mask)
    k = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return np.array([[xs[k], ys[k]]])


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--centre", action="store_true", help="centre each patch over the labels (dense_maps)")
    args = parser.parse_args()
    session = load_session(args)
    methods = args.methods or method_names(tower_of(session.model))
    walker = RandomWalkerSegmenter()
    drawn = scenes(args.scenes)
    rng = np.random.default_rng(0)
    oracle, null = [], []
    for scene in drawn:
        image = np.asarray(scene.image)
        for obj in scene.objects:
            if obj.mask.sum() < 4:
                continue
            oracle.append(iou(walker(image, inside_point(obj.mask), [1]), obj.mask))
            point = np.array([[rng.integers(0, image.shape[1]), rng.integers(0, image.shape[0])]])
            null.append(iou(walker(image, point, [1]), obj.mask))
    options = {"centre": True} if args.centre else {}
    print(f"# {session!r}, {args.scenes} scenes{', centred' if args.centre else ''}")
    print(f"{'method':<12} {'mask IoU':>9} {'IoU >= 0.5':>11} {'absent empty':>13}")
    for method in methods:
        ious, empty = [], []
        for k, scene in enumerate(drawn):
            present = sorted({f"{o.colour} {o.shape}" for o in scene.objects})
            others = [c for c in CLASSES if c not in present]
            absent = list(np.random.default_rng(k).choice(others, size=2, replace=False))
            labels = [class_prompt(c) for c in [*present, *absent]]
            for obj in scene.objects:
                if obj.mask.sum() < 4:
                    continue
                label = class_prompt(f"{obj.colour} {obj.shape}")
                mask = label_mask(session, scene.image, label, labels, method=method, segmenter=walker, **options)[0]
                ious.append(iou(mask, obj.mask))
            for name in absent:
                mask = label_mask(
                    session, scene.image, class_prompt(name), labels, method=method, segmenter=walker, **options
                )[0]
                empty.append(not mask.any())
        print(f"{method:<12} {np.mean(ious):9.3f} {np.mean(np.array(ious) >= 0.5):11.3f} {np.mean(empty):13.3f}")
    print(f"{'oracle point':<12} {np.mean(oracle):9.3f} {np.mean(np.array(oracle) >= 0.5):11.3f}")
    print(f"{'random point':<12} {np.mean(null):9.3f} {np.mean(np.array(null) >= 0.5):11.3f}")


if __name__ == "__main__":
    main()
