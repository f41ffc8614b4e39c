"""TypographicLab: drag a word onto an image and watch the zero-shot prediction follow it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets
from PIL import Image

from ..codecs import Array
from ..images import load_image
from ..probe import pool_positions
from ..texts import template_list, text_list
from ..typographic import class_probabilities, write_text
from ._base import STATIC, WidgetBase, entry_point

INKS = {"white": ((255, 255, 255), (0, 0, 0)), "black": ((0, 0, 0), (255, 255, 255))}


class TypographicLab(WidgetBase):
    """An image, a word written into it (drag it; choose the string, size and ink), and what the
    model makes of it: zero-shot probabilities over ``classes`` before and after, and the units of
    ``layer`` whose mean activation the word moves most.

    ``TypographicLab(session, "apple.jpg", ["an apple", "an iPod", "a pear"], text="iPod")``.
    Text, position, size, ink and classes are synced both ways; the batch version over a folder
    is :func:`clip_widgets.typographic.attack`. Failures show in ``error`` (and are raised to
    Python callers; see :class:`~clip_widgets.widgets._base.WidgetBase`).
    """

    _esm = STATIC / "typographic.js"
    _css = STATIC / "typographic.css"

    image = Array(dtype="uint8", ndim=3).tag(sync=True)
    """The clean image, (H, W, 3) uint8, at most ``max_side`` pixels on its longer side."""
    attacked = Array(dtype="uint8", ndim=3).tag(sync=True)
    """The image with the word written in, as the model sees it (same size as ``image``)."""
    text = traitlets.Unicode("iPod").tag(sync=True)
    """The word written into the image (empty: none)."""
    position = traitlets.List(traitlets.Float(), default_value=[0.5, 0.5], minlen=2, maxlen=2).tag(sync=True)
    """Centre of the word, as fractions of the image's width and height."""
    size = traitlets.Float(0.2, min=0.02, max=1.0).tag(sync=True)
    """Font size as a fraction of the image height."""
    ink = traitlets.Enum(list(INKS), default_value="white").tag(sync=True)
    """Ink of the word (with an outline in the other)."""
    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """The zero-shot classes (text prompts)."""
    clean_probs = traitlets.List(traitlets.Float()).tag(sync=True)
    """Probability of each class for the clean image."""
    attacked_probs = traitlets.List(traitlets.Float()).tag(sync=True)
    """Probability of each class with the word written in."""
    layer = traitlets.Unicode("").tag(sync=True)
    """The layer whose units are watched (empty: none)."""
    top_units = traitlets.List().tag(sync=True)
    """``[unit, clean, attacked]`` for the units of ``layer`` the word moves most, largest change first."""
    busy = traitlets.Bool(False).tag(sync=True)
    """True while the model runs."""

    def __init__(
        self,
        session: Any,
        image: Any,
        classes: Sequence[str],
        *,
        templates: Sequence[str] | None = None,
        max_side: int = 384,
        units: int = 8,
        **traits: Any,
    ):
        self._session = session
        self._templates = template_list(templates)
        self._units = int(units)
        picture = load_image(image)  # an unreadable image is an argument error: it raises
        scale = max_side / max(picture.size)
        if scale < 1:
            picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                                     Image.Resampling.LANCZOS)  # fmt: skip
        self._picture = picture
        super().__init__(**traits)
        with self.hold_trait_notifications():
            self.image = np.asarray(picture, np.uint8)
            self.classes = text_list(classes, "classes")
        self._ready = True
        with self.reporting(raises=False):  # a failed first computation shows in the returned widget
            self._update()

    @entry_point(clears=False)
    def attacked_image(self) -> Image.Image:
        """The clean image with the current word written in."""
        if not self.text:
            return self._picture.copy()
        fill, outline = INKS[self.ink]
        return write_text(self._picture, self.text, position=tuple(self.position), size=self.size, fill=fill,
                          outline=outline)  # fmt: skip

    @traitlets.validate("classes")
    def _clean_classes(self, proposal: dict[str, Any]) -> list[str]:
        return list(dict.fromkeys(c.strip() for c in proposal["value"] if c.strip()))

    @traitlets.validate("position")
    def _clamp_position(self, proposal: dict[str, Any]) -> list[float]:
        return [min(max(float(v), 0.0), 1.0) for v in proposal["value"]]

    @traitlets.validate("layer")
    @entry_point(clears=False)  # a good value clears through the assignment
    def _check_layer(self, proposal: dict[str, Any]) -> str:
        if proposal["value"]:
            self._session.layers[proposal["value"]]  # unknown names raise, listing the valid ones  # noqa: B018
        return proposal["value"]

    @traitlets.observe("text", "position", "size", "ink", "classes", "layer")
    def _inputs_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False):
            self._update()

    @entry_point
    def _update(self) -> None:
        self.busy = True
        try:
            attacked = self.attacked_image()
            pixels = self._session.preprocess([self._picture, attacked])
            watched = (self.layer,) if self.layer else ()
            with self._session.layers.capture(*watched) as captured:  # one pass: embeddings and the layer
                features = self._session.encode_image(pixels)
            probs = None
            if self.classes:
                probs = class_probabilities(self._session, features, self.classes, self._templates)
            top: list[list[float]] = []
            if self.layer:
                clean_units, attacked_units = pool_positions(captured[self.layer])
                order = np.argsort(-np.abs(attacked_units - clean_units))[: self._units]
                top = [[int(u), float(clean_units[u]), float(attacked_units[u])] for u in order]
            with self.hold_sync():
                self.attacked = np.asarray(attacked, np.uint8)
                self.clean_probs = [] if probs is None else probs[0].tolist()
                self.attacked_probs = [] if probs is None else probs[1].tolist()
                self.top_units = top
        finally:
            self.busy = False
