"""build_microscope writes a static site over a tiny model, and a rerun resumes."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from clip_widgets.examples import ExampleStore, example_views
from clip_widgets.microscope import build_microscope
from clip_widgets.session import ModelSession
from clip_widgets.world import draw_scene

LAYER = "blocks.1"
K = 4


def _data(root):
    text = (root / "data.js").read_text()
    prefix = "window.MICROSCOPE = "
    assert text.startswith(prefix)
    return json.loads(text[len(prefix) :].strip().rstrip(";"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    session = ModelSession.from_config("tiny-vit", seed=0, device="cpu")
    images = [draw_scene(k, size=64).image for k in range(12)]
    root = tmp_path_factory.mktemp("microscope")
    index = build_microscope(session, images, LAYER, root, max_units=6, k=K, steps=2, facets=2, atlas=True,
                             atlas_size=4, progress=False)  # fmt: skip
    return session, images, root, index


def _unit(root, unit):
    text = (root / "units" / LAYER / f"{unit}.js").read_text()
    assert text.startswith("microscopeUnit(") and text.rstrip().endswith(");")
    return json.loads(text.strip()[len("microscopeUnit(") : -2])


def test_files(built):
    _, _, root, index = built
    assert index == root / "index.html"
    page = index.read_text()
    assert '<script src="data.js"></script>' in page and '<script src="microscope.js"></script>' in page
    assert "http" not in page  # nothing from the network
    assert (root / "microscope.js").stat().st_size > 0
    assert (root / "examples" / "meta.json").is_file()
    for unit in range(6):
        assert (root / "units" / LAYER / f"{unit}.png").is_file()
        assert (root / "units" / LAYER / f"{unit}_f1.png").is_file()
        assert (root / "units" / LAYER / f"{unit}.js").is_file()
    assert not (root / "units" / LAYER / "6.png").exists()
    assert json.loads((root / "microscope.json").read_text()) == _data(root)


def test_data(built):
    _, _, root, _ = built
    data = _data(root)
    assert [layer["name"] for layer in data["layers"]] == [LAYER]
    units = data["layers"][0]["units"]
    assert [u["unit"] for u in units] == list(range(6))
    for u in units:
        assert isinstance(u["label"], str) and u["label"]
        assert isinstance(u["confidence"], float)
        assert (root / u["icon"]).is_file() and u["facets"][0] == u["icon"] and len(u["facets"]) == 2
        detail = _unit(root, u["unit"])
        top = [e["value"] for e in detail["top"]]
        bottom = [e["value"] for e in detail["bottom"]]
        assert len(top) == len(bottom) == K
        assert top == sorted(top, reverse=True) and bottom == sorted(bottom) and bottom[0] <= top[0]
        assert [w for w, _ in detail["words"]][0] == u["label"]  # the label is the best of the top words
        for example in detail["top"] + detail["bottom"]:
            assert (root / example["file"]).is_file()


def test_heat_and_facets_match_the_library(built):
    """The page's heat is the unit's map over each example (example_views), its facets differ."""
    session, images, root, _ = built
    store = ExampleStore(root / "examples")
    for which in ("top", "bottom"):
        views = example_views(session, store, LAYER, 2, which=which, count=K, images=images)
        for e, heat, box in zip(_unit(root, 2)[which], views.heat, views.boxes, strict=True):
            rows, cols = e["grid"]
            np.testing.assert_array_equal(
                np.frombuffer(base64.b64decode(e["heat"]), np.uint8).reshape(rows, cols), heat
            )
            assert e["box"] == box.tolist()
    first, second = (np.asarray(Image.open(root / "units" / LAYER / name), float) for name in ("2.png", "2_f1.png"))
    assert np.abs(first - second).mean() > 1  # two facets, not one picture twice


def test_atlas(built):
    _, _, root, _ = built
    atlas = _data(root)["layers"][0]["atlas"]
    picture = np.asarray(Image.open(root / atlas["image"]))
    counts = np.array(atlas["counts"])
    assert counts.shape == (4, 4) and atlas["activations"] == 12 * 4
    assert counts.sum() <= 48 and counts[counts > 0].min() >= 3  # cells under build_atlas's min_count are empty
    assert atlas["filled"] == pytest.approx((counts > 0).mean())
    assert picture.shape[0] == picture.shape[1] and picture.shape[0] % 4 == 0
    cell = picture.shape[0] // 4
    for row, col in zip(*np.nonzero(counts == 0), strict=True):  # empty cells stay background
        assert (picture[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] == 255).all()


def test_rerun_resumes(built):
    session, images, root, _ = built
    pngs = sorted((root / "units").rglob("*.png"))
    before = {p: p.stat().st_mtime_ns for p in pngs}
    data = _data(root)
    build_microscope(session, images, LAYER, root, max_units=6, k=K, steps=2, facets=2, atlas=True, atlas_size=4,
                     progress=False)  # fmt: skip
    assert {p: p.stat().st_mtime_ns for p in sorted((root / "units").rglob("*.png"))} == before
    assert _data(root) == data


def test_command_line(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for k in range(6):
        draw_scene(k, size=64).image.save(folder / f"{k:02d}.png")
    out = tmp_path / "site"
    env = {**os.environ, "TQDM_DISABLE": "1"}
    command = [sys.executable, "-m", "clip_widgets.microscope", "--model", "tiny-vit", "--images", str(folder),
               "--layers", LAYER, "--out", str(out), "--max-units", "2", "-k", "3", "--steps", "1",
               "--device", "cpu"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    units = _data(out)["layers"][0]["units"]
    assert [u["unit"] for u in units] == [0, 1]
    assert all(len(_unit_at(out, u["unit"])["top"]) == 3 for u in units)


def _unit_at(root, unit):
    return _unit(root, unit)


def test_an_interrupted_build_stops_and_resumes_to_the_same_site(built, tmp_path, monkeypatch):
    import dataclasses

    import clip_widgets.microscope as microscope

    session, images, root, _ = built
    site = tmp_path / "site"
    kw = dict(max_units=6, k=K, steps=2, facets=2, atlas=True, atlas_size=4, progress=False)

    def cut(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # Ctrl-C during collection: it checkpoints, the build stops
        patch.setattr(session.layers, "forward", cut)
        with pytest.raises(KeyboardInterrupt):
            build_microscope(session, images, LAYER, site, **kw)
    assert not (site / "data.js").exists() and not (site / "units").exists()

    render = microscope.render_units
    with monkeypatch.context() as patch:  # Ctrl-C while rendering: half-optimized facets are not kept
        patch.setattr(
            microscope, "render_units", lambda *a, **k: dataclasses.replace(render(*a, **k), interrupted=True)
        )
        with pytest.raises(KeyboardInterrupt):
            build_microscope(session, images, LAYER, site, **kw)
    assert not list((site / "units" / LAYER).glob("*.png"))

    build_microscope(session, images, LAYER, site, **kw)
    assert _data(site) == _data(root)
    for unit in range(6):
        assert _unit(site, unit) == _unit(root, unit)
