"""CLIP-Dissect unit labels against what the units' top scenes show.

    python bench/eval_unit_labels.py [--scenes 300] [--models world-rn world-rn-robust world-vit]

Probing set: single-object world scenes (random colour and shape, no written word). A unit is
dominated when at least 7 of its 10 most activating scenes (mean activation over positions)
share a colour, or a shape. For each embedded model at a late layer and each similarity
function: how many units are dominated, the share of them whose label mentions the dominant
colour or shape ("the word red written" counts as mentioning red), the same share with "the
word ... written" labels counted as misses (strict), and a null: the share when the labels are
shuffled across the layer's units (mean of 50 shuffles). Also the share among the more and the
less confident half of the dominated units, and a few example labels.
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np

from clip_widgets.probe import pooled_activations
from clip_widgets.session import ModelSession
from clip_widgets.unit_labels import DEFAULT_CONCEPTS, METHODS, concept_similarities, label_units
from clip_widgets.world import COLOURS, SHAPES, draw_scene

LAYERS = {"world-rn": "layer4", "world-rn-robust": "layer4", "world-vit": "blocks.5"}
SEED = 23 * 10**9


def mentions(label: str, words: list[str]) -> bool:
    return any(re.search(rf"\b{w}s?\b", label) for w in words)


def dominant_attributes(acts: np.ndarray, specs: list[tuple[str, str]], top: int = 10, least: int = 7) -> dict:
    """unit -> the colour and/or shape shared by at least ``least`` of its ``top`` scenes."""
    columns = [np.array([s[i] for s in specs]) for i in (0, 1)]
    order = np.argsort(-acts, 0, kind="stable")[:top]
    out: dict[int, list[str]] = {}
    for unit in range(acts.shape[1]):
        for column in columns:
            values, counts = np.unique(column[order[:, unit]], return_counts=True)
            if counts.max() >= least:
                out.setdefault(unit, []).append(str(values[counts.argmax()]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--models", nargs="+", default=list(LAYERS))
    parser.add_argument("--examples", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    specs = [(str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))) for _ in range(args.scenes)]
    images = [draw_scene(SEED + k, spec=[s], word_probability=0.0).image for k, s in enumerate(specs)]
    for name in args.models:
        layer = LAYERS.get(name, "layer4")
        session = ModelSession.from_embedded(name, device="cpu")
        start = time.perf_counter()
        acts = pooled_activations(session, images, layer, progress=False)
        sims = concept_similarities(session, images, DEFAULT_CONCEPTS, progress=False)
        dominant = dominant_attributes(acts, specs)
        units = sorted(dominant)
        print(f"# {name} {layer}: {acts.shape[1]} units, {len(units)} dominated, {len(DEFAULT_CONCEPTS)} concepts, "
              f"{args.scenes} scenes, {time.perf_counter() - start:.1f} s to embed")  # fmt: skip
        print(f"{'method':<10} {'share':>6} {'strict':>6} {'null':>6} {'conf hi':>7} {'conf lo':>7}")
        for method in METHODS:
            result = label_units(session, None, layer, activations=acts, similarities=sims, method=method)
            labels = result.labels
            hits = np.array([mentions(labels[u], dominant[u]) for u in units])
            strict = np.array([h and not labels[u].startswith("the word") for h, u in zip(hits, units, strict=True)])
            nulls = []
            for r in range(50):
                shuffled = np.random.default_rng(r).permutation(len(labels))
                nulls.append(np.mean([mentions(labels[shuffled[u]], dominant[u]) for u in units]))
            confidence = result.confidence[units]
            high = confidence >= np.median(confidence)
            print(f"{method:<10} {hits.mean():6.3f} {strict.mean():6.3f} {np.mean(nulls):6.3f} "
                  f"{hits[high].mean():7.3f} {hits[~high].mean():7.3f}")  # fmt: skip
            for u in units[: args.examples]:
                print(f"    unit {u:>4}: top scenes {'/'.join(dominant[u]):<16} label {labels[u]!r} "
                      f"(confidence {result.confidence[u]:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
