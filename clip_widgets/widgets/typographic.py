"""TypographicLab: drag a word onto an image, or paste an atlas patch into a corner, and watch the
zero-shot prediction follow it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import traitlets
from PIL import Image

from ..codecs import Array
from ..images import load_image
from ..patch_attack import CORNERS, class_patches, noise_patch, paste_patch, patch_box
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

    ``mode="patch"`` pastes an image patch instead of the word (Activation Atlas's patch attack):
    ``patches`` maps class names to patch images, or is an :class:`~clip_widgets.atlas.Atlas`
    built with classes (each class's patch is then the icon of the cell that pushes it most,
    :func:`clip_widgets.patch_attack.class_patch`, in the ``grid_size`` grid). The patch of
    ``patch_class`` goes into ``corner``, by default the best of the four: the one that gives
    ``patch_class`` its highest probability. The batch version is
    :func:`clip_widgets.patch_attack.patch_attack`.
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
    mode = traitlets.Enum(["word", "patch"], default_value="word").tag(sync=True)
    """What goes into the image: the word, or the patch of ``patch_class``."""
    patch_classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """The classes there is a patch for (read-only)."""
    patch_class = traitlets.Unicode("").tag(sync=True)
    """Class B: whose patch is pasted (one of ``patch_classes``)."""
    patch = Array(dtype="uint8", ndim=3).tag(sync=True)
    """The patch of ``patch_class`` as given, (S, S, 3) uint8, before it is resized (read-only)."""
    patch_size = traitlets.Float(0.3, min=0.02, max=1.0).tag(sync=True)
    """Side of the pasted patch as a fraction of the image's shorter side."""
    patch_noise = traitlets.Bool(False).tag(sync=True)
    """Paste uniform noise of the same size instead of the patch (the control)."""
    corner = traitlets.Enum(["best", *CORNERS], default_value="best").tag(sync=True)
    """Where the patch goes: a corner, or ``"best"``: the corner that gives ``patch_class`` its highest probability."""
    used_corner = traitlets.Unicode("").tag(sync=True)
    """The corner the shown patch is in (read-only; empty in word mode)."""
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
        patches: Mapping[str, Any] | Any = None,
        grid_size: int | None = None,
        **traits: Any,
    ):
        self._session = session
        if patches is not None and not isinstance(patches, Mapping):  # an atlas: its icons that push each class
            patches = {name: found.image for name, found in class_patches(patches, grid_size=grid_size).items()}
        self._patches = {str(name): np.asarray(load_image(image), np.uint8) for name, image in (patches or {}).items()}
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
            self.patch_classes = list(self._patches)
            if self._patches and not self.patch_class:  # the first class that has a patch
                self.patch_class = next((c for c in self.classes if c in self._patches), self.patch_classes[0])
        self._ready = True
        with self.reporting(raises=False):  # a failed first computation shows in the returned widget
            self._update()

    @entry_point(clears=False)
    def attacked_image(self, corner: str | None = None) -> Image.Image:
        """The clean image with the current word written in, or in patch mode the patch pasted
        into ``corner`` (default: the corner shown)."""
        if self.mode == "patch":
            corner = corner or self.used_corner or (self.corner if self.corner != "best" else CORNERS[0])
            return paste_patch(self._picture, self._patch_tile(), scale=self.patch_size, corner=corner)
        if not self.text:
            return self._picture.copy()
        fill, outline = INKS[self.ink]
        return write_text(self._picture, self.text, position=tuple(self.position), size=self.size, fill=fill,
                          outline=outline)  # fmt: skip

    def _patch_tile(self) -> np.ndarray:
        """What is pasted: the patch of ``patch_class``, or noise at the pasted size (seeded, so it holds still)."""
        if self.patch_noise:
            return noise_patch(patch_box(*self._picture.size, self.patch_size, CORNERS[0])[2])
        return self._patches[self.patch_class]

    @traitlets.validate("classes")
    def _clean_classes(self, proposal: dict[str, Any]) -> list[str]:
        return list(dict.fromkeys(c.strip() for c in proposal["value"] if c.strip()))

    @traitlets.validate("patch_class")
    def _check_patch_class(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in self._patches:
            raise traitlets.TraitError(f"no patch for {proposal['value']!r}; the patches are for {list(self._patches)}")
        return proposal["value"]

    @traitlets.validate("position")
    def _clamp_position(self, proposal: dict[str, Any]) -> list[float]:
        return [min(max(float(v), 0.0), 1.0) for v in proposal["value"]]

    @traitlets.validate("layer")
    @entry_point(clears=False)  # a good value clears through the assignment
    def _check_layer(self, proposal: dict[str, Any]) -> str:
        if proposal["value"]:
            self._session.layers[proposal["value"]]  # unknown names raise, listing the valid ones  # noqa: B018
        return proposal["value"]

    INPUTS = ("text", "position", "size", "ink", "classes", "layer", "mode", "patch_class", "patch_size",
              "patch_noise", "corner")  # fmt: skip
    """The settings whose change recomputes what is shown."""

    @traitlets.observe(*INPUTS)
    def _inputs_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False):
            self._update()

    @entry_point
    def _update(self) -> None:
        self.busy = True
        try:
            patching = self.mode == "patch"
            corners = (CORNERS if self.corner == "best" else (self.corner,)) if patching else ("",)
            if patching and not self._patches:
                raise ValueError("no patches to paste; pass patches={class: image} or an atlas built with classes")
            if patching and len(corners) > 1 and self.patch_class not in self.classes:
                raise ValueError(f"the patch class {self.patch_class!r} is not among the classes {self.classes}; "
                                 "the best corner is the one that gives it its highest probability")  # fmt: skip
            candidates = [self.attacked_image(c) if patching else self.attacked_image() for c in corners]
            pixels = self._session.preprocess([self._picture, *candidates])
            watched = (self.layer,) if self.layer else ()
            with self._session.layers.capture(*watched) as captured:  # one pass: embeddings and the layer
                features = self._session.encode_image(pixels)
            probs = None
            if self.classes:
                probs = class_probabilities(self._session, features, self.classes, self._templates)
            best = 0
            if len(corners) > 1:  # the corner that raises the patch's class most
                best = int(np.argmax(probs[1:, self.classes.index(self.patch_class)]))
            top: list[list[float]] = []
            if self.layer:
                pooled = pool_positions(captured[self.layer])
                clean_units, attacked_units = pooled[0], pooled[1 + best]
                order = np.argsort(-np.abs(attacked_units - clean_units))[: self._units]
                top = [[int(u), float(clean_units[u]), float(attacked_units[u])] for u in order]
            with self.hold_sync():
                self.attacked = np.asarray(candidates[best], np.uint8)
                self.used_corner = corners[best]
                if self.patch is not self._patches.get(self.patch_class):  # sent again only when it changes
                    self.patch = self._patches.get(self.patch_class)
                self.clean_probs = [] if probs is None else probs[0].tolist()
                self.attacked_probs = [] if probs is None else probs[1 + best].tolist()
                self.top_units = top
        finally:
            self.busy = False
