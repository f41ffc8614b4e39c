"""Arrays across the widget boundary as binary buffers, never base64 JSON.

An array crosses as ``{"view": <buffer>, "dtype": "uint8", "shape": [H, W, 3]}``; ipywidgets sends
the buffer as a binary frame of the comm message and the front end's ``js/src/codecs.js`` reads
it as a typed array without a copy. Only compact dtypes travel: float64 becomes float32 and
bool becomes uint8 on the way out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import traitlets

WIRE_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32")
_NARROWED = {np.dtype("float64"): np.float32, np.dtype("bool"): np.uint8, np.dtype("float16"): np.float32}


def array_to_json(value: np.ndarray | None, widget: Any = None) -> dict[str, Any] | None:
    """Serialize an array to a ``{view, dtype, shape}`` dict whose ``view`` is a zero-copy buffer."""
    if value is None:
        return None
    array = np.asarray(value)
    if array.dtype in _NARROWED:
        array = array.astype(_NARROWED[array.dtype])
    if array.dtype.name not in WIRE_DTYPES:
        raise TypeError(f"arrays of dtype {array.dtype} do not cross to the browser; use one of {WIRE_DTYPES}")
    array = np.ascontiguousarray(array)
    view = memoryview(array).cast("B") if array.size else memoryview(b"")  # an empty array: no bytes
    return {"view": view, "dtype": array.dtype.name, "shape": list(array.shape)}


def array_from_json(value: dict[str, Any] | None, widget: Any = None) -> np.ndarray | None:
    """Rebuild an array from the front end's ``{view, dtype, shape}`` dict."""
    if value is None:
        return None
    dtype = np.dtype(value["dtype"])
    shape = tuple(int(n) for n in value["shape"])
    return np.frombuffer(value["view"], dtype=dtype).reshape(shape).copy()


array_serialization = {"to_json": array_to_json, "from_json": array_from_json}


class Array(traitlets.TraitType):
    """A numpy array trait (or None) that syncs as a binary buffer; ``dtype`` fixes its type."""

    info_text = "a numpy array"

    def __init__(self, dtype: str | None = None, ndim: int | None = None, **kwargs: Any):
        kwargs.setdefault("allow_none", True)
        kwargs.setdefault("default_value", None)
        super().__init__(**kwargs)
        self.dtype = np.dtype(dtype) if dtype else None
        self.ndim = ndim
        self.tag(sync=True, **array_serialization)

    def validate(self, obj: Any, value: Any) -> np.ndarray | None:
        if value is None:
            return None
        array = np.asarray(value)
        if self.ndim is not None and array.ndim != self.ndim:
            self.error(obj, value, info=f"an array with {self.ndim} dimensions, got shape {array.shape}")
        if self.dtype is not None and array.dtype != self.dtype:
            array = array.astype(self.dtype)
        return array
