"""From point prompts to masks: Segment Anything when it is installed and a checkpoint is given,
and an offline default that needs neither (a random walker seeded by the same points).

    mask = points_to_mask(image, points, labels)                       # random walker
    mask = points_to_mask(image, points, labels, segmenter=SamSegmenter("sam_vit_b_01ec64.pth"))

``points`` ``(K, 2)`` are ``(x, y)`` pixels and ``labels`` ``(K,)`` 1 (object) or 0 (background),
what :func:`clip_widgets.surgery.similarity_map_to_points` gives and ``SamPredictor.predict``
takes. :func:`label_mask` runs the whole chain for one label: dense map, points, mask.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from .images import load_image

__all__ = ["RandomWalkerSegmenter", "SamSegmenter", "Segmenter", "default_segmenter", "label_mask", "points_to_mask"]

SAM_CHECKPOINT_VARIABLE = "CLIP_WIDGETS_SAM_CHECKPOINT"
"""An environment variable naming a Segment Anything checkpoint for ``segmenter="auto"``."""


class Segmenter(Protocol):
    def __call__(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``(H, W)`` bool mask of the object the positive points are on."""


def _check_prompts(image: np.ndarray, points: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    if len(points) != len(labels):
        raise ValueError(f"{len(points)} points for {len(labels)} labels")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 1 (object) or 0 (background)")
    height, width = image.shape[:2]
    outside = (points[:, 0] < 0) | (points[:, 0] >= width) | (points[:, 1] < 0) | (points[:, 1] >= height)
    if outside.any():
        raise ValueError(f"points {points[outside].tolist()} are outside the {width} x {height} image")
    return points, labels.astype(np.uint8)


class RandomWalkerSegmenter:
    """The offline default (Grady, 2006; scikit-image's ``random_walker``): every pixel takes
    the label of the seeds a random walk from it reaches first, where steps across strong colour
    edges are unlikely (``beta``). Seeds are small disks (``radius`` as a share of the shorter
    side) around the points; with no background point, the image border is the background."""

    def __init__(self, beta: float = 130.0, radius: float = 0.02):
        self.beta, self.radius = float(beta), float(radius)

    def __call__(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        from skimage.segmentation import random_walker  # noqa: PLC0415

        points, labels = _check_prompts(image, points, labels)
        height, width = image.shape[:2]
        if not (labels == 1).any():
            return np.zeros((height, width), bool)
        seeds = np.zeros((height, width), np.int32)
        if not (labels == 0).any():
            seeds[[0, -1], :] = 2
            seeds[:, [0, -1]] = 2
        r = max(1, round(self.radius * min(height, width)))
        ys, xs = np.ogrid[:height, :width]
        for (x, y), label in zip(points, labels, strict=True):
            seeds[(xs - x) ** 2 + (ys - y) ** 2 <= r * r] = 1 if label == 1 else 2
        data = image.astype(np.float64) / 255.0
        with warnings.catch_warnings():  # the iterative solver's probabilities may leave [0, 1] by rounding
            warnings.filterwarnings("ignore", message="The probability range is outside", category=UserWarning)
            result = random_walker(
                data, seeds, beta=self.beta, mode="cg_j", channel_axis=-1 if data.ndim == 3 else None
            )
        return result == 1


class SamSegmenter:
    """Segment Anything (``pip install clip_widgets[sam]``) from a checkpoint file. The file is
    read as :class:`~clip_widgets.ModelSession` reads weights: safetensors or a weights-only
    pickle, anything else refused (:class:`~clip_widgets.errors.UnsafeCheckpointError`). The
    image encoder's size (ViT-B, -L, -H or another) is read off the weights' shapes. Of SAM's
    three candidate masks, the one it scores highest is returned."""

    def __init__(self, checkpoint: str | os.PathLike, device: str | None = None):
        try:
            from segment_anything import SamPredictor  # noqa: PLC0415
        except ImportError as e:
            raise ImportError("SamSegmenter needs the segment_anything package: pip install clip_widgets[sam]") from e
        from .model_loading import load_state_dict_file, resolve_device  # noqa: PLC0415

        state = load_state_dict_file(checkpoint)
        model = _build_sam(state, checkpoint)
        self.predictor = SamPredictor(model.to(resolve_device(device)))
        self._image: np.ndarray | None = None  # the image whose embedding the predictor holds

    def __call__(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        points, labels = _check_prompts(image, points, labels)
        if not (labels == 1).any():
            return np.zeros(image.shape[:2], bool)
        # the image embedding is the expensive part: once per image (compared by content, since
        # callers build a new array for the same picture)
        if self._image is None or self._image.shape != image.shape or not np.array_equal(self._image, image):
            self.predictor.set_image(np.ascontiguousarray(image[..., :3]))
            self._image = np.array(image, copy=True)
        masks, scores, _ = self.predictor.predict(point_coords=points.astype(np.float32), point_labels=labels,
                                                  multimask_output=True)  # fmt: skip
        return masks[int(np.argmax(scores))].astype(bool)


def _build_sam(state: dict, path: Any):
    """A SAM model shaped like the weights in ``state``, with them loaded."""
    from functools import partial  # noqa: PLC0415

    import torch  # noqa: PLC0415
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer  # noqa: PLC0415

    from .model_loading import load_weights  # noqa: PLC0415

    try:
        width = state["image_encoder.patch_embed.proj.weight"].shape[0]
        depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k)))
        head_width = state["image_encoder.blocks.0.attn.rel_pos_h"].shape[1]
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path} is not a Segment Anything checkpoint (no image encoder weights)") from e
    grid = 1024 // 16
    global_blocks = [
        i for i in range(depth) if state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0] == 2 * grid - 1
    ]
    model = Sam(
        image_encoder=ImageEncoderViT(depth=depth, embed_dim=width, img_size=1024, mlp_ratio=4,
                                      norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=width // head_width,
                                      patch_size=16, qkv_bias=True, use_rel_pos=True,
                                      global_attn_indexes=global_blocks, window_size=14, out_chans=256),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(grid, grid), input_image_size=(1024, 1024),
                                     mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(depth=2, embedding_dim=256,
                                 mlp_dim=2048, num_heads=8), transformer_dim=256, iou_head_depth=3,
                                 iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )  # fmt: skip
    load_weights(model, {k: v.float() for k, v in state.items()}, path)
    return model.eval()


@functools.lru_cache(maxsize=2)
def _sam_for(checkpoint: str) -> SamSegmenter:
    """One SAM per checkpoint file for ``segmenter="auto"``: loading it is seconds, not per call."""
    return SamSegmenter(checkpoint)


def default_segmenter(segmenter: Segmenter | str = "auto") -> Segmenter:
    """``"auto"``: SAM when ``segment_anything`` is installed and the environment variable
    ``CLIP_WIDGETS_SAM_CHECKPOINT`` names a checkpoint file, else the random walker;
    ``"random_walker"``; ``"sam"`` (needs the variable); or a segmenter as it is."""
    if callable(segmenter):
        return segmenter
    choices = ("auto", "random_walker", "sam")
    if segmenter not in choices:
        raise ValueError(f"unknown segmenter {segmenter!r}; choose one of {choices} or pass a segmenter")
    checkpoint = os.environ.get(SAM_CHECKPOINT_VARIABLE)
    if segmenter == "sam" or (segmenter == "auto" and checkpoint):
        if not checkpoint:
            raise ValueError(
                f"segmenter='sam' needs a checkpoint: set {SAM_CHECKPOINT_VARIABLE} or pass SamSegmenter(path)"
            )
        try:
            return _sam_for(checkpoint)
        except ImportError:
            if segmenter == "sam":
                raise
    return RandomWalkerSegmenter()


def points_to_mask(image: Any, points: Any, labels: Any, *, segmenter: Segmenter | str = "auto") -> np.ndarray:
    """``(H, W)`` bool: the mask of the object the positive points are on (see the module doc)."""
    picture = np.asarray(load_image(image).convert("RGB"))
    return default_segmenter(segmenter)(picture, points, labels)


def label_mask(
    session: Any,
    image: Any,
    label: str,
    labels: Sequence[str] | None = None,
    *,
    method: str = "surgery",
    threshold: float = 0.8,
    presence: float = 0.5,
    segmenter: Segmenter | str = "auto",
    **map_options: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense map to points to mask for ``label`` over ``image``: the map of ``method`` (any of
    :func:`clip_widgets.dense_maps`'s) among ``labels`` (default: ``[label]``), then point
    prompts, then the segmenter. Returns ``(mask, points, point_labels)``.

    Presence is judged on the labels' joint scale: a label whose map peaks below ``presence`` of
    the hottest label's peak gets no object point, so an absent label gives an empty mask. A
    present label's points come from its own map (cells at ``threshold`` of its own peak and
    above are the object, as many of its coldest cells the background), one per patch on small
    grids (8 x 8 or fewer), one per 2 x 2 patches on larger ones."""
    from .dense import dense_maps  # noqa: PLC0415
    from .surgery import similarity_map_to_points  # noqa: PLC0415

    names = [label] if labels is None else [str(x) for x in labels]
    if label not in names:
        raise ValueError(f"label {label!r} is not among labels {names}")
    picture = load_image(image).convert("RGB")
    result = dense_maps(session, picture, names, method=method, size="image", **map_options)
    index = names.index(label)
    low, high = result.value_range(index)
    tokens = result.tokens[index]
    peak = float(tokens.max())
    if high <= low or (peak - low) < presence * (high - low):
        return np.zeros((picture.height, picture.width), bool), np.zeros((0, 2), np.int64), np.zeros(0, np.uint8)
    points, point_labels = similarity_map_to_points(tokens, (picture.height, picture.width), threshold=threshold,
                                                    down_sample=1 if min(tokens.shape) <= 8 else 2,
                                                    value_range=(low, peak))  # fmt: skip
    mask = default_segmenter(segmenter)(np.asarray(picture), points, point_labels)
    return mask, points, point_labels
