"""CLIP Surgery speed and wire size, measured side by side in one run.

    python bench/bench_surgery.py [--model ViT-B-16] [--labels 20] [--repeats 5]

Speed: maps per second for one image and N labels, three ways, interleaved round by round so
machine noise hits them alike:

* ``per-label loop``: what a straightforward tool does, one label at a time: encode the
  label's prompts, run the image tower's surgery forward, compute that label's map;
* ``all labels, 4-D``: one image forward, text encoded afresh, feature surgery the
  reference's way, materializing a tokens x labels x channels tensor;
* ``4-D, cached text``: the same with the text embeddings from the session's cache, which
  isolates what the matrix form saves;
* ``clip_widgets``: :func:`surgery_maps` with the session's text cache warm (matrix form); it
  also computes the raw CLIP maps and the zero-shot probabilities, which the others skip.

Then feature surgery alone, matrix form vs 4-D form, for 20, 200 and 1000 labels.

Wire size: bytes of one SurgeryWidget state update as binary buffers vs the same arrays as
base64 strings inside JSON, and as plain JSON number lists.

The model has random weights (no hub here); speed depends on the architecture, not the
weights. Absolute times mean something only on a GPU; compare the ratios.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import time

import numpy as np
import torch

from clip_widgets.session import DEFAULT_TEMPLATES, ModelSession
from clip_widgets.surgery import dense_tokens, feature_surgery, similarity_to_maps, surgery_maps

LABELS = [
    "cat", "dog", "car", "tree", "person", "sky", "road", "building", "grass", "water",
    "bird", "boat", "chair", "table", "flower", "horse", "truck", "mountain", "cloud", "window",
    "door", "bicycle", "bench", "lamp", "cup", "book", "clock", "sign", "fence", "bridge",
]  # fmt: skip


def load_session(name: str) -> ModelSession:
    """An embedded or built-in model by name, else the open_clip architecture with random weights."""
    if name in ModelSession.embedded_models() or name.startswith("tiny-"):
        return ModelSession.load(name)
    return ModelSession.from_config(name)


def encode_uncached(session, prompts, templates):
    """Prompt-ensemble text embeddings straight from the text tower, no cache."""
    texts = [t.format(p) for p in prompts for t in templates]
    with torch.no_grad():
        tokens = session.tokenizer(texts).to(session.device)
        emb = torch.nn.functional.normalize(session.model.encode_text(tokens).float(), dim=-1)
    emb = emb.reshape(len(prompts), len(templates), -1).mean(1)
    return torch.nn.functional.normalize(emb, dim=-1)


def per_label_loop(session, image, labels, templates):
    maps = []
    for label in labels:
        text = encode_uncached(session, [label], templates)
        tokens = dense_tokens(session.model, session.preprocess(image))
        empty = encode_uncached(session, [""], templates)[0]
        similarity = tokens.surgery @ (text - empty).T
        maps.append(similarity_to_maps(similarity[:, 1:], tokens.grid, (image.shape[0], image.shape[1])))
    return torch.cat(maps, dim=1)


def all_labels_4d(session, image, labels, templates, cached=False):
    text = session.encode_text(labels, templates) if cached else encode_uncached(session, labels, templates)
    tokens = dense_tokens(session.model, session.preprocess(image))
    feats = tokens.surgery  # (1, T, D)
    prob = (feats[:, :1] @ text.T * 2).softmax(-1)
    w = prob / prob.mean(-1, keepdim=True)
    products = feats[:, :, None, :] * text[None, None] * w[:, :, :, None]  # (1, T, L, D)
    similarity = (products - products.mean(2, keepdim=True)).sum(-1)
    return similarity_to_maps(similarity[:, 1:], tokens.grid, (image.shape[0], image.shape[1]))


def ours(session, image, labels, templates):
    return surgery_maps(session, image, labels, templates=templates, size="image").surgery


def feature_surgery_4d(image_tokens, text):
    """The reference's formulation: a tokens x labels x channels tensor, then the label mean."""
    prob = (image_tokens[:, :1] @ text.T * 2).softmax(-1)
    w = prob / prob.mean(-1, keepdim=True)
    products = image_tokens[:, :, None, :] * text[None, None] * w[:, :, :, None]
    return (products - products.mean(2, keepdim=True)).sum(-1)


def feature_surgery_scaling(tokens: int, dim: int, label_counts, repeats: int, device: torch.device) -> None:
    """Feature surgery alone, matrix form vs 4-D form, as the label set grows."""
    print(f"\n# feature surgery alone: {tokens} tokens x {dim} channels, on {device}")
    print(f"{'labels':>7} {'4-D s':>9} {'matrix s':>9} {'speed-up':>9} {'4-D tensor':>12}")
    generator = torch.Generator().manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(1, tokens, dim, generator=generator), dim=-1).to(device)
    for count in label_counts:
        text = torch.nn.functional.normalize(torch.randn(count, dim, generator=generator), dim=-1).to(device)
        torch.testing.assert_close(feature_surgery(image, text), feature_surgery_4d(image, text), atol=1e-5, rtol=0)
        times = time_rounds(
            {"4-D": lambda t=text: feature_surgery_4d(image, t), "matrix": lambda t=text: feature_surgery(image, t)},
            repeats,
        )
        four_d, matrix = statistics.median(times["4-D"]), statistics.median(times["matrix"])
        size = tokens * count * dim * 4 / 2**20
        print(f"{count:>7} {four_d:>9.4f} {matrix:>9.4f} {four_d / matrix:>8.1f}x {size:>9.0f} MiB")


def time_rounds(fns: dict, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():  # interleaved: every method sees the same noise
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # GPU work is asynchronous: time it to the end
            times[name].append(time.perf_counter() - start)
    return times


def wire_sizes(session, image, labels) -> dict[str, int]:
    from clip_widgets.widgets import SurgeryWidget  # noqa: PLC0415

    widget = SurgeryWidget(session, image, labels)
    # what a label edit sends: both map stacks, Surgery and the raw CLIP it is compared with (the
    # image is sent once, when it changes)
    state = {k: v for k, v in widget.get_state().items() if k in ("maps", "compare_maps")}
    from ipywidgets.widgets.widget import _remove_buffers  # noqa: PLC0415 - only the wire sizes need it

    stripped, _, buffers = _remove_buffers(state)
    binary = len(json.dumps(stripped)) + sum(b.nbytes for b in buffers)
    as_base64 = {
        k: {**v, "view": base64.b64encode(bytes(v["view"])).decode()} for k, v in state.items() if v is not None
    }
    as_lists = {
        k: (np.frombuffer(v["view"], dtype=v["dtype"]) / 255).round(3).tolist()
        for k, v in state.items()
        if v is not None
    }
    widget.close()
    return {
        "binary": binary,
        "base64 JSON": len(json.dumps(as_base64)),
        "float-list JSON": len(json.dumps(as_lists)),
        "full-size float32 binary": sum(v["shape"][0] for v in state.values()) * image.shape[0] * image.shape[1] * 4,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--templates", type=int, default=len(DEFAULT_TEMPLATES))
    args = parser.parse_args()

    from skimage import data  # noqa: PLC0415

    torch.manual_seed(0)
    session = load_session(args.model)
    image = data.astronaut()
    labels = LABELS[: args.labels]
    templates = DEFAULT_TEMPLATES[: args.templates]
    session.encode_text(labels, templates)  # warm the cache for the cached path
    session.encode_text([""], templates)

    fns = {
        "per-label loop": lambda: per_label_loop(session, image, labels, templates),
        "all labels, 4-D": lambda: all_labels_4d(session, image, labels, templates),
        "4-D, cached text": lambda: all_labels_4d(session, image, labels, templates, cached=True),
        "clip_widgets": lambda: ours(session, image, labels, templates),
    }
    for fn in fns.values():  # warm-up
        fn()
    times = time_rounds(fns, args.repeats)
    base = statistics.median(times["per-label loop"])
    print(
        f"# CLIP Surgery, {session!r}, {len(labels)} labels, {len(templates)} templates, "
        f"device {session.device}, {args.repeats} interleaved rounds"
    )
    print(f"{'method':<18} {'median s':>9} {'maps/s':>8} {'speed-up':>9}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<18} {median:>9.3f} {len(labels) / median:>8.1f} {base / median:>8.1f}x")

    tokens = dense_tokens(session.model, session.preprocess(image))
    feature_surgery_scaling(tokens.surgery.shape[1], tokens.surgery.shape[2], (20, 200, 1000), args.repeats,
                            session.device)  # fmt: skip

    height, width = image.shape[:2]
    try:
        import ipywidgets  # noqa: F401, PLC0415
    except ImportError:
        print("\n# wire sizes skipped: the widget stack (ipywidgets) is not installed")
        return
    print(f"\n# one SurgeryWidget label update: {len(labels)} surgery + raw maps over a {width}x{height} image")
    sizes = wire_sizes(session, image, labels)
    for name, size in sizes.items():
        print(f"{name:<28} {size:>12,d} bytes  {size / sizes['binary']:>6.2f}x binary")


if __name__ == "__main__":
    main()
