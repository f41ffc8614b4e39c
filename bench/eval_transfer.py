"""What the embedded models learned, measured on scenes drawn by other code (``other_renderer.py``).

    python bench/eval_transfer.py [--model world-vit | --checkpoint runs/x/checkpoint.pt --arch vit] [--per 60]

* **robustness**: zero-shot accuracy over the 30 colour x shape classes in each condition of the
  other renderer (close to the training look; photographs, textures, noise, dark and tinted
  backgrounds; small and large shapes; camera jitter and noise) and over all of them;
* **reading**: on scenes the model classifies right, write another shape's name beside the
  object, or a neutral word of the same length that no training caption uses; the share of
  scenes whose class flips to the written shape, and the share that flips at all under the
  neutral word (the control: clutter, not reading);
* **multimodal units**: a late layer's units, pooled over positions, on drawn shapes (no words)
  and on written words (shape names and neutral words, no shapes). A unit responds to a shape in
  both forms when its mean on that drawn shape and on that written name both exceed its mean on
  the other drawn shapes and on the other words by at least one standard deviation of the
  unit within that form; and its top dataset examples include both when at least 3 of its top 20 are the drawn
  shape and 3 the written name. Each share is set beside a null where the written names are
  shuffled among the shapes (what pairs up by chance).

Prints a table; --json writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from eval_world import classify, load_session, model_parser, report
from other_renderer import CONDITIONS, SHAPE_NAMES, neutral_word, render, word_image, write

from clip_widgets.probe import pooled_activations
from clip_widgets.world import CLASSES

LATE_LAYERS = {"ViT": ("blocks.5", "ln_post"), "ResNet": ("layer4", "attnpool")}
"""The last block and the pooled output (the embedding's units before the projection, for the
ViT; the attention pool's output, for the ResNet)."""
SEED = 7 * 10**9


def robustness(session, per: int) -> dict[str, float]:
    result, hits = {}, []
    for c, condition in enumerate(CONDITIONS):
        rng = np.random.default_rng([SEED, c])
        truth = [CLASSES[k % len(CLASSES)] for k in range(per)]
        images = [render(rng, *t.split(), condition=condition)[0] for t in truth]
        right = [p == t for p, t in zip(classify(session, images), truth, strict=True)]
        result[f"accuracy, {condition}"] = float(np.mean(right))
        hits += right
    result["accuracy, all conditions"] = float(np.mean(hits))
    return result


def reading(session, per: int) -> dict[str, float]:
    rng = np.random.default_rng([SEED, 100])
    conditions = [c for c in CONDITIONS if c != "small"]  # a small shape leaves the word the whole field
    truth, clean, attacked, control, written = [], [], [], [], []
    for k in range(per * len(conditions)):
        target = CLASSES[k % len(CLASSES)]
        colour, shape = target.split()
        image, mask = render(rng, colour, shape, condition=conditions[k % len(conditions)])
        other = str(rng.choice([s for s in SHAPE_NAMES if s != shape]))
        state = rng.bit_generator.state  # both words go to the same place, in the same font
        attacked.append(write(rng, image, other, mask))
        rng.bit_generator.state = state
        control.append(write(rng, image, neutral_word(rng, len(other)), mask))
        truth.append(target)
        clean.append(image)
        written.append(other)
    before, after, neutral = classify(session, clean), classify(session, attacked), classify(session, control)
    kept = [i for i in range(len(truth)) if before[i] == truth[i]]
    to_written = float(np.mean([after[i].split()[1] == written[i] for i in kept]))
    neutral_flips = float(np.mean([neutral[i] != before[i] for i in kept]))
    return {
        "reading: flips to the written shape": to_written,
        "reading: any flip, shape name": float(np.mean([after[i] != before[i] for i in kept])),
        "reading: any flip, neutral word (control)": neutral_flips,
        "reading: written-shape flips / neutral flips": to_written / max(neutral_flips, 1e-3),
        "reading: scenes (clean prediction right)": len(kept),
    }


def standardized(acts: np.ndarray) -> np.ndarray:
    return (acts - acts.mean(0)) / (acts.std(0) + 1e-6)


def multimodal_units(session, per: int) -> dict[str, float]:
    rng = np.random.default_rng([SEED, 200])
    colours = ("red", "green", "blue", "yellow", "purple", "orange")
    backgrounds = ("close", "photo", "texture", "dark", "tinted")
    drawn = [render(rng, str(rng.choice(colours)), s, condition=str(rng.choice(backgrounds)))[0]
             for s in SHAPE_NAMES for _ in range(per)]  # fmt: skip
    words = [*SHAPE_NAMES, "neutral"]
    written = [word_image(rng, w if w != "neutral" else neutral_word(rng, int(rng.choice([4, 5, 6, 8]))),
                          condition=str(rng.choice(backgrounds)))
               for w in words for _ in range(per)]  # fmt: skip
    drawn_kind = np.repeat(np.arange(len(SHAPE_NAMES)), per)
    written_kind = np.repeat(np.arange(len(words)), per)  # the last kind is the neutral words
    result = {}
    for layer in LATE_LAYERS[session.architecture]:
        acts = pooled_activations(session, drawn + written, layer, progress=False)
        forms = Forms(standardized(acts[: len(drawn)]), standardized(acts[len(drawn) :]), drawn_kind, written_kind,
                      np.argsort(-standardized(acts), 0)[:20])  # fmt: skip
        selective, in_top = forms.shares(np.arange(len(SHAPE_NAMES)))
        null = np.array([forms.shares(np.roll(np.arange(len(SHAPE_NAMES)), k)) for k in range(1, len(SHAPE_NAMES))])
        result |= {
            f"units ({layer}, {acts.shape[1]}): selective for a shape drawn and its name written": selective,
            f"units ({layer}): ... null, names paired with another shape": float(null[:, 0].mean()),
            f"units ({layer}): top 20 examples hold both forms": in_top,
            f"units ({layer}): ... null, names paired with another shape ": float(null[:, 1].mean()),
        }
    return result


@dataclass
class Forms:
    """A layer's units on drawn shapes and on written words, each form standardized on its own."""

    drawn: np.ndarray  # (drawn images, units)
    written: np.ndarray  # (written images, units)
    drawn_kind: np.ndarray  # the shape of each drawn image
    written_kind: np.ndarray  # the word of each written image (the last kind: neutral words)
    top: np.ndarray  # (20, units): each unit's top examples over both forms, drawn ones first

    def shares(self, pairing: np.ndarray) -> tuple[float, float]:
        """Units selective for shape s drawn and for the name pairing[s] written; and units whose
        top 20 hold >= 3 drawn s and >= 3 written pairing[s]."""
        n_drawn, units = self.drawn.shape
        selective, in_top = np.zeros(units, bool), np.zeros(units, bool)
        is_drawn = self.top < n_drawn
        top_drawn_kind = self.drawn_kind[np.minimum(self.top, n_drawn - 1)]
        top_written_kind = self.written_kind[np.maximum(self.top - n_drawn, 0)]
        for s in range(len(SHAPE_NAMES)):
            d = self.drawn[self.drawn_kind == s].mean(0) - self.drawn[self.drawn_kind != s].mean(0)
            name = pairing[s]
            w = self.written[self.written_kind == name].mean(0) - self.written[self.written_kind != name].mean(0)
            selective |= (d >= 1) & (w >= 1)
            drawn_in_top = (is_drawn & (top_drawn_kind == s)).sum(0)
            written_in_top = (~is_drawn & (top_written_kind == name)).sum(0)
            in_top |= (drawn_in_top >= 3) & (written_in_top >= 3)
        return float(selective.mean()), float(in_top.mean())


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("--per", type=int, default=60, help="scenes per condition (a multiple of 30 is fair)")
    parser.add_argument("--only", choices=["robustness", "reading", "units"], default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    session = load_session(args)
    parts = {"robustness": robustness, "reading": reading, "units": multimodal_units}
    results = {}
    for name, part in parts.items():
        if args.only in (None, name):
            results |= part(session, args.per if name != "units" else max(20, args.per // 2))
    report(session, results, args.json, width=72)


if __name__ == "__main__":
    main()
