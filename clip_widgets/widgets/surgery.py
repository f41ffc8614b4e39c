"""SurgeryWidget: CLIP Surgery heatmaps over an image, one per label, explored in the notebook."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets
from PIL import Image

from ..codecs import Array
from ..images import load_image
from ..surgery import SurgeryResult, similarity_map_to_points, surgery_maps, threshold_value
from ..texts import template_list, text_list
from ._base import STATIC, WidgetBase, entry_point


class SurgeryWidget(WidgetBase):
    """An image with a CLIP Surgery (or raw CLIP) heatmap per label.

    ``SurgeryWidget(session, image, ["cat", "dog"])``. The image is shown at up to ``max_side``
    pixels and the maps are sent at up to ``map_side``. Labels are edited in the widget or by
    assigning ``widget.labels``; the selected label, mode, threshold and colormap are synced both
    ways. The last computation is in ``widget.result`` (a :class:`SurgeryResult`). Failures show
    in the widget's error banner and in ``widget.error`` and, for calls from Python, are raised
    too; the widget stays usable (see :class:`~clip_widgets.widgets._base.WidgetBase`).
    """

    _esm = STATIC / "surgery.js"
    _css = STATIC / "surgery.css"

    image = Array(dtype="uint8", ndim=3).tag(sync=True)
    """The displayed image, (H, W, 3) uint8, at most ``max_side`` pixels on its longer side."""
    surgery_maps = Array(dtype="uint8", ndim=3).tag(sync=True)
    """CLIP Surgery maps, (labels, h, w) uint8 (0 = lowest, 255 = highest similarity per label), with
    the image's aspect ratio at up to ``map_side`` pixels; the browser stretches them over the image."""
    raw_maps = Array(dtype="uint8", ndim=3).tag(sync=True)
    """Raw CLIP similarity maps, (labels, h, w) uint8, for comparison."""
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """The text labels, one heatmap each; editable in the widget."""
    probs = traitlets.List(traitlets.Float()).tag(sync=True)
    """Zero-shot probability of each label for the whole image (softmax over the labels)."""
    selected = traitlets.Int(0).tag(sync=True)
    """Index of the label whose heatmap is shown."""
    mode = traitlets.Enum(["surgery", "raw"], default_value="surgery").tag(sync=True)
    """Which map is shown: ``"surgery"`` or ``"raw"`` CLIP."""
    threshold = traitlets.Float(0.2, min=0.0, max=1.0).tag(sync=True)
    """Heatmap threshold: the cutoff itself (fixed) or the quantile (quantile); unused by Otsu. On the
    joint scale a present label that the model finds weaker than another peaks well under 1, so the
    default cutoff is low; absent labels sit at 0 below the floor."""
    threshold_method = traitlets.Enum(["fixed", "quantile", "otsu"], default_value="fixed").tag(sync=True)
    """How the per-label cutoff is chosen from ``threshold``."""
    scale = traitlets.Enum(["joint", "label"], default_value="joint").tag(sync=True)
    """``"joint"``: all labels' maps on one scale (an absent label looks cold); ``"label"``: each
    map stretched from its own lowest to its highest patch, as the CLIP Surgery reference does."""
    map_scales = traitlets.Dict().tag(sync=True)
    """What 0 and 1 of the maps stand for, in similarity units, per map kind:
    ``{"surgery": {"kind", "low": [...], "high": [...], "floor"}, "raw": {...}}`` (one value for a
    joint scale, one per label otherwise); the legend shows them."""
    cutoffs = traitlets.Dict().tag(sync=True)
    """Per-label cutoffs in [0, 1], ``{"surgery": [...], "raw": [...]}``: pixels below are hidden."""
    opacity = traitlets.Float(0.6, min=0.0, max=1.0).tag(sync=True)
    """Heatmap opacity over the image."""
    colormap = traitlets.Enum(["jet", "viridis", "inferno", "gray"], default_value="jet").tag(sync=True)
    """Heatmap colormap."""
    show_points = traitlets.Bool(False).tag(sync=True)
    """Draw Segment Anything point prompts for the selected label."""
    points = traitlets.List().tag(sync=True)
    """Point prompts ``[x, y, label]`` (label 1 positive, 0 negative) in pixels of ``image``."""
    busy = traitlets.Bool(False).tag(sync=True)
    """True while maps are being computed."""
    display_width = traitlets.Int(384, min=64).tag(sync=True)
    """On-screen width of the image in CSS pixels."""

    def __init__(
        self,
        session: Any,
        image: Any = None,
        labels: Sequence[str] = (),
        *,
        templates: Sequence[str] | None = None,
        max_side: int = 512,
        map_side: int = 192,
        depth: int | None = None,
        **traits: Any,
    ):
        self._session = session
        self._templates = template_list(templates)
        self._max_side = int(max_side)
        self._map_side = int(map_side)
        self._depth = depth
        self.result: SurgeryResult | None = None
        super().__init__(**traits)
        with self.hold_trait_notifications():
            if image is not None:
                self.set_image(image)  # an unreadable image is an argument error: it raises
            self.labels = text_list(labels)
        self._pick_present = "selected" not in traits  # open on a present label unless told which
        with self.reporting(raises=False):  # a failed first computation shows in the returned widget
            self._recompute()

    # -- Python API -------------------------------------------------------------------------

    @entry_point
    def set_image(self, source: Any) -> None:
        """Show a new image (path, PIL, numpy or tensor); maps are recomputed. An unreadable
        image keeps the current one and shows (and raises) an error naming it."""
        picture = load_image(source)
        scale = self._max_side / max(picture.size)
        if scale < 1:
            size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
            picture = picture.resize(size, Image.Resampling.LANCZOS)
        self.image = np.asarray(picture, dtype=np.uint8)

    # -- observers ----------------------------------------------------------------------------

    @traitlets.validate("labels")
    def _clean_labels(self, proposal: dict[str, Any]) -> list[str]:
        seen: dict[str, None] = {}
        for label in proposal["value"]:
            text = str(label).strip()
            if text:
                seen.setdefault(text, None)
        return list(seen)

    @traitlets.observe("labels", "image", "scale")
    def _inputs_changed(self, change: dict[str, Any]) -> None:
        if self._session is not None and getattr(self, "_ready", False):
            self._recompute()

    @traitlets.observe("threshold", "threshold_method", "selected", "mode")
    @entry_point(clears=False)  # a view setting: an error about the maps still stands
    def _view_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False):
            self._update_cutoffs()

    @entry_point
    def _recompute(self) -> None:
        self._ready = True
        self.busy = True
        try:
            self._compute_maps()
        finally:
            self.busy = False

    def _compute_maps(self) -> None:
        if self.image is None or not self.labels:
            self.result = None
            with self.hold_sync():
                self.surgery_maps = self.raw_maps = None
                self.probs, self.cutoffs, self.points = [], {}, []
            return
        kwargs = {} if self._depth is None else {"depth": self._depth}
        # Maps are smooth upsamplings of a coarse token grid, so sending them at full image
        # resolution would only multiply the bytes per update; the browser scales them up.
        height, width = self.image.shape[:2]
        scale = min(1.0, self._map_side / max(height, width))
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        result = surgery_maps(self._session, self.image, self.labels, templates=self._templates, size=size,
                              scale=self.scale, **kwargs)  # fmt: skip
        self.result = result
        with self.hold_sync():
            self.surgery_maps = _to_uint8(result.surgery)
            self.raw_maps = _to_uint8(result.raw)
            self.map_scales = result.info["scale"]
            self.probs = [float(p) for p in result.probs]
            if self._pick_present:
                self.selected = int(np.argmax(result.probs))
                self._pick_present = False
            elif self.selected >= len(self.labels):
                self.selected = len(self.labels) - 1
            self._update_cutoffs()

    def _update_cutoffs(self) -> None:
        result = self.result
        if result is None:
            return
        cutoffs = {
            mode: [threshold_value(m, self.threshold_method, self.threshold) for m in maps]
            for mode, maps in (("surgery", result.surgery), ("raw", result.raw))
        }
        points: list[list[int]] = []
        if 0 <= self.selected < len(result.labels):
            tokens = result.surgery_tokens if self.mode == "surgery" else result.raw_tokens
            # on the map's own scale, so a label the image does not show gets no positive points
            xy, kind = similarity_map_to_points(tokens[self.selected], self.image.shape[:2],
                                                threshold=cutoffs[self.mode][self.selected],
                                                value_range=result.value_range(self.selected, self.mode))  # fmt: skip
            points = [[int(x), int(y), int(k)] for (x, y), k in zip(xy, kind, strict=True)]
        with self.hold_sync():
            self.cutoffs = cutoffs
            self.points = points


def _to_uint8(maps: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(maps * 255.0), 0, 255).astype(np.uint8)
