"""HeadExplorer: a ViT's attention heads explained in words (TextSpan) and mapped over an image."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets
from PIL import Image

from ..codecs import Array
from ..decompose import decompose, head_grid
from ..examples import model_view
from ..images import load_image
from ..texts import text_list
from ..textspan import (
    WORLD_VOCABULARY,
    class_indices,
    collect_parts,
    explain_heads,
    mean_ablation,
    span_directions,
    span_maps,
)
from ._base import STATIC, WidgetBase, entry_point


class HeadOutOfRangeError(IndexError, traitlets.TraitError):
    """A layer, head, text or image index outside its range (also a TraitError, so traitlets
    rolls a refused value from the browser back)."""


class HeadExplorer(WidgetBase):
    """Every attention head of a ViT image tower as a cell of a layer x head grid, coloured by how
    much the head's output varies over ``images`` (or, with ``classes`` and ``labels``, by how
    much zero-shot accuracy drops when the head is mean-ablated). A head's panel lists the texts
    of ``vocabulary`` that span its outputs (TextSpan) with the share of its variance each one
    explains, and maps where in one image the head writes the chosen text's direction.

    ``HeadExplorer(session, images, classes=prompts, labels=labels)``: ``labels`` holds one label
    per image, an index into ``classes`` or a class prompt. ``image`` is the image whose maps are
    shown: an index into ``images`` (default 0) or any other image (see :meth:`set_image`).
    ``layer``, ``head``, ``text``, ``image_index`` and ``colour_by`` are synced both ways; choosing
    another head goes back to its first text (:meth:`select` sets all three). With
    ``background=True`` the widget returns at once and fills in from a background thread
    (``progress``, ``status``, :meth:`wait`). Failures show in ``error`` (see
    :class:`~clip_widgets.widgets._base.WidgetBase`).
    """

    _esm = STATIC / "heads.js"
    _css = STATIC / "heads.css"

    layer_count = traitlets.Int(0).tag(sync=True)
    """How many layers (blocks) the image tower has: the grid's rows."""
    head_count = traitlets.Int(0).tag(sync=True)
    """How many attention heads each layer has: the grid's columns."""
    variance = Array(dtype="float32", ndim=2).tag(sync=True)
    """(layers, heads): each head's variance over the images (squared embedding units)."""
    ablation = Array(dtype="float32", ndim=2).tag(sync=True)
    """(layers, heads): zero-shot accuracy with the head mean-ablated; None without labels."""
    baseline = traitlets.Float(None, allow_none=True).tag(sync=True)
    """Zero-shot accuracy over the images with nothing ablated; None without labels."""
    colour_by = traitlets.Enum(["variance", "ablation"], default_value="variance").tag(sync=True)
    """What colours the grid: ``"variance"`` or ``"ablation"`` (the drop in accuracy)."""
    spans = traitlets.List().tag(sync=True)
    """``spans[layer][head]``: ``{"texts", "explained", "residual"}``, the head's TextSpan texts,
    the share of its variance each explains, and the share none of them does."""
    layer = traitlets.Int(0).tag(sync=True)
    """The selected head's layer, 0 to ``layer_count - 1``."""
    head = traitlets.Int(0).tag(sync=True)
    """The selected head, 0 to ``head_count - 1``."""
    text = traitlets.Int(0).tag(sync=True)
    """Index of the chosen text among the selected head's texts: the map's direction."""
    image_count = traitlets.Int(0).tag(sync=True)
    """How many images the heads were explained over."""
    image_index = traitlets.Int(0).tag(sync=True)
    """Which of the images the maps are on; -1 for one given with :meth:`set_image`."""
    image = Array(dtype="uint8", ndim=3).tag(sync=True)
    """That image as the model sees it, (H, W, 3) uint8."""
    maps = Array(dtype="float32", ndim=5).tag(sync=True)
    """(layers, heads, texts, h, w): how much each head writes each of its texts' direction into
    the embedding from each patch of the image (zero for missing texts)."""
    head_map = Array(dtype="float32", ndim=2).tag(sync=True)
    """(h, w): ``maps`` for the selected head and text (signed: negative writes the opposite);
    the view draws from ``maps``, so that a hovered head shows without a round trip."""
    progress = traitlets.Float(0.0, min=0.0, max=1.0).tag(sync=True)
    """Progress of the preparation (decomposition, TextSpan, ablation), 0 to 1."""
    status = traitlets.Unicode("").tag(sync=True)
    """What the preparation is doing now; empty once done."""
    busy = traitlets.Bool(False).tag(sync=True)
    """True while the heads are being explained."""

    def __init__(
        self,
        session: Any,
        images: Sequence[Any],
        *,
        image: Any = None,
        vocabulary: Sequence[str] = WORLD_VOCABULARY,
        classes: Sequence[str] | None = None,
        labels: Sequence[int | str] | None = None,
        count: int = 5,
        batch_size: int = 32,
        background: bool = False,
        **traits: Any,
    ):
        self._session = session
        single = isinstance(images, (str, os.PathLike, Image.Image)) or getattr(images, "ndim", None) == 3
        self._images = [images] if single else list(images)
        if not self._images:
            raise ValueError("give at least one image")
        layers, heads = head_grid(session.model)  # a tower it cannot split raises here
        self._vocabulary = text_list(vocabulary, "vocabulary")
        if (classes is None) != (labels is None):
            raise TypeError("give both classes (prompts) and labels (one per image), or neither")
        self._classes = None if classes is None else text_list(classes, "classes")
        self._labels = None if labels is None else class_indices(list(labels), self._classes)
        if self._labels is not None and len(self._labels) != len(self._images):
            raise ValueError(f"{len(self._labels)} labels for {len(self._images)} images")
        self._count, self._batch_size = int(count), int(batch_size)
        self._outside = None  # an image given with set_image, not one of ``images``
        self._directions: np.ndarray | None = None
        self._worker: threading.Thread | None = None
        # the selection is checked against the tower's size, known only once the traits exist
        chosen = {name: traits.pop(name) for name in ("layer", "head", "text") if name in traits}
        if "image_index" in traits:
            if image is not None:
                raise TypeError("give image or image_index, not both")
            image = traits.pop("image_index")
        super().__init__(**traits)
        with self.hold_trait_notifications():
            self.layer_count, self.head_count, self.image_count = layers, heads, len(self._images)
        self.layer, self.head = chosen.get("layer", 0), chosen.get("head", 0)  # out of range raises
        self._chosen_text = int(chosen.get("text", 0))  # checked once the head's texts are known
        if image is None or isinstance(image, (int, np.integer)):
            self.image_index = int(image or 0)  # out of range raises
        else:
            self._outside = load_image(image)  # an unreadable image is an argument error: it raises
            self.set_trait("image_index", -1)
        self._show_image()  # the picture at once; the maps once the heads are explained
        self._ready = True
        self.busy = True
        if background:
            self._worker = threading.Thread(target=self._prepare, name="clip-widgets-heads", daemon=True)
            self._worker.start()
        else:
            self._prepare()

    # -- Python API -------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> None:
        """Block until the background preparation is done."""
        if self._worker is not None:
            self._worker.join(timeout)

    @entry_point
    def select(self, layer: int, head: int, text: int = 0) -> None:
        """Select a head and one of its texts at once."""
        self._check(layer, self.layer_count, "layer")
        self._check(head, self.head_count, "head")
        self._check_text(text, layer, head)
        self.layer, self.head = layer, head
        self.text = text

    @entry_point
    def set_image(self, source: Any) -> None:
        """Map the heads on another image (path, PIL, numpy or tensor), one not among
        ``images``; ``image_index`` becomes -1. An unreadable image keeps the current one."""
        picture = load_image(source)
        self._show_image(picture)
        self._outside = picture
        self.set_trait("image_index", -1)

    # -- observers ----------------------------------------------------------------------------

    def _check(self, value: int, count: int, what: str) -> int:
        if not 0 <= value < count:
            raise HeadOutOfRangeError(f"{what} {value} out of range: valid are 0 to {count - 1}")
        return value

    @traitlets.validate("layer", "head", "image_index")
    @entry_point(clears=False)  # a good value clears through the assignment
    def _check_index(self, proposal: dict[str, Any]) -> int:
        name, value = proposal["trait"].name, proposal["value"]
        if name == "image_index" and value == -1 and self._outside is not None:
            return -1
        count = {"layer": self.layer_count, "head": self.head_count, "image_index": self.image_count}[name]
        return self._check(value, count, "image" if name == "image_index" else name)

    @traitlets.validate("text")
    @entry_point(clears=False)
    def _check_text_trait(self, proposal: dict[str, Any]) -> int:
        return self._check_text(proposal["value"], self.layer, self.head)

    def _check_text(self, value: int, layer: int, head: int) -> int:
        count = len(self.spans[layer][head]["texts"]) if self.spans else 1  # none yet: only the first
        return self._check(value, max(count, 1), f"text of layer {layer} head {head}")

    @traitlets.validate("colour_by")
    @entry_point(clears=False)
    def _check_colour(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] == "ablation" and self._labels is None:
            raise ValueError("no ablation to colour by: give the widget classes and labels")
        return proposal["value"]

    @traitlets.observe("layer", "head", "text")
    @entry_point
    def _selection_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False):
            if change["name"] != "text":
                self.text = 0  # another head: its first text (select() chooses another)
            self._show_map()

    @traitlets.observe("image_index")
    @entry_point
    def _image_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False) and change["new"] != -1:
            self._show_image(self._images[change["new"]])
            self._outside = None

    # -- work ---------------------------------------------------------------------------------

    def _step(self, status: str, progress: float) -> None:
        with self.hold_sync():
            self.status, self.progress = status, progress

    def _prepare(self) -> None:
        with self.reporting(raises=False):  # a failed preparation shows in the returned widget
            try:
                total = len(self._images)
                self._step(f"decomposing 0 of {total} images", 0.0)
                parts = collect_parts(self._session, self._images, batch_size=self._batch_size, progress=False,
                                      callback=lambda done, _: self._step(f"decomposing {done} of {total} images",
                                                                          0.8 * done / total))  # fmt: skip
                self._step("explaining the heads in words", 0.8)
                spans = explain_heads(self._session, parts, self._vocabulary, count=self._count)
                self._directions = span_directions(self._session, spans)
                ablation = None
                if self._labels is not None:
                    self._step("mean-ablating each head", 0.9)
                    classifier = self._session.encode_text(self._classes).cpu().numpy()
                    ablation = mean_ablation(parts, classifier, self._labels)
                with self.hold_sync():
                    self.spans = [[{"texts": s.texts, "explained": s.explained.tolist(), "residual": float(s.residual)}
                                   for s in layer] for layer in spans.spans]  # fmt: skip
                    self.variance = spans.variance
                    self.ablation = None if ablation is None else ablation.heads.astype(np.float32)
                    self.baseline = None if ablation is None else float(ablation.baseline)
                    self._show_image()
                    self._step("", 1.0)
                if self._chosen_text:
                    self.text = self._chosen_text
            finally:
                self.busy = False

    def _show_image(self, picture: Any = None) -> None:
        if picture is None:
            picture = self._outside if self._outside is not None else self._images[self.image_index]
        view = model_view(self._session, picture)
        if self._directions is None:  # still preparing: only the picture
            self.image = np.asarray(view, np.uint8)
            return
        parts = decompose(self._session, [picture])
        maps = span_maps(parts, self._directions)
        with self.hold_sync():
            self.image = np.asarray(view, np.uint8)
            self.maps = maps
            self._show_map()

    def _show_map(self) -> None:
        if self.maps is not None:
            self.head_map = self.maps[self.layer, self.head, self.text]
