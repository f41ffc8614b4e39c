"""Turn whatever a notebook user has at hand into an 8-bit RGB PIL image.

Accepted inputs: a file path, a PIL image, raw bytes or a binary file object, a numpy array or a
torch tensor. Every failure is an :class:`~clip_widgets.errors.ImageLoadError` whose message names
the file (or describes the array), so a batch can report exactly which item was skipped.

Conversion rules (the places where a naive ``img.convert("RGB")`` goes wrong):

* EXIF orientation is applied, so phone photos come out upright.
* 16-bit grayscale (``I;16`` modes, 16-bit PNGs) is scaled by 1/257 instead of being clipped at 255.
  Mode ``I`` (32-bit integer) is treated as 16-bit data when any value exceeds 255, else as 8-bit.
  Mode ``F`` (float) is taken as [0, 1] when it fits there, else [0, 255], else min-max scaled.
* Transparency (RGBA, LA, palette images with a transparent colour) is composited over white.
* CMYK, YCbCr, LAB, HSV and bilevel images go through Pillow's own conversion to RGB.

Size limits, so that a small file cannot cost gigabytes: an image over :data:`MAX_PIXELS` is
refused from its header, before a pixel is decoded; and :func:`transform_image` resizes an image
of extreme aspect ratio only where the model's centre crop will look, never the whole strip.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms import CenterCrop, Resize
from torchvision.transforms.functional import pil_modes_mapping

from .errors import ImageLoadError

MAX_PIXELS: int | None = 40_000_000
"""The pixel budget of one image (width x height; 40 megapixels, 120 MB decoded as RGB). Larger
images are refused with an :class:`ImageLoadError` naming the file, its size and this limit,
read from the file's header before anything is decoded (a 0.4 MB PNG can hold 144 megapixels).
Arrays, tensors and PIL images are held to it too. Adjustable:
``clip_widgets.images.MAX_PIXELS = 100_000_000``, or ``None`` for no budget of this package's own;
Pillow's hard limit (twice ``PIL.Image.MAX_IMAGE_PIXELS``) still applies then."""

IMAGE_EXTENSIONS = frozenset(
    (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
    + (".ppm", ".pgm", ".pbm", ".pnm", ".ico", ".tga")
)
"""File name endings (lower case) that :func:`iter_images` picks up when it walks a directory."""

_WHITE = (255, 255, 255)
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


# ---------------------------------------------------------------------------------------------
# Mode conversion
# ---------------------------------------------------------------------------------------------


def _over_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, _WHITE + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _gray_array_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    values = values.astype(np.float64)
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and values.size and values.max() > 255):
        out = np.clip(values, 0, 65535) / 257.0
    elif mode == "F":
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            out = values * 255.0
        elif lo >= 0.0 and hi <= 255.0:
            out = values
        else:
            out = (values - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(values)
    else:  # mode "I" holding 8-bit values
        out = values
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a decoded PIL image of any mode to 8-bit RGB (see the module notes)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        return _over_white(img) if "transparency" in img.info else img.convert("RGB")
    if mode in _ALPHA_MODES:
        return _over_white(img)
    if mode in _SIXTEEN_BIT_MODES or mode in {"I", "F"}:
        gray = _gray_array_to_uint8(np.asarray(img), mode)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if mode in {"L", "1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"}:
        return img.convert("RGB")
    return img.convert("RGB")


def _upright(img: Image.Image) -> Image.Image:
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:  # a malformed EXIF block should not cost the user the image
        return img
    return img if out is None else out


# ---------------------------------------------------------------------------------------------
# Arrays and tensors
# ---------------------------------------------------------------------------------------------


def _describe(array: np.ndarray | torch.Tensor) -> str:
    kind = "tensor" if isinstance(array, torch.Tensor) else "array"
    return f"<{kind} shape={tuple(array.shape)} dtype={array.dtype}>"


def _tensor_to_hwc(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    channels_first = t.ndim == 3 and t.shape[0] in (1, 3, 4)
    if channels_first and t.shape[-1] in (1, 3, 4) and t.shape[0] not in (1, 3, 4):
        channels_first = False
    if channels_first:  # the torch convention, also when both layouts would fit
        t = t.permute(1, 2, 0)
    if t.is_floating_point() and t.dtype != torch.float64:
        t = t.float()
    return t.numpy()


def _array_to_uint8(a: np.ndarray, label: str) -> np.ndarray:
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return np.rint(a.astype(np.float64) / 257.0).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        if a.size and (a.min() < 0 or a.max() > 255):
            reason = "integer values outside 0..255; pass uint8, uint16 or floats in [0, 1]"
            raise ImageLoadError(label, reason)
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if a.size and not np.isfinite(a).all():
            raise ImageLoadError(label, "array contains NaN or infinite values")
        if a.size and (a.min() < -1e-3 or a.max() > 1 + 1e-3):
            raise ImageLoadError(
                label, f"float values must lie in [0, 1] (found {a.min():.3g}..{a.max():.3g}); divide by 255?"
            )
        return np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ImageLoadError(label, f"unsupported dtype {a.dtype}")


def _array_to_image(a: np.ndarray, label: str) -> Image.Image:
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[-1] not in (1, 3, 4) and a.shape[0] in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # channels-first array
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ImageLoadError(label, "expected HxW, HxWx3 or HxWx4 (or CxHxW for tensors)")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageLoadError(label, "image has no pixels")
    check_pixels(a.shape[1], a.shape[0], label)
    u8 = np.ascontiguousarray(_array_to_uint8(a, label))
    if u8.ndim == 2:
        return Image.fromarray(u8, mode="L").convert("RGB")
    if u8.shape[-1] == 4:
        return _over_white(Image.fromarray(u8, mode="RGBA"))
    return Image.fromarray(u8, mode="RGB")


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def check_pixels(width: int, height: int, label: Any) -> None:
    """Raise :class:`ImageLoadError` when a ``width`` x ``height`` image is over :data:`MAX_PIXELS`."""
    limit = MAX_PIXELS
    if limit is not None and width * height > limit:
        raise ImageLoadError(
            label,
            f"{width} x {height} pixels ({width * height / 1e6:.1f} megapixels) is over the limit of "
            f"{limit / 1e6:g} megapixels; raise clip_widgets.images.MAX_PIXELS to load it",
        )


def _open_file(source: Any, label: Any) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow's own size warning: check_pixels below says the same, naming the file
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(source)  # lazy: reads the header only
        with opened as img:
            check_pixels(*img.size, label)  # before decoding a single pixel
            img.load()  # decode now, so truncated data fails here and not later
            out = to_rgb(_upright(img))
            return img.copy() if out is img else out  # closing the file invalidates ``img``
    except ImageLoadError:  # over the budget: already says what and why (and is a ValueError)
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(label, "not a recognised image format") from None
    except Image.DecompressionBombError as e:
        limit = "none" if MAX_PIXELS is None else f"{MAX_PIXELS / 1e6:g} megapixels"
        raise ImageLoadError(label, f"too large for Pillow ({e}); clip_widgets.images.MAX_PIXELS is {limit}") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = str(e) or type(e).__name__
        raise ImageLoadError(label, f"corrupt or truncated image data ({reason})") from e


def _load_path(path: Path) -> Image.Image:
    if not path.exists():
        raise ImageLoadError(path, "file not found")
    if path.is_dir():
        raise ImageLoadError(path, "is a directory, not an image file (use iter_images for folders)")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageLoadError(path, f"cannot read file ({e})") from e
    if size == 0:
        raise ImageLoadError(path, "file is empty")
    return _open_file(path, path)


def load_image(source: Any) -> Image.Image:
    """Load ``source`` as an RGB PIL image.

    ``source`` is a path (``str`` or ``Path``), a PIL image, ``bytes`` or a binary file object, a
    numpy array (``HxW``, ``HxWx3``, ``HxWx4``; uint8, uint16, bool or floats in [0, 1]) or a torch
    tensor (``CxHxW`` or ``HxWxC``, floats in [0, 1] or uint8). Raises :class:`ImageLoadError`,
    also for an image over :data:`MAX_PIXELS` (checked before a file is decoded).
    """
    if isinstance(source, Image.Image):
        check_pixels(*source.size, getattr(source, "filename", "") or "<PIL image>")  # may not be decoded yet
        try:
            source.load()
        except (OSError, SyntaxError, ValueError) as e:
            label = getattr(source, "filename", "") or "<PIL image>"
            raise ImageLoadError(label, f"corrupt or truncated image data ({e})") from e
        return to_rgb(_upright(source))
    if isinstance(source, (str, os.PathLike)):
        return _load_path(Path(source).expanduser())
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageLoadError("<bytes>", "no data")
        return _open_file(io.BytesIO(bytes(source)), "<bytes>")
    if isinstance(source, torch.Tensor):
        label = _describe(source)
        return _array_to_image(_tensor_to_hwc(source), label)
    if isinstance(source, np.ndarray):
        return _array_to_image(source, _describe(source))
    if hasattr(source, "read"):
        return _open_file(source, str(getattr(source, "name", "<file object>")))
    raise ImageLoadError(repr(source)[:80], f"unsupported image source type {type(source).__name__}")


# ---------------------------------------------------------------------------------------------
# Model input
# ---------------------------------------------------------------------------------------------

_RESIZE_SLACK = 4
"""How many times the crop's area the resized image may have before only the cropped part is resampled."""


def _resize_then_crop(transform: Callable) -> tuple[int, int | None, Any, tuple[int, int], list] | None:
    """(short side, max_size, interpolation, crop (h, w), the steps after the crop) of a
    ``Compose([Resize(int), CenterCrop, ...])``, as open_clip builds for inference; else None."""
    steps = list(getattr(transform, "transforms", None) or [])
    if len(steps) < 2 or not isinstance(steps[0], Resize) or not isinstance(steps[1], CenterCrop):
        return None
    size = steps[0].size
    if isinstance(size, (list, tuple)):
        if len(size) != 1:
            return None  # a fixed output size: nothing grows with the aspect ratio
        size = size[0]
    crop = steps[1].size
    return int(size), steps[0].max_size, steps[0].interpolation, (int(crop[0]), int(crop[-1])), steps[2:]


def transform_image(transform: Callable, picture: Image.Image) -> Any:
    """``transform(picture)`` with memory bounded by a few times the model's input size.

    open_clip's inference transform resizes the short side to the input size and then crops the
    centre; for a 1 x 100000 strip that first builds a 64 x 6.4 million image. When the resized
    image would be over :data:`_RESIZE_SLACK` times the crop, only the region the crop keeps is
    resampled: the source is cut to that region plus the filter's reach, and Pillow's ``resize``
    with a source ``box`` applies the same filter at the same scale and positions, so the
    result equals the plain path (bit for bit on the shapes the tests try; in general within
    the rounding of the box's float coordinates). Other transforms, and images of ordinary shape, go
    through ``transform`` unchanged."""
    plan = _resize_then_crop(transform)
    if plan is None:
        return transform(picture)
    short_side, max_size, interpolation, (crop_h, crop_w), rest = plan
    width, height = picture.size
    # torchvision's output size for Resize(int) (transforms.functional._compute_resized_output_size)
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = short_side, int(short_side * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    if new_w * new_h <= _RESIZE_SLACK * crop_h * crop_w or new_w < crop_w or new_h < crop_h:
        return transform(picture)
    top, left = int(round((new_h - crop_h) / 2.0)), int(round((new_w - crop_w) / 2.0))  # as center_crop
    scale_x, scale_y = width / new_w, height / new_h
    box = (left * scale_x, top * scale_y, (left + crop_w) * scale_x, (top + crop_h) * scale_y)
    # Cut first: Pillow then resamples a small image, as it would the whole one (its choice of
    # pass order depends on the image's shape, and the order changes the rounding).
    reach = 4 * max(1.0, scale_x, scale_y) + 2  # input pixels any of Pillow's filters may touch
    x0, y0 = max(0, int(box[0] - reach)), max(0, int(box[1] - reach))
    x1, y1 = min(width, math.ceil(box[2] + reach)), min(height, math.ceil(box[3] + reach))
    cut = picture.crop((x0, y0, x1, y1))
    inner = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
    out: Any = cut.resize((crop_w, crop_h), pil_modes_mapping[interpolation], box=inner)
    for step in rest:
        out = step(out)
    return out


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


def list_image_files(directory: str | os.PathLike) -> list[Path]:
    """Image files under ``directory`` (recursive, hidden entries skipped), sorted by path."""
    root = Path(directory)
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _expand(sources: Any) -> Iterator[Any]:
    single = isinstance(sources, (str, os.PathLike, Image.Image, bytes, bytearray)) or (
        isinstance(sources, (np.ndarray, torch.Tensor)) and sources.ndim < 4
    )
    if single:
        sources = [sources]
    for source in sources:
        if isinstance(source, (str, os.PathLike)) and Path(source).expanduser().is_dir():
            yield from list_image_files(Path(source).expanduser())
        else:
            yield source


def skip_reason(error: Exception) -> str:
    """Why an item could not be used, in the words the warnings and the stores use."""
    return error.reason if isinstance(error, ImageLoadError) else f"{type(error).__name__}: {error}"


def skip_warning(name: str, error: Exception | str) -> str:
    """Warn that the batch item ``name`` is skipped because of ``error`` (an exception, or its
    :func:`skip_reason` from another process); the reason, for a report."""
    reason = error if isinstance(error, str) else skip_reason(error)
    warnings.warn(f"skipping {name}: {reason}", UserWarning, stacklevel=3)
    return reason


def iter_images(
    sources: Iterable[Any] | str | os.PathLike,
    *,
    on_error: Literal["skip", "raise"] = "skip",
    errors: list[ImageLoadError] | None = None,
) -> Iterator[tuple[Any, Image.Image]]:
    """Yield ``(source, rgb_image)`` for each readable source.

    ``sources`` is an iterable of anything :func:`load_image` accepts, or a single path; directories
    (given alone or inside the iterable) are expanded to their image files, recursively and sorted.
    With ``on_error="skip"`` an unreadable source is skipped with a warning naming it (and its error
    appended to ``errors`` when a list is given); with ``on_error="raise"`` the error propagates.
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', not {on_error!r}")
    for source in _expand(sources):
        try:
            image = load_image(source)
        except ImageLoadError as e:
            if on_error == "raise":
                raise
            if errors is not None:
                errors.append(e)
            warnings.warn(f"skipping unreadable image: {e}", UserWarning, stacklevel=2)
            continue
        yield source, image
