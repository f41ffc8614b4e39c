"""Shared fixtures: tiny seeded sessions of both image-tower architectures and a real photo."""

from __future__ import annotations

import pytest
from PIL import Image

from clip_widgets.session import ModelSession


@pytest.fixture(scope="session")
def vit_session() -> ModelSession:
    return ModelSession.from_config("tiny-vit", seed=0, device="cpu")


@pytest.fixture(scope="session")
def resnet_session() -> ModelSession:
    return ModelSession.from_config("tiny-resnet", seed=0, device="cpu")


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    from skimage.data import astronaut as load

    return Image.fromarray(load()).convert("RGB")
