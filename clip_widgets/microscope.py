"""A Microscope: a self-contained static site over some layers of a CLIP model.

:func:`build_microscope` writes a directory that opens from ``file://`` with no network and no
kernel: ``index.html`` lists the layers and their units (each with its feature visualization as
an icon and its automatic label), and ``#layer/unit`` in the address shows one unit: its feature
visualization, its label and confidence, and its top dataset examples with their values. A
search box filters the units by label.

The data travel as ``data.js`` (``window.MICROSCOPE = {...}``): a ``<script src>`` loads from
``file://`` where fetching JSON does not. Every step resumes: the dataset examples are collected
into ``examples/`` (an :class:`~clip_widgets.examples.ExampleStore`), and images already written
under ``units/`` are not rendered again.

    python -m clip_widgets.microscope --model world-vit --images FOLDER --layers blocks.4 --out DIR
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from .examples import collect_examples, example_views
from .featvis.render import render_units
from .unit_labels import DEFAULT_CONCEPTS, label_units

__all__ = ["build_microscope", "main"]

_SCRIPT = Path(__file__).resolve().parent / "static" / "microscope.js"  # built from js/src/microscope.js

_CSS = """
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
  background: #fafafa; }
header { display: flex; gap: 16px; align-items: center; padding: 10px 20px; background: #fff;
  border-bottom: 1px solid #d0d7de; position: sticky; top: 0; }
header h1 { font-size: 17px; margin: 0; }
header a { color: inherit; text-decoration: none; }
header input { font-size: 14px; padding: 5px 8px; width: 260px; border: 1px solid #afb8c1;
  border-radius: 6px; }
main { padding: 12px 20px; }
h2 { font-size: 15px; margin: 18px 0 8px; }
.ms-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: 10px; }
.ms-card { display: block; background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 6px;
  color: inherit; text-decoration: none; font-size: 12px; }
.ms-card:hover { border-color: #0969da; }
.ms-card img { width: 100%; aspect-ratio: 1; image-rendering: pixelated; border-radius: 4px; }
.ms-muted { color: #57606a; }
.ms-unit { display: flex; gap: 24px; flex-wrap: wrap; }
.ms-unit .ms-vis { width: 320px; height: 320px; image-rendering: pixelated; border: 1px solid #d0d7de; }
.ms-label { font-size: 20px; margin: 4px 0; }
.ms-examples { display: flex; gap: 10px; flex-wrap: wrap; }
.ms-example { font-size: 12px; text-align: center; margin: 0; }
.ms-example img { width: 128px; height: 128px; display: block; border: 1px solid #d0d7de; }
"""


def _page(title: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<div id="microscope"><p>Loading...</p></div>
<script src="data.js"></script>
<script src="microscope.js"></script>
</body>
</html>
"""


def _safe(name: str) -> str:
    """A layer name as a directory name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def build_microscope(
    session: Any,
    images: Sequence[Any] | str | os.PathLike,
    layers: str | Sequence[str],
    out_dir: str | os.PathLike,
    *,
    units: Sequence[int] | None = None,
    max_units: int | None = None,
    k: int = 8,
    steps: int = 64,
    concepts: Sequence[str] | None = None,
    crop_size: int = 128,
    progress: bool = True,
) -> Path:
    """Write the Microscope of ``layers`` over ``images`` (a folder, or a sequence of anything
    :func:`~clip_widgets.images.load_image` reads) into ``out_dir`` and return its
    ``index.html``. ``units``: the units to show of each layer (default: all, or the first
    ``max_units``); ``k``: top examples per unit; ``steps``: feature visualization steps;
    ``concepts``: the labels' vocabulary (default: the shapes world's). Reruns resume."""
    if not _SCRIPT.is_file():
        raise FileNotFoundError(f"{_SCRIPT} is missing; build the front end (cd js && npm run build)")
    layers = [layers] if isinstance(layers, str) else list(layers)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"})
    images = list(images)
    store = collect_examples(session, images, layers, root / "examples", k=k, progress=progress)
    data: dict[str, Any] = {"model": str(getattr(session, "name", "model")), "k": k, "layers": []}
    for layer in layers:
        total = session.layers[layer].units
        chosen = list(range(total) if units is None else units)
        if max_units is not None:
            chosen = chosen[:max_units]
        folder = root / "units" / _safe(layer)
        folder.mkdir(parents=True, exist_ok=True)
        todo = [u for u in chosen if not (folder / f"{u}.png").is_file()]
        if todo:
            result = render_units(session, layer, todo, steps=steps, progress=progress)
            for unit, pixels in zip(todo, result.images, strict=False):
                Image.fromarray(pixels).save(folder / f"{unit}.png")
        labels = label_units(session, images, layer, concepts or DEFAULT_CONCEPTS, units=chosen, progress=progress)
        entries = []
        for row, unit in enumerate(tqdm(chosen, desc=f"examples of {layer}", unit="unit", disable=not progress)):
            found = store.examples(layer, unit)[:k]
            names = [f"{unit}_top{i}.png" for i in range(len(found))]
            if not all((folder / name).is_file() for name in names):
                views = example_views(session, store, layer, unit, count=k, size=crop_size, images=images)
                for name, crop in zip(names, views.crops, strict=True):
                    Image.fromarray(crop).save(folder / name)
            examples = [
                {"file": f"units/{folder.name}/{name}", "value": round(e.value, 5), "source": e.source}
                for name, e in zip(names, found, strict=True)
            ]
            entries.append(
                {
                    "unit": unit,
                    "icon": f"units/{folder.name}/{unit}.png",
                    "label": labels.labels[row],
                    "confidence": round(float(labels.confidence[row]), 4),
                    "examples": examples,
                }
            )
        data["layers"].append({"name": layer, "units": entries})
    text = json.dumps(data, indent=1).replace("</", "<\\/")
    (root / "data.js").write_text(f"window.MICROSCOPE = {text};\n", encoding="utf-8")
    shutil.copyfile(_SCRIPT, root / "microscope.js")
    index = root / "index.html"
    index.write_text(_page(f"Microscope: {data['model']}"), encoding="utf-8")
    return index


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Build a static Microscope site for a CLIP model.")
    parser.add_argument("--model", default="world-vit", help="a model ModelSession.load accepts")
    parser.add_argument("--images", required=True, help="a folder of probing images")
    parser.add_argument("--layers", nargs="+", required=True, help="layer names, e.g. blocks.4")
    parser.add_argument("--out", required=True, help="the output directory")
    parser.add_argument("--max-units", type=int, default=None, help="show the first N units of each layer")
    parser.add_argument("-k", type=int, default=8, help="top examples per unit")
    parser.add_argument("--steps", type=int, default=64, help="feature visualization steps")
    parser.add_argument("--device", default=None, help="torch device (default: the session's choice)")
    args = parser.parse_args(argv)
    from .session import ModelSession

    kw = {"device": args.device} if args.device else {}
    session = ModelSession.load(args.model, **kw)
    index = build_microscope(
        session, args.images, args.layers, args.out, max_units=args.max_units, k=args.k, steps=args.steps
    )
    print(f"wrote {index}")
    return index


if __name__ == "__main__":
    main()
