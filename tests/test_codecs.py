import json

import numpy as np
import pytest
from ipywidgets.widgets.widget import _remove_buffers

from clip_widgets.codecs import array_from_json, array_to_json


@pytest.mark.parametrize("dtype", ["uint8", "float32", "int32"])
def test_round_trip(dtype):
    array = (np.arange(24).reshape(2, 3, 4) * 3).astype(dtype)
    encoded = array_to_json(array)
    assert encoded["dtype"] == dtype and encoded["shape"] == [2, 3, 4]
    decoded = array_from_json({**encoded, "view": bytes(encoded["view"])})
    np.testing.assert_array_equal(decoded, array)
    assert decoded.dtype == array.dtype


def test_zero_copy_and_narrowing():
    array = np.ones((4, 4), np.uint8)
    encoded = array_to_json(array)
    array[0, 0] = 7  # the buffer is a view, not a copy
    assert encoded["view"][0] == 7
    assert array_to_json(np.zeros(3))["dtype"] == "float32"
    assert array_to_json(np.zeros(3, bool))["dtype"] == "uint8"
    assert array_to_json(np.zeros((3, 3))[:, 1])["shape"] == [3]  # non-contiguous input
    assert array_to_json(None) is None and array_from_json(None) is None
    with pytest.raises(TypeError, match="do not cross"):
        array_to_json(np.zeros(2, np.int64))
    empty = array_to_json(np.zeros((16, 0), np.float32))  # e.g. attribution to no classes
    assert empty["shape"] == [16, 0] and len(empty["view"]) == 0
    assert array_from_json({**empty, "view": bytes(empty["view"])}).shape == (16, 0)


def test_state_travels_as_binary_buffers_not_json():
    """ipywidgets pulls the view out of the JSON state into a binary buffer."""
    state = {"image": array_to_json(np.zeros((64, 64, 3), np.uint8))}
    stripped, paths, buffers = _remove_buffers(state)
    assert paths == [["image", "view"]]
    assert len(buffers) == 1 and buffers[0].nbytes == 64 * 64 * 3
    assert len(json.dumps(stripped)) < 100
