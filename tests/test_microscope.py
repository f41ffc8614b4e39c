"""build_microscope writes a static site over a tiny model, and a rerun resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

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
    index = build_microscope(session, images, LAYER, root, max_units=6, k=K, steps=2, progress=False)
    return session, images, root, index


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
    assert not (root / "units" / LAYER / "6.png").exists()


def test_data(built):
    _, _, root, _ = built
    data = _data(root)
    assert [layer["name"] for layer in data["layers"]] == [LAYER]
    units = data["layers"][0]["units"]
    assert [u["unit"] for u in units] == list(range(6))
    for u in units:
        assert isinstance(u["label"], str) and u["label"]
        assert isinstance(u["confidence"], float)
        assert (root / u["icon"]).is_file()
        values = [e["value"] for e in u["examples"]]
        assert len(values) == K
        assert values == sorted(values, reverse=True)
        for example in u["examples"]:
            assert (root / example["file"]).is_file()


def test_rerun_resumes(built):
    session, images, root, _ = built
    pngs = sorted((root / "units").rglob("*.png"))
    before = {p: p.stat().st_mtime_ns for p in pngs}
    data = _data(root)
    build_microscope(session, images, LAYER, root, max_units=6, k=K, steps=2, progress=False)
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
    assert all(len(u["examples"]) == 3 for u in units)
