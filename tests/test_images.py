"""Image loading: real files written with Pillow, in-memory arrays and tensors, broken inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from clip_widgets.errors import ImageLoadError
from clip_widgets.images import iter_images, list_image_files, load_image

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def _is_red(px) -> bool:
    r, g, b = px[:3]
    return r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied(tmp_path):
    # stored 40 wide x 20 high, red block in the stored top-left corner
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 8, 8))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif, quality=95)

    out = load_image(path)
    assert out.mode == "RGB"
    assert out.size == (20, 40)  # width and height swapped
    # a clockwise quarter turn moves the stored top-left corner to the top-right
    assert _is_red(out.getpixel((out.width - 3, 2)))
    assert not _is_red(out.getpixel((2, 2)))
    assert not _is_red(out.getpixel((out.width - 3, out.height - 3)))


def test_sixteen_bit_grayscale_png_scales_to_eight_bits(tmp_path):
    values = np.full((10, 12), 51400, dtype=np.uint16)  # 51400 / 257 = 200
    values[0, 0] = 65535
    values[0, 1] = 0
    path = tmp_path / "depth16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # really stored as 16-bit

    out = np.asarray(load_image(path))
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8
    assert tuple(out[5, 5]) == (200, 200, 200)
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (0, 0, 0)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red ...
    rgba[:4, :, 3] = 0  # ... transparent in the top half
    rgba[4:, :, 3] = 255  # ... opaque in the bottom half
    rgba[4:, :4, 3] = 128  # ... half transparent bottom-left
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, mode="RGBA").save(path)

    out = np.asarray(load_image(path)).astype(int)
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[7, 7]) == (255, 0, 0)
    r, g, b = out[7, 0]
    assert r == 255 and abs(g - 127) <= 1 and abs(b - 127) <= 1

    la = Image.fromarray(np.stack([np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)], -1), mode="LA")
    assert tuple(np.asarray(load_image(la))[0, 0]) == (255, 255, 255)


def test_cmyk_jpeg(tmp_path):
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    path = tmp_path / "print.jpg"
    cmyk.save(path, quality=95)
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    out = load_image(path)
    assert out.mode == "RGB"
    assert _is_red(out.getpixel((8, 8)))


def test_palette_png_with_transparency(tmp_path):
    img = Image.new("P", (6, 6), 0)
    img.putpalette([0, 0, 0, 0, 200, 0] + [0] * (256 * 3 - 6))
    img.paste(1, (0, 0, 3, 6))  # left half: palette entry 1 (green)
    path = tmp_path / "palette.png"
    img.save(path, transparency=0)  # entry 0 is transparent
    with Image.open(path) as raw:
        assert raw.mode == "P" and "transparency" in raw.info

    out = np.asarray(load_image(path))
    assert tuple(out[0, 0]) == (0, 200, 0)
    assert tuple(out[0, 5]) == (255, 255, 255)  # transparent -> white, not black

    opaque = Image.new("P", (2, 2), 1)
    opaque.putpalette([0, 0, 0, 10, 20, 30] + [0] * (256 * 3 - 6))
    assert tuple(np.asarray(load_image(opaque))[0, 0]) == (10, 20, 30)


def test_numpy_inputs():
    gray = np.array([[0, 128], [255, 64]], dtype=np.uint8)
    assert tuple(np.asarray(load_image(gray))[0, 1]) == (128, 128, 128)

    sixteen = np.full((3, 3), 257 * 77, dtype=np.uint16)
    assert tuple(np.asarray(load_image(sixteen))[1, 1]) == (77, 77, 77)

    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = True
    out = np.asarray(load_image(mask))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 1]) == (0, 0, 0)

    floats = np.zeros((5, 6, 3), dtype=np.float32)
    floats[..., 2] = 1.0
    floats[..., 1] = 0.5
    out = np.asarray(load_image(floats))
    assert out.shape == (5, 6, 3) and tuple(out[0, 0]) == (0, 128, 255)

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)  # fully transparent black
    assert tuple(np.asarray(load_image(rgba))[0, 0]) == (255, 255, 255)

    with pytest.raises(ImageLoadError, match=r"\[0, 1\]"):
        load_image(np.full((4, 4, 3), 200.0))
    with pytest.raises(ImageLoadError, match="HxW"):
        load_image(np.zeros((5, 4, 5), dtype=np.uint8))


def test_tensor_inputs():
    chw = torch.zeros(3, 4, 5)
    chw[0] = 1.0
    out = load_image(chw)
    assert out.size == (5, 4) and out.getpixel((0, 0)) == RED

    hwc = torch.zeros(6, 5, 3, dtype=torch.uint8)
    hwc[..., 2] = 255
    out = load_image(hwc)
    assert out.size == (5, 6) and out.getpixel((1, 1)) == BLUE
    # when both readings are possible, the torch convention (channels first) wins
    assert load_image(torch.zeros(3, 6, 4)).size == (4, 6)

    batched = torch.rand(1, 3, 6, 7, requires_grad=True)
    assert load_image(batched).size == (7, 6)

    gray = torch.full((1, 3, 3), 0.5, dtype=torch.float16)
    assert load_image(gray).getpixel((0, 0)) == (128, 128, 128)


def test_pil_input_gets_mode_conversion():
    img = Image.new("L", (3, 2), 90)
    out = load_image(img)
    assert out.mode == "RGB" and out.getpixel((2, 1)) == (90, 90, 90)


@pytest.mark.parametrize("content", [b"this is not an image at all", b""])
def test_bad_file_raises_naming_the_file(tmp_path, content):
    path = tmp_path / "broken_photo.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert "broken_photo.jpg" in str(info.value)
    assert info.value.source == path


def test_truncated_jpeg_raises(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)  # incompressible: many bytes of scan data
    full = tmp_path / "full.jpg"
    Image.fromarray(noise).save(full, quality=90)
    data = full.read_bytes()
    cut = tmp_path / "cut_short.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="cut_short.jpg") as info:
        load_image(cut)
    assert "truncated" in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageLoadError, match="nowhere.png.*not found"):
        load_image(tmp_path / "nowhere.png")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def test_batch_skips_broken_file_with_warning(tmp_path):
    good_a = tmp_path / "a.png"
    good_c = tmp_path / "c.png"
    Image.new("RGB", (4, 4), RED).save(good_a)
    Image.new("RGB", (4, 4), BLUE).save(good_c)
    bad = tmp_path / "b_corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")

    errors: list[ImageLoadError] = []
    with pytest.warns(UserWarning, match="b_corrupt.png"):
        loaded = list(iter_images([good_a, bad, good_c], errors=errors))
    assert [src for src, _ in loaded] == [good_a, good_c]
    assert loaded[1][1].getpixel((0, 0)) == BLUE
    assert len(errors) == 1 and errors[0].source == bad

    with pytest.raises(ImageLoadError, match="b_corrupt.png"):
        list(iter_images([good_a, bad], on_error="raise"))
    with pytest.raises(ValueError, match="on_error"):
        list(iter_images([good_a], on_error="ignore"))


def test_directory_is_walked_sorted_and_recursive(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for rel in ["b.png", "a.JPG", "sub/c.webp", ".hidden/x.png"]:
        fmt = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[rel.rsplit(".", 1)[1].lower()]
        Image.new("RGB", (4, 4), RED).save(tmp_path / rel, format=fmt)
    (tmp_path / "notes.txt").write_text("not an image")

    names = [p.relative_to(tmp_path).as_posix() for p in list_image_files(tmp_path)]
    assert names == ["a.JPG", "b.png", "sub/c.webp"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = list(iter_images(tmp_path))
    assert [p.name for p, _ in loaded] == ["a.JPG", "b.png", "c.webp"]
    assert all(img.mode == "RGB" for _, img in loaded)


def test_real_photo(astronaut, tmp_path):
    from skimage.data import astronaut as load

    pixels = load()
    path = tmp_path / "astronaut.png"
    Image.fromarray(pixels).save(path)
    for source in (path, str(path), pixels, astronaut, torch.from_numpy(pixels)):
        out = load_image(source)
        assert out.mode == "RGB" and out.size == (512, 512)
        np.testing.assert_array_equal(np.asarray(out), pixels)
    assert load_image(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255).size == (512, 512)


# ---------------------------------------------------------------------------------------------
# Size limits: a small file must not cost gigabytes
# ---------------------------------------------------------------------------------------------


def png_header_only(path, width: int, height: int) -> None:
    """A PNG that declares ``width`` x ``height`` and holds no pixel data: opening it reads the
    header, decoding it fails. So an error about its size proves nothing was decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)


def test_an_image_over_the_pixel_budget_is_refused_from_its_header(tmp_path):
    import clip_widgets.images as images

    assert images.MAX_PIXELS == 40_000_000
    big = tmp_path / "bilevel_144mp.png"
    Image.new("1", (12000, 12000)).save(big)  # 144 megapixels in a few kilobytes
    assert big.stat().st_size < 400_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning becomes our error, not a warning
        with pytest.raises(ImageLoadError) as info:
            load_image(big)
    message = str(info.value)
    assert "bilevel_144mp.png" in message and "12000 x 12000 pixels (144.0 megapixels)" in message
    assert "limit of 40 megapixels" in message and "MAX_PIXELS" in message

    header_only = tmp_path / "header_only.png"
    png_header_only(header_only, 10000, 5000)
    with pytest.raises(ImageLoadError, match="header_only.png: 10000 x 5000 pixels"):
        load_image(header_only)  # decoding would have failed with "truncated" instead
    # a PIL image that was opened but not decoded
    with Image.open(header_only) as lazy, pytest.raises(ImageLoadError, match="10000 x 5000"):
        load_image(lazy)


def test_the_budget_is_adjustable_and_holds_for_arrays(tmp_path, monkeypatch):
    import clip_widgets.images as images

    path = tmp_path / "small.png"
    Image.new("RGB", (30, 20), RED).save(path)
    monkeypatch.setattr(images, "MAX_PIXELS", 500)
    with pytest.raises(ImageLoadError, match="small.png: 30 x 20 pixels .* limit of 0.0005 megapixels"):
        load_image(path)
    with pytest.raises(ImageLoadError, match="30 x 20 pixels"):
        load_image(np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(ImageLoadError, match="30 x 20 pixels"):
        load_image(torch.zeros(3, 20, 30))
    monkeypatch.setattr(images, "MAX_PIXELS", 600)
    assert load_image(path).size == (30, 20)
    monkeypatch.setattr(images, "MAX_PIXELS", None)
    huge = tmp_path / "past_pillows_limit.png"
    png_header_only(huge, 20000, 20000)  # over twice Pillow's own limit: its hard error
    with pytest.raises(ImageLoadError, match="past_pillows_limit.png: too large for Pillow .*MAX_PIXELS is none"):
        load_image(huge)


def test_batches_skip_an_image_over_the_budget_and_name_it(tmp_path):
    Image.new("RGB", (4, 4), RED).save(tmp_path / "a.png")
    Image.new("1", (10000, 5000)).save(tmp_path / "b_huge.png")
    errors: list[ImageLoadError] = []
    with pytest.warns(UserWarning, match="b_huge.png"):
        loaded = list(iter_images(tmp_path, errors=errors))
    assert [p.name for p, _ in loaded] == ["a.png"] and "50.0 megapixels" in str(errors[0])


@pytest.mark.parametrize("size", [(3, 2000), (2000, 3), (5, 1500), (40, 3000), (3000, 40), (64, 6000), (7, 500)])
def test_a_strip_is_resampled_only_where_the_crop_looks_with_the_plain_result(size, astronaut):
    from clip_widgets.images import transform_image
    from clip_widgets.session import ModelSession

    session = ModelSession.default(device="cpu")
    rng = np.random.default_rng(sum(size))
    noise = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    for picture in (astronaut.resize(size, Image.Resampling.BICUBIC), noise):
        plain = session._transform(picture)  # open_clip's own path: resize everything, then crop
        bounded = transform_image(session._transform, picture)
        levels = ((bounded - plain).abs() * torch.tensor(session.std).view(3, 1, 1) * 255).max()
        assert levels <= 1.0 + 1e-4, f"{size}: {levels} grey levels apart"  # rounding of the box's float corners


def test_ordinary_images_take_the_plain_path_bit_for_bit(astronaut):
    from clip_widgets.images import transform_image
    from clip_widgets.session import ModelSession

    session = ModelSession.from_config("tiny-resnet", device="cpu")
    for size in ((512, 512), (200, 150), (150, 600)):
        picture = astronaut.resize(size)
        assert torch.equal(transform_image(session._transform, picture), session._transform(picture))


def test_a_one_pixel_wide_png_costs_kilobytes_not_gigabytes(tmp_path):
    import json
    import subprocess
    import sys

    strip = Image.new("RGB", (1, 100_000), BLUE)
    strip.paste(RED, (0, 49_900, 1, 50_100))  # the middle rows, where the centre crop looks
    path = tmp_path / "strip.png"
    strip.save(path)
    assert path.stat().st_size < 1000
    script = f"""
import json, resource, time
import numpy as np
from PIL import Image
from clip_widgets.session import ModelSession
session = ModelSession.default(device="cpu")
session.preprocess(Image.new("RGB", (80, 60)))  # everything lazy is loaded before measuring
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
pixels = session.preprocess({str(path)!r})
seconds = time.perf_counter() - start
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
rgb = pixels[0].float() * np.array(session.std).reshape(3, 1, 1) + np.array(session.mean).reshape(3, 1, 1)
off_red = float((rgb * 255 - np.array([255, 0, 0]).reshape(3, 1, 1)).abs().max())
print(json.dumps({{"grown_mb": grown, "seconds": seconds, "shape": list(pixels.shape), "off_red": off_red}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["grown_mb"] < 200 and result["seconds"] < 5, result  # it was 1.9 GB and 27 s
    assert result["shape"] == [1, 3, 64, 64]
    assert result["off_red"] < 1.0, result  # the model sees the red middle of the strip
