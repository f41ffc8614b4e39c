"""A Microscope: a self-contained static site over some layers of a CLIP model.

:func:`build_microscope` writes a directory that opens from ``file://`` with no network and no
kernel: ``index.html`` lists the layers and their units (each with its feature visualization as
an icon and its automatic label) and, if asked, each layer's activation atlas; ``#layer/unit`` in
the address shows one unit: its facets, its label, confidence and top words, and its top and
bottom dataset examples with the unit's heat over them. A search box filters the units by label.
The files are described in :mod:`clip_widgets.microscope_site`.

Every step resumes: the dataset examples are collected into ``examples/`` (an
:class:`~clip_widgets.examples.ExampleStore`), the labels' passes are kept under ``labels/``, and
what is already written under ``units/`` is not made again. Collection can run on Ray
(``engine=``) for image sets one process cannot get through.

    python -m clip_widgets.microscope --model world-vit --images FOLDER --layers blocks.4 --out DIR
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .atlas import build_atlas, collect_activations
from .atlas_render import render_atlas
from .examples import collect_examples, example_views
from .featvis import objectives as obj
from .featvis.render import render_units
from .images import list_image_files
from .microscope_site import example_entries, page, safe_name, write_index, write_unit
from .probe import pooled_activations
from .unit_labels import DEFAULT_CONCEPTS, concept_similarities, label_units

__all__ = ["build_microscope", "main"]

_SCRIPT = Path(__file__).resolve().parent / "static" / "microscope.js"  # built from js/src/microscope.js


def build_microscope(
    session: Any,
    images: Sequence[Any] | str | os.PathLike,
    layers: str | Sequence[str],
    out_dir: str | os.PathLike,
    *,
    units: Sequence[int] | None = None,
    max_units: int | None = None,
    k: int = 8,
    facets: int = 3,
    steps: int = 64,
    concepts: Sequence[str] | None = None,
    crop_size: int = 128,
    atlas: bool = False,
    atlas_size: int = 12,
    engine: Any = "local",
    progress: bool = True,
) -> Path:
    """Write the Microscope of ``layers`` over ``images`` (a folder, or a sequence of anything
    :func:`~clip_widgets.images.load_image` reads) into ``out_dir`` and return its
    ``index.html``. ``units``: the units to show of each layer (default: all, or the first
    ``max_units``); ``k``: top and bottom examples per unit; ``facets`` feature visualizations
    per unit, optimized ``steps`` steps, many units per batch; ``concepts``: the labels'
    vocabulary (default: the shapes world's); ``atlas``: also an activation atlas of each layer
    with positions (``atlas_size`` cells a side). ``engine``: where the passes over the images
    run (``"local"``, ``"ray"`` or a :class:`~clip_widgets.ray_engine.RayEngine`; the images must
    then be files). Every step resumes: rerun the same call after an interruption."""
    if not _SCRIPT.is_file():
        raise FileNotFoundError(f"{_SCRIPT} is missing; build the front end (cd js && npm run build)")
    if facets < 1 or k < 1:
        raise ValueError(f"facets and k must be positive, got facets={facets}, k={k}")
    layers = [layers] if isinstance(layers, str) else list(layers)
    for name in layers:
        session.layers[name]  # unknown names raise, listing the valid ones  # noqa: B018
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    if isinstance(images, (str, os.PathLike)):
        images = list_image_files(Path(images))
    images = list(images)
    concepts = list(concepts or DEFAULT_CONCEPTS)
    store = collect_examples(session, images, layers, root / "examples", k=k, progress=progress, engine=engine)
    _stop_if_cut_short(store, images)
    similarities = _cached(root / "labels" / f"concepts_{_digest(concepts)}.npy",
                           lambda: concept_similarities(session, images, concepts, progress=progress))  # fmt: skip
    data: dict[str, Any] = {"model": str(getattr(session, "name", "model")), "k": k, "facets": facets,
                            "concepts": concepts, "layers": []}  # fmt: skip
    for layer in layers:
        chosen = list(range(session.layers[layer].units) if units is None else units)[:max_units]
        folder = root / "units" / safe_name(layer)
        folder.mkdir(parents=True, exist_ok=True)
        _render_facets(session, layer, chosen, folder, facets, steps, progress)
        activations = _cached(root / "labels" / f"{safe_name(layer)}.npy",
                              lambda layer=layer: pooled_activations(session, images, layer, progress=progress,
                                                                     engine=engine))  # fmt: skip
        labels = label_units(session, None, layer, concepts, units=chosen, activations=activations,
                             similarities=similarities, progress=progress)  # fmt: skip
        entries = []
        for row, unit in enumerate(tqdm(chosen, desc=f"examples of {layer}", unit="unit", disable=not progress)):
            if not (folder / f"{unit}.js").is_file():  # written last: its crops are there too
                detail = {"layer": layer, "unit": unit, "words": [[w, round(s, 4)] for w, s in labels.top(unit, 5)]}
                for which in ("top", "bottom"):
                    views = example_views(session, store, layer, unit, which=which, count=k, size=crop_size,
                                          images=images)  # fmt: skip
                    detail[which] = example_entries(folder, f"{unit}_{which}", views)
                write_unit(folder, detail)
            entries.append({
                "unit": unit,
                "icon": f"units/{folder.name}/{unit}.png",
                "facets": [f"units/{folder.name}/{_facet_name(unit, j)}" for j in range(facets)],
                "label": labels.labels[row],
                "confidence": round(float(labels.confidence[row]), 4),
            })  # fmt: skip
        entry = {"name": layer, "dir": folder.name, "units": entries, "atlas": None}
        if atlas and session.layers[layer].kind != "vector":
            entry["atlas"] = _layer_atlas(session, images, layer, root, atlas_size, engine, progress)
        data["layers"].append(entry)
    write_index(root, data)
    shutil.copyfile(_SCRIPT, root / "microscope.js")
    index = root / "index.html"
    index.write_text(page(f"Microscope: {data['model']}"), encoding="utf-8")
    return index


def _stop_if_cut_short(store: Any, images: list) -> None:
    """A collection stopped by Ctrl-C keeps its checkpoint and returns; the site must not be
    built on part of the images, so the build stops too (the same call resumes it)."""
    if store.processed < len(images):
        raise KeyboardInterrupt(f"stopped after {store.processed} of {len(images)} images; run again to resume")


def _facet_name(unit: int, facet: int) -> str:
    return f"{unit}.png" if facet == 0 else f"{unit}_f{facet}.png"


def _render_facets(session: Any, layer: str, units: list[int], folder: Path, facets: int, steps: int,
                   progress: bool) -> None:  # fmt: skip
    """Each unit's ``facets`` visualizations, many units per optimized batch; the diversity term
    pushes the images of a batch apart, so one unit's facets differ."""
    todo = [u for u in units if not all((folder / _facet_name(u, j)).is_file() for j in range(facets))]
    per_batch = max(1, 32 // facets)  # whole units per batch, so a batch's files are all or none

    def objective(name: str, part: Sequence[int]):
        made = obj.channel(name, part)
        return made + 0.05 * obj.diversity(name) if facets > 1 else made

    with tqdm(total=len(todo), desc=f"facets of {layer}", unit="unit", disable=not progress) as bar:
        for start in range(0, len(todo), per_batch):
            repeated = [u for u in todo[start : start + per_batch] for _ in range(facets)]
            result = render_units(session, layer, repeated, chunk=len(repeated), objective=objective, steps=steps,
                                  progress=False)  # fmt: skip
            if result.interrupted:  # half-optimized pictures are not kept: a rerun makes them whole
                raise KeyboardInterrupt(f"stopped while rendering {layer}; run again to resume")
            for i, pixels in enumerate(result.images):
                Image.fromarray(pixels).save(folder / _facet_name(repeated[i], i % facets))
            bar.update(len(repeated) // facets)


def _layer_atlas(session: Any, images: list, layer: str, root: Path, size: int, engine: Any, progress: bool) -> dict:
    """An activation atlas of ``layer`` at one grid size, as one picture and its cell counts."""
    store = collect_activations(session, images, layer, root / "atlas" / safe_name(layer), per_image=4,
                                engine=engine, progress=progress)  # fmt: skip
    _stop_if_cut_short(store, images)
    made = build_atlas(session, store, sizes=(size,), progress=progress)
    Image.fromarray(render_atlas(made.icons[size])).save(root / "atlas" / f"{safe_name(layer)}.png")
    grid = made.grid(size)
    return {"image": f"atlas/{safe_name(layer)}.png", "size": size, "filled": round(float(grid.filled.mean()), 4),
            "counts": grid.counts.astype(int).tolist(), "activations": len(store)}  # fmt: skip


def _digest(values: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(values).encode()).hexdigest()[:12]


def _cached(path: Path, make) -> np.ndarray:
    """An array saved at ``path``, made by ``make()`` the first time (and written whole)."""
    if path.is_file():
        return np.load(path)
    value = np.asarray(make())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, value)
    os.replace(tmp, path)
    return value


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Build a static Microscope site for a CLIP model.")
    parser.add_argument("--model", default="world-vit", help="a model ModelSession.load accepts")
    parser.add_argument("--images", required=True, help="a folder of probing images")
    parser.add_argument("--layers", nargs="+", required=True, help="layer names, e.g. blocks.4")
    parser.add_argument("--out", required=True, help="the output directory")
    parser.add_argument("--max-units", type=int, default=None, help="show the first N units of each layer")
    parser.add_argument("-k", type=int, default=8, help="top and bottom examples per unit")
    parser.add_argument("--facets", type=int, default=3, help="feature visualizations per unit")
    parser.add_argument("--steps", type=int, default=64, help="feature visualization steps")
    parser.add_argument("--atlas", action="store_true", help="also an activation atlas of each layer")
    parser.add_argument("--device", default=None, help="torch device (default: the session's choice)")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="collect on Ray: the cluster at ADDRESS (or RAY_ADDRESS), else a local one")  # fmt: skip
    parser.add_argument("--actors", type=int, default=None, help="model copies on Ray (default: one per GPU)")
    args = parser.parse_args(argv)
    from .session import ModelSession

    engine: Any = "local"
    if args.ray is not None:
        from .ray_engine import RayEngine

        engine = RayEngine(actors=args.actors, address=args.ray or None)
    kw = {"device": args.device} if args.device else {}
    session = ModelSession.load(args.model, **kw)
    index = build_microscope(session, args.images, args.layers, args.out, max_units=args.max_units, k=args.k,
                             facets=args.facets, steps=args.steps, atlas=args.atlas, engine=engine)  # fmt: skip
    print(f"wrote {index}")
    return index


if __name__ == "__main__":
    main()
