"""Shared fixtures: tiny seeded sessions of both image-tower architectures, folders of drawn scenes
and a real photo."""

from __future__ import annotations

import os

import pytest
import torch
from PIL import Image

from clip_widgets.session import ModelSession

# One torch thread here and in the kernels, servers and Ray workers the tests start (they inherit
# the variable): on two shared cores the small models run faster on one thread than on two (the
# suite takes 12 minutes instead of 18), and results that hang on the order of float sums (which
# class a drawn image is read as) do not change with the machine's core count.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (scripts/test.sh runs a worker per core, ``--dist loadgroup``) a browser
    test file runs whole in one worker, and the Ray tests share one worker, which starts their
    cluster once. Each worker starts its own JupyterLab and Chromium once."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.xdist_group(f"browser-{item.path.name}"))
        elif item.path.name == "test_ray_engine.py":
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture(scope="session")
def vit_session() -> ModelSession:
    return ModelSession.from_config("tiny-vit", seed=0, device="cpu")


@pytest.fixture(scope="session")
def resnet_session() -> ModelSession:
    return ModelSession.from_config("tiny-resnet", seed=0, device="cpu")


@pytest.fixture(scope="session")
def scene_folder(tmp_path_factory):
    """``make(count, broken, prefix="")``: a folder of ``count`` world scenes (48 px PNG files
    ``{prefix}{i:02d}.png``) and one unreadable file named ``broken``, made once per arguments."""
    from clip_widgets.world import draw_scene

    made = {}

    def make(count: int, broken: str, prefix: str = ""):
        if (count, broken, prefix) not in made:
            root = tmp_path_factory.mktemp("scenes")
            for i in range(count):
                draw_scene(i, size=48).image.save(root / f"{prefix}{i:02d}.png")
            (root / broken).write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
            made[count, broken, prefix] = root
        return made[count, broken, prefix]

    return make


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    from skimage.data import astronaut as load

    return Image.fromarray(load()).convert("RGB")
