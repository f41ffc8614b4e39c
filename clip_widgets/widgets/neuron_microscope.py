"""What a NeuronExplorer reads from a built Microscope site (:func:`clip_widgets.microscope.build_microscope`):
its manifest, each listed unit's precomputed facet PNGs and its automatic label."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ClipWidgetsError
from ..microscope_site import MANIFEST


@dataclass(frozen=True)
class SiteUnit:
    """One unit the site lists: its facet PNGs (absolute paths) and its label."""

    facets: tuple[Path, ...]
    label: str
    confidence: float


@dataclass(frozen=True)
class MicroscopeSite:
    """A built Microscope's manifest: the model it was built with and its units by ``(layer, unit)``,
    in the site's order."""

    root: Path
    model: str
    units: dict[tuple[str, int], SiteUnit]
    layers: tuple[str, ...]

    @classmethod
    def read(cls, path: str | os.PathLike) -> MicroscopeSite:
        root = Path(path)
        manifest = root / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(
                f"{manifest} not found: not a built Microscope; build one with "
                "clip_widgets.microscope.build_microscope(session, images, layers, out_dir)"
            )
        data: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
        units = {
            (layer["name"], int(entry["unit"])): SiteUnit(
                tuple(root / facet for facet in entry.get("facets") or [entry["icon"]]),
                str(entry.get("label") or ""),
                float(entry.get("confidence") or 0.0),
            )
            for layer in data["layers"]
            for entry in layer["units"]
        }
        return cls(root, str(data["model"]), units, tuple(layer["name"] for layer in data["layers"]))

    def check_session(self, session: Any) -> None:
        name = getattr(session, "name", None)
        if name != self.model:
            raise ClipWidgetsError(
                f"the Microscope at {self.root} was built with model {self.model!r}, but the session is "
                f"{name!r}; pass a session of {self.model!r}, or session=None to load it"
            )

    def first_unit(self, layer: str) -> int:
        """The first unit the site lists for ``layer`` (0 if none)."""
        return next((unit for name, unit in self.units if name == layer), 0)

    def label(self, layer: str, unit: int) -> str:
        """``"a red star (confidence z 2.31)"`` for a labelled unit, ``""`` otherwise."""
        entry = self.units.get((layer, unit))
        if entry is None or not entry.label:
            return ""
        return f"{entry.label} (confidence z {entry.confidence:.2f})"

    def facets(self, layer: str, unit: int) -> np.ndarray | None:
        """The unit's facets as (facets, H, W, 3) uint8, or None when the site does not have them
        all (then the explorer optimizes them as for any other unit)."""
        from PIL import Image

        entry = self.units.get((layer, unit))
        if entry is None:
            return None
        try:
            images = []
            for path in entry.facets:
                with Image.open(path) as image:
                    images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
        except OSError:  # missing or unreadable: a partly built or pruned site
            return None
        if not images or any(image.shape != images[0].shape for image in images):
            return None
        return np.stack(images)
