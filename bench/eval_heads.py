"""A ViT's attention heads, in words and by what they carry: TextSpan and mean-ablation.

    python bench/eval_heads.py [--model world-vit | --checkpoint runs/x/checkpoint.pt] [--scenes 300] [--texts 3]

On single-object world scenes (half plain, half varied style): the zero-shot accuracy over the
30 classes with nothing ablated, with each layer's heads (all at once) and each MLP
mean-ablated in the embedding's direct path, and the heads whose ablation costs most. Then
each head's TextSpan texts over :data:`clip_widgets.textspan.WORLD_VOCABULARY` with the share
of the head's variance each explains, and a null: the share the first text explains against
random unit directions in place of the texts' embeddings.
"""

from __future__ import annotations

import numpy as np
import torch
from eval_world import load_session, model_parser, report

from clip_widgets.textspan import collect_parts, explain_heads, first_text_shares, mean_ablation
from clip_widgets.world import CLASSES, class_prompt, draw_scene

SEED = 11 * 10**9


def scenes(count: int) -> tuple[list, np.ndarray]:
    images, labels = [], []
    for k in range(count):
        label = k % len(CLASSES)
        colour, shape = CLASSES[label].split()
        style = "varied" if k % 2 else "plain"
        rng = np.random.default_rng(SEED + k)
        images.append(draw_scene(rng, spec=[(colour, shape)], word_probability=0.0, style=style).image)
        labels.append(label)
    return images, np.asarray(labels)


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--texts", type=int, default=3, help="TextSpan texts per head")
    args = parser.parse_args()
    torch.manual_seed(0)
    session = load_session(args)
    images, labels = scenes(args.scenes)
    parts = collect_parts(session, images)
    classifier = session.encode_text([class_prompt(c) for c in CLASSES]).cpu().numpy()
    ablation = mean_ablation(parts, classifier, labels)
    results: dict = {"zero-shot accuracy, nothing ablated": ablation.baseline}
    for i, value in enumerate(ablation.layers):
        results[f"layer {i} heads mean-ablated"] = float(value)
    for i, value in enumerate(ablation.mlps):
        results[f"layer {i} MLP mean-ablated"] = float(value)
    costs = ablation.baseline - ablation.heads
    for flat in np.argsort(-costs, axis=None)[:3]:
        layer, head = np.unravel_index(flat, costs.shape)
        results[f"head {layer}.{head} mean-ablated"] = float(ablation.heads[layer, head])

    spans = explain_heads(session, parts, count=args.texts)
    real, null = first_text_shares(parts, spans)
    results["first text's share of a head's variance, mean"] = float(real.mean())
    results["the same with random directions (null), mean"] = float(null.mean())
    results["heads whose first text beats the null"] = float(np.mean(real > null))
    report(session, results, args.json, width=52)
    print("\nhead   variance  texts (share of the head's variance)")
    for row, layer in enumerate(spans.layers):
        for head, span in enumerate(spans.spans[row]):
            texts = ", ".join(f"{t} ({e:.2f})" for t, e in zip(span.texts, span.explained, strict=True))
            print(f"{layer}.{head:<4} {spans.variance[row, head]:8.3f}  {texts}")


if __name__ == "__main__":
    main()
