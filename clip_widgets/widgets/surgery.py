"""SurgeryWidget: dense label maps over an image (CLIP Surgery and the other :mod:`clip_widgets.dense`
methods), one per label, two methods compared, explored in the notebook."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets
from PIL import Image

from ..codecs import Array
from ..dense import METHODS, DenseMapResult, _check_method, dense_maps, method_names, tower_of
from ..errors import UnsupportedModelError
from ..images import load_image
from ..surgery import similarity_map_to_points, threshold_value
from ..texts import template_list, text_list
from ._base import STATIC, WidgetBase, entry_point


class SurgeryWidget(WidgetBase):
    """An image with a dense map per label, by one method (CLIP Surgery by default) and compared
    with a second (raw CLIP by default), switched or side by side.

    ``SurgeryWidget(session, image, ["cat", "dog"], method="naclip", compare="surgery")``. The
    maps come from :func:`clip_widgets.dense.dense_maps`; ``methods`` lists those that apply to
    the session's image tower (all nine for a ViT; raw, surgery, maskclip, grad_eclip and legrad
    for a ResNet). The image is shown at up to ``max_side`` pixels and the maps are sent at up to
    ``map_side``. Labels are edited in the widget or by assigning ``widget.labels``; the selected
    label, the methods, threshold and colormap are synced both ways. ``widget.result`` is the
    shown method's :class:`~clip_widgets.dense.DenseMapResult` and ``widget.compare_result`` the
    compared one's (None without a comparison). ``depth`` is CLIP Surgery's number of
    value-value blocks. Failures show in the widget's error banner and in ``widget.error`` and,
    for calls from Python, are raised too; a method the tower cannot run keeps the last good one
    (see :class:`~clip_widgets.widgets._base.WidgetBase`).
    """

    _esm = STATIC / "surgery.js"
    _css = STATIC / "surgery.css"

    image = Array(dtype="uint8", ndim=3).tag(sync=True)
    """The displayed image, (H, W, 3) uint8, at most ``max_side`` pixels on its longer side."""
    methods = traitlets.List(traitlets.Dict(), read_only=True).tag(sync=True)
    """The methods that apply to the session's image tower, as the menu lists them:
    ``[{"name": "surgery", "title": "CLIP Surgery", "value": "similarity"}, ...]`` (``value``:
    what the maps measure, ``"similarity"`` or, for the gradient methods, ``"relevance"``)."""
    method = traitlets.Unicode("surgery").tag(sync=True)
    """The shown method, one of ``methods``; point prompts follow it."""
    compare = traitlets.Unicode("raw").tag(sync=True)
    """The method compared with ``method`` (one of ``methods``), or ``""`` for none."""
    side_by_side = traitlets.Bool(False).tag(sync=True)
    """Draw the two methods' maps next to each other; otherwise one at a time, with a switch."""
    maps = Array(dtype="uint8", ndim=3).tag(sync=True)
    """Maps of ``method``, (labels, h, w) uint8 (0 and 255 stand for the ends of ``map_scales``),
    with the image's aspect ratio at up to ``map_side`` pixels; the browser stretches them over
    the image."""
    compare_maps = Array(dtype="uint8", ndim=3).tag(sync=True)
    """Maps of ``compare``, as ``maps``; None without a comparison."""
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """The text labels, one map each; editable in the widget."""
    probs = traitlets.List(traitlets.Float()).tag(sync=True)
    """Zero-shot probability of each label for the whole image (softmax over the labels)."""
    selected = traitlets.Int(0).tag(sync=True)
    """Index of the label whose map is shown."""
    threshold = traitlets.Float(0.2, min=0.0, max=1.0).tag(sync=True)
    """Heatmap threshold: the cutoff itself (fixed) or the quantile (quantile); unused by Otsu. On the
    joint scale a present label that the model finds weaker than another peaks well under 1, so the
    default cutoff is low; absent labels sit at 0 below the floor."""
    threshold_method = traitlets.Enum(["fixed", "quantile", "otsu"], default_value="fixed").tag(sync=True)
    """How the per-label cutoff is chosen from ``threshold``, for each method's maps."""
    scale = traitlets.Enum(["joint", "label"], default_value="joint").tag(sync=True)
    """``"joint"``: all labels' maps on one scale (an absent label looks cold); ``"label"``: each
    map stretched from its own lowest to its highest patch, as the CLIP Surgery reference does."""
    map_scales = traitlets.Dict().tag(sync=True)
    """What 0 and 1 of the maps stand for, per shown method: ``{"surgery": {"kind", "low": [...],
    "high": [...], "floor"}, "raw": {...}}`` (each method's ``info["scale"]``, in its token units:
    similarity, or relevance; one value for a joint scale, one per label otherwise); the legends
    show them."""
    cutoffs = traitlets.Dict().tag(sync=True)
    """Per-label cutoffs in [0, 1] per shown method, ``{"surgery": [...], "raw": [...]}``: pixels
    below are hidden."""
    opacity = traitlets.Float(0.6, min=0.0, max=1.0).tag(sync=True)
    """Heatmap opacity over the image."""
    colormap = traitlets.Enum(["jet", "viridis", "inferno", "gray"], default_value="jet").tag(sync=True)
    """Heatmap colormap."""
    show_points = traitlets.Bool(False).tag(sync=True)
    """Draw Segment Anything point prompts for the selected label (from ``method``'s map)."""
    points = traitlets.List().tag(sync=True)
    """Point prompts ``[x, y, label]`` (label 1 positive, 0 negative) in pixels of ``image``."""
    busy = traitlets.Bool(False).tag(sync=True)
    """True while maps are being computed."""
    display_width = traitlets.Int(384, min=64).tag(sync=True)
    """On-screen width of the image in CSS pixels (of each image, side by side)."""

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
        try:
            self._tower = tower_of(session.model) if session is not None else None
        except UnsupportedModelError:  # no method applies: the first computation says so in the widget
            self._tower = None
        self.result: DenseMapResult | None = None
        self.compare_result: DenseMapResult | None = None
        self._results: dict[str, DenseMapResult] = {}  # by method, for the inputs in ``_results_for``
        self._results_for: tuple[Any, ...] | None = None
        names = method_names(self._tower) if self._tower else []
        self.set_trait("methods", [_method_entry(name) for name in names])
        super().__init__(**traits)  # a method the tower cannot run is an argument error: it raises
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

    @traitlets.validate("method", "compare")
    def _validate_method(self, proposal: dict[str, Any]) -> str:
        name = proposal["value"]
        if name == "" and proposal["trait"].name == "compare":
            return name
        if self._tower is None:  # an unsupported tower: dense_maps reports it when the maps are made
            if name not in METHODS:
                raise ValueError(f"unknown dense-map method {name!r}; choose one of {', '.join(METHODS)}")
        else:  # an unknown name, or one the tower cannot run: the message lists those it can
            _check_method(name, self._tower, {})
        return name

    @traitlets.observe("labels", "image", "scale", "method", "compare")
    def _inputs_changed(self, change: dict[str, Any]) -> None:
        if self._session is not None and getattr(self, "_ready", False):
            self._recompute()

    @traitlets.observe("threshold", "threshold_method", "selected")
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
            self.result = self.compare_result = None
            with self.hold_sync():
                self.maps = self.compare_maps = None
                self.probs, self.map_scales, self.cutoffs, self.points = [], {}, {}, []
            return
        # Maps are smooth upsamplings of a coarse token grid, so sending them at full image
        # resolution would only multiply the bytes per update; the browser scales them up.
        height, width = self.image.shape[:2]
        scale = min(1.0, self._map_side / max(height, width))
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        inputs = (self.image, tuple(self.labels), self.scale, size)
        reusable = self._results_for is not None and self._results_for[0] is inputs[0]
        reusable = reusable and self._results_for[1:] == inputs[1:]
        known = self._results if reusable else {}
        results: dict[str, DenseMapResult] = {}  # kept only when every method succeeded
        for name in dict.fromkeys(n for n in (self.method, self.compare) if n):
            results[name] = known.get(name) or self._dense_maps(name, size)
        self._results, self._results_for = results, inputs  # a switch between the two computes nothing
        result = results[self.method]
        compare = results.get(self.compare)
        if result is self.result and compare is self.compare_result:
            return  # shown already: a switch in the browser changes both methods, one notice each
        self.result, self.compare_result = result, compare
        with self.hold_sync():
            self.maps = _to_uint8(result.maps)
            self.compare_maps = None if compare is None else _to_uint8(compare.maps)
            self.map_scales = {name: r.info["scale"] for name, r in results.items()}
            self.probs = [float(p) for p in result.probs]
            if self._pick_present:
                self.selected = int(np.argmax(result.probs))
                self._pick_present = False
            elif self.selected >= len(self.labels):
                self.selected = len(self.labels) - 1
            self._update_cutoffs()

    def _dense_maps(self, method: str, size: tuple[int, int]) -> DenseMapResult:
        options = {"depth": self._depth} if method == "surgery" and self._depth is not None else {}
        return dense_maps(self._session, self.image, self.labels, method=method, size=size,
                          templates=self._templates, scale=self.scale, **options)  # fmt: skip

    def _update_cutoffs(self) -> None:
        result = self.result
        if result is None:
            return
        shown = [r for r in (result, self.compare_result) if r is not None]
        cutoffs = {r.method: [threshold_value(m, self.threshold_method, self.threshold) for m in r.maps] for r in shown}
        points: list[list[int]] = []
        if 0 <= self.selected < len(result.labels):
            # on the map's own scale, so a label the image does not show gets no positive points;
            # maps are sent small, so the points are placed on the image's own pixels
            xy, kind = _points(result, self.selected, cutoffs[result.method][self.selected], self.image.shape[:2])
            points = [[int(x), int(y), int(k)] for (x, y), k in zip(xy, kind, strict=True)]
        with self.hold_sync():
            self.cutoffs = cutoffs
            self.points = points


def _points(result: DenseMapResult, index: int, threshold: float, shape: tuple[int, int]):
    """Point prompts for label ``index`` in pixels of an image of ``shape`` (H, W), on the map's scale."""
    return similarity_map_to_points(result.tokens[index], shape, threshold=threshold,
                                    value_range=result.value_range(index))  # fmt: skip


def _method_entry(name: str) -> dict[str, str]:
    spec = METHODS[name]
    return {"name": name, "title": spec.title, "value": "relevance" if spec.kind == "relevance" else "similarity"}


def _to_uint8(maps: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(maps * 255.0), 0, 255).astype(np.uint8)
