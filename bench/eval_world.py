"""Score the embedded model and CLIP Surgery against the shapes world's ground truth.

    python bench/eval_world.py [--model world-vit | --model world-rn | --checkpoint runs/world/checkpoint.pt
                                [--arch resnet]] [--scenes 300]

* zero-shot accuracy on held-out single-object scenes over the 30 colour x shape classes, and
  over colour alone and shape alone (read off the same 30-way prediction);
* CLIP Surgery vs raw CLIP maps on held-out multi-object scenes, with all 30 classes as the
  label set: pointing game (the map's maximum falls inside the named object's mask) and mean IoU
  of the thresholded map with the mask at the threshold that is best for each method;
* the heat Surgery maps put on absent labels (each scene scored against all 30 classes): the
  mean map value and the share of absent labels whose map reaches 0.5 somewhere, with each map
  stretched on its own (the reference's min-max) and on the joint scale with a floor at 0 (what
  ``surgery_maps`` draws by default), beside the same for present labels;
* the typographic effect: the share of single-object scenes whose zero-shot class flips when
  the name of another shape is written into the same scene, and how often it flips to the
  written shape.

Scenes come from seeds the training never uses. Prints a table and, with --json, writes it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from clip_widgets.session import ModelSession
from clip_widgets.surgery import dense_tokens, feature_surgery, similarity_to_maps, whole_image_pixels
from clip_widgets.world import CLASSES, SHAPES, class_prompt, draw_scene

EVAL_SEED_BASE = 2 * 10**9
THRESHOLDS = np.linspace(0.05, 0.95, 19)


def load_session(args) -> ModelSession:
    if args.checkpoint:
        from clip_widgets.train_world import ARCHITECTURES, preprocess_cfg  # noqa: PLC0415

        state = torch.load(args.checkpoint, weights_only=True, map_location="cpu")["model"]
        model_cfg = ARCHITECTURES[args.arch]
        session = ModelSession.from_config({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg(model_cfg)},
                                           name="checkpoint")  # fmt: skip
        session.model.load_state_dict(state)
        return session
    return ModelSession.load(args.model)


@torch.no_grad()
def classify(session: ModelSession, images: list) -> list[str]:
    text = session.encode_text([class_prompt(c) for c in CLASSES])
    pixels = torch.cat([whole_image_pixels(session, image) for image in images])
    features = session.encode_image(pixels)
    return [CLASSES[i] for i in (features @ text.T).argmax(-1).tolist()]


def zero_shot(session: ModelSession, scenes: int) -> dict[str, float]:
    truth = [CLASSES[k % len(CLASSES)] for k in range(scenes)]
    images = [
        draw_scene(EVAL_SEED_BASE + k, spec=[tuple(t.split())], word_probability=0.0).image for k, t in enumerate(truth)
    ]
    predicted = classify(session, images)
    pairs = [(p.split(), t.split()) for p, t in zip(predicted, truth, strict=True)]
    return {
        "zero-shot accuracy, 30 classes": float(np.mean([p == t for p, t in pairs])),
        "zero-shot accuracy, colour": float(np.mean([p[0] == t[0] for p, t in pairs])),
        "zero-shot accuracy, shape": float(np.mean([p[1] == t[1] for p, t in pairs])),
    }


def localization_scene(k: int):
    """The ``k``-th held-out 2-3-object scene the localization scores use (no writing)."""
    return draw_scene(EVAL_SEED_BASE + 10**6 + k, objects=(2, 3), word_probability=0.0)


def scored_objects(scene) -> list:
    """The objects of a scene that are scored: those with at least 4 visible pixels."""
    return [obj for obj in scene.objects if obj.mask.sum() >= 4]


def iou(predicted: np.ndarray, mask: np.ndarray) -> float:
    return float(np.logical_and(predicted, mask).sum() / max(np.logical_or(predicted, mask).sum(), 1))


def pointing_hit(heat: np.ndarray, mask: np.ndarray) -> bool:
    """The pointing game for one object: does the map's maximum fall inside its mask?"""
    return bool(mask.flat[int(heat.argmax())])


def threshold_ious(heat: np.ndarray, mask: np.ndarray, thresholds=THRESHOLDS) -> list[float]:
    """IoU of the map thresholded at each of ``thresholds`` (map >= t) with the mask."""
    return [iou(heat >= t, mask) for t in thresholds]


def best_threshold(ious: list[list[float]], thresholds=THRESHOLDS) -> tuple[float, float]:
    """From per-threshold IoU lists (one list of objects per threshold): the best mean IoU and its threshold."""
    per_threshold = [float(np.mean(v)) for v in ious]
    best = int(np.argmax(per_threshold))
    return per_threshold[best], float(thresholds[best])


@torch.no_grad()
def localization(session: ModelSession, scenes: int) -> dict[str, float]:
    text = session.encode_text([class_prompt(c) for c in CLASSES])
    hits = {"surgery": [], "raw": []}
    ious = {m: [[] for _ in THRESHOLDS] for m in hits}
    for k in range(scenes):
        scene = localization_scene(k)
        size = scene.image.size[::-1]
        tokens = dense_tokens(session.model, whole_image_pixels(session, scene.image))
        similarity = {
            "surgery": feature_surgery(tokens.surgery, text)[:, 1:],
            "raw": (tokens.raw @ text.T)[:, 1:],
        }
        for method, sim in similarity.items():
            maps = similarity_to_maps(sim, tokens.grid, size)[0].cpu().numpy()
            for obj in scored_objects(scene):
                heat = maps[CLASSES.index(obj.label)]
                hits[method].append(pointing_hit(heat, obj.mask))
                for i, value in enumerate(threshold_ious(heat, obj.mask)):
                    ious[method][i].append(value)
    result = {}
    for method in ("surgery", "raw"):
        name = "CLIP Surgery" if method == "surgery" else "raw CLIP"
        best_iou, threshold = best_threshold(ious[method])
        result[f"pointing game, {name}"] = float(np.mean(hits[method]))
        result[f"mean IoU at best threshold, {name}"] = best_iou
        result[f"best threshold, {name}"] = threshold
    result["objects scored"] = len(hits["surgery"])
    return result | absent_heat(session, scenes, text)


@torch.no_grad()
def absent_heat(session: ModelSession, scenes: int, text: torch.Tensor) -> dict[str, float]:
    heat = {(scale, kind): [] for scale in ("label", "joint") for kind in ("absent", "present")}
    glow = {key: [] for key in heat}
    pointing = {scale: [] for scale in ("label", "joint")}
    for k in range(scenes):
        scene = localization_scene(k)
        tokens = dense_tokens(session.model, whole_image_pixels(session, scene.image))
        similarity = feature_surgery(tokens.surgery, text)[:, 1:]
        present = {CLASSES.index(o.label) for o in scene.objects}
        for scale in ("label", "joint"):
            floor = 0.0 if scale == "joint" else None
            maps = similarity_to_maps(similarity, tokens.grid, scene.image.size[::-1], scale=scale, floor=floor)
            maps = maps[0].cpu().numpy()
            for index in range(len(CLASSES)):
                kind = "present" if index in present else "absent"
                heat[scale, kind].append(float(maps[index].mean()))
                glow[scale, kind].append(bool(maps[index].max() >= 0.5))
            for obj in scored_objects(scene):
                pointing[scale].append(pointing_hit(maps[CLASSES.index(obj.label)], obj.mask))
    result = {}
    for scale, name in (("label", "per-label min-max"), ("joint", "joint scale, floor 0")):
        for kind in ("absent", "present"):
            result[f"Surgery heat on {kind} labels, {name}: mean"] = float(np.mean(heat[scale, kind]))
            result[f"Surgery heat on {kind} labels, {name}: share reaching 0.5"] = float(np.mean(glow[scale, kind]))
        result[f"pointing game, CLIP Surgery, {name}"] = float(np.mean(pointing[scale]))
    return result


def typographic(session: ModelSession, scenes: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    truth, written, clean, attacked = [], [], [], []
    for k in range(scenes):
        target = CLASSES[k % len(CLASSES)]
        colour, shape = target.split()
        word = str(rng.choice([s for s in SHAPES if s != shape]))
        seed = EVAL_SEED_BASE + 2 * 10**6 + k
        clean.append(draw_scene(seed, spec=[(colour, shape)], word_probability=0.0).image)
        attacked.append(draw_scene(seed, spec=[(colour, shape)], word=word).image)
        truth.append(target)
        written.append(word)
    before, after = classify(session, clean), classify(session, attacked)
    kept = [i for i in range(scenes) if before[i] == truth[i]]  # flips only count where the clean scene was right
    return {
        "typographic flip rate": float(np.mean([after[i] != before[i] for i in kept])) if kept else float("nan"),
        "flips to the written shape": float(np.mean([after[i].split()[1] == written[i] for i in kept]))
        if kept
        else float("nan"),
        "scenes (clean prediction right)": len(kept),
    }


def model_parser(doc: str) -> argparse.ArgumentParser:
    """The options every evaluation script shares: which model, where the table goes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world-vit")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--arch", choices=["vit", "resnet"], default="vit", help="the checkpoint's image tower")
    parser.add_argument("--json", type=Path, default=None)
    return parser


def report(session: ModelSession, results: dict, path: Path | None, width: int = 44) -> None:
    """Print the table (and write it as JSON to ``path``)."""
    print(f"# {session!r}")
    for name, value in results.items():
        print(f"{name:<{width}} {value:>8.3f}" if isinstance(value, float) else f"{name:<{width}} {value:>8d}")
    if path:
        path.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("--scenes", type=int, default=300)
    args = parser.parse_args()
    torch.manual_seed(0)
    session = load_session(args)
    results = {**zero_shot(session, args.scenes), **localization(session, args.scenes // 2),
               **typographic(session, args.scenes)}  # fmt: skip
    report(session, results, args.json, width=60)


if __name__ == "__main__":
    main()
