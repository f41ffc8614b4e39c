"""Point prompts to masks: the offline random walker on world scenes, the whole chain from a
dense map, and the Segment Anything adapter against segment_anything's own model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clip_widgets.errors import UnsafeCheckpointError
from clip_widgets.segment import RandomWalkerSegmenter, SamSegmenter, default_segmenter, label_mask, points_to_mask
from clip_widgets.session import ModelSession
from clip_widgets.world import class_prompt, draw_scene


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _scene(k: int, spec=(("red", "star"), ("blue", "circle"))):
    return draw_scene(np.random.default_rng(k), spec=list(spec), word_probability=0.0, size=128)


def test_the_random_walker_fills_the_shape_a_point_is_on():
    scores = []
    for k in range(4):
        scene = _scene(k)
        star = scene.objects[0]
        ys, xs = np.nonzero(star.mask)
        inside = np.array([[int(np.median(xs)), int(np.median(ys))]])
        if not star.mask[inside[0, 1], inside[0, 0]]:  # a star's median can fall between its points
            inside = np.array([[xs[len(xs) // 2], ys[len(ys) // 2]]])
        mask = points_to_mask(scene.image, inside, [1], segmenter="random_walker")  # border = background
        scores.append(_iou(mask, star.mask))
    assert np.mean(scores) > 0.8, scores
    image = np.asarray(_scene(0).image)
    assert not RandomWalkerSegmenter()(image, np.array([[5, 5]]), np.array([0])).any()  # no object point
    with pytest.raises(ValueError, match="outside"):
        points_to_mask(image, [[500, 3]], [1])
    with pytest.raises(ValueError, match="choose one of"):
        default_segmenter("watershed")


def test_a_surgery_map_to_points_to_a_mask_covers_its_object_and_not_the_other():
    """On world-vit's 8 x 8 Surgery maps, each label's mask overlaps its own shape (IoU about
    0.4), hardly the other one, and an absent label's mask is empty."""
    session = ModelSession.from_embedded("world-vit", device="cpu")
    labels = [class_prompt(c) for c in ("red star", "blue circle", "green square")]
    own, other, absent, iou = [], [], [], []
    for k in range(10, 14):
        scene = _scene(k)
        for i in (0, 1):
            mask, points, _ = label_mask(session, scene.image, labels[i], labels, segmenter="random_walker")
            assert mask.shape == scene.objects[i].mask.shape and points.shape[1] == 2
            own.append((mask & scene.objects[i].mask).sum() / scene.objects[i].mask.sum())
            iou.append(_iou(mask, scene.objects[i].mask))
            other.append((mask & scene.objects[1 - i].mask).sum() / scene.objects[1 - i].mask.sum())
        empty, points, _ = label_mask(session, scene.image, labels[2], labels, segmenter="random_walker")
        absent.append(empty.mean())
        assert len(points) == 0
    assert np.mean(iou) > 0.3 and np.mean(own) > 0.6 and np.mean(other) < 0.25, (iou, own, other)
    assert np.max(absent) == 0.0


@pytest.fixture(scope="module")
def tiny_sam():
    build = pytest.importorskip("segment_anything.build_sam")
    torch.manual_seed(0)
    return build._build_sam(encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=[1])


def test_the_sam_adapter_reads_safe_weights_and_predicts_as_segment_anything_does(tmp_path, tiny_sam):
    from safetensors.torch import save_file
    from segment_anything import SamPredictor

    path = tmp_path / "sam_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_sam.state_dict().items()}, path)
    segmenter = SamSegmenter(path, device="cpu")
    image = np.asarray(_scene(0).image)
    points, labels = np.array([[40, 30], [5, 120]]), np.array([1, 0])
    mask = segmenter(image, points, labels)
    reference = SamPredictor(tiny_sam)
    reference.set_image(image)
    masks, scores, _ = reference.predict(point_coords=points.astype(np.float32), point_labels=labels,
                                         multimask_output=True)  # fmt: skip
    assert mask.dtype == bool and mask.shape == image.shape[:2]
    np.testing.assert_array_equal(mask, masks[int(np.argmax(scores))])
    assert not segmenter(image, points[1:], labels[1:]).any()  # background points only: nothing
    # another picture in a fresh array: its own embedding, not the previous image's
    other = np.asarray(_scene(1).image)
    reference.set_image(other)
    masks, scores, _ = reference.predict(point_coords=points.astype(np.float32), point_labels=labels,
                                         multimask_output=True)  # fmt: skip
    np.testing.assert_array_equal(segmenter(other, points, labels), masks[int(np.argmax(scores))])


def test_the_sam_adapter_refuses_unsafe_or_foreign_files(tmp_path):
    pytest.importorskip("segment_anything")

    class Payload:
        def __reduce__(self):
            return (print, ("this would run",))

    unsafe = tmp_path / "sam.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": Payload()}, unsafe)
    with pytest.raises(UnsafeCheckpointError):
        SamSegmenter(unsafe)
    foreign = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not a Segment Anything checkpoint"):
        SamSegmenter(foreign)
