"""Feature visualization: parameterizations, transforms and objectives checked by hand
computation; the render loop checked by what it achieves on real (tiny, in-process) models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clip_widgets import ModelSession
from clip_widgets.errors import LayerNotFoundError
from clip_widgets.featvis import evaluate, grid, render, render_units
from clip_widgets.featvis import objectives as obj
from clip_widgets.featvis.param import (
    COLOR_CORRELATION,
    NATURAL_DECAY,
    FixedImage,
    FourierImage,
    LowResImage,
    PhaseImage,
    PixelImage,
    TransparentImage,
    amplitude_spectrum,
    fft_frequencies,
    image,
    random_backgrounds,
)
from clip_widgets.featvis.render import ActivationReader, to_uint8
from clip_widgets.featvis.transform import (
    compose,
    jitter,
    pad,
    random_crop,
    random_dihedral,
    random_rotate,
    random_scale,
    standard_transforms,
)


@pytest.fixture(scope="module")
def vit() -> ModelSession:
    torch.manual_seed(0)
    return ModelSession.from_config("tiny-vit", device="cpu")


@pytest.fixture(scope="module")
def resnet() -> ModelSession:
    torch.manual_seed(0)
    session = ModelSession.from_config("tiny-resnet", device="cpu")
    # open_clip zero-initializes each bottleneck's last BatchNorm, which leaves a random ResNet's
    # deep units dead; give them trained-like gains so there is something to optimize
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in session.model.visual.named_parameters():
            if name.endswith(("bn1.weight", "bn2.weight", "bn3.weight")):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=generator))
    return session


# -- parameterizations -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fourier", "phase", "transparent", "pixel", "lowres"])
def test_parameterizations_give_seeded_images_in_range(kind):
    a, b, c = (image(2, 16, 20, kind=kind, seed=s)() for s in (0, 0, 1))
    assert a.shape == (2, 3, 16, 20)
    assert a.min() > 0 and a.max() < 1
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    with pytest.raises(ValueError, match="unknown parameterization"):
        image(1, 8, kind="wavelet")


def test_fourier_image_of_a_constant_spectrum_is_flat():
    param = FourierImage(1, 8, 12, decorrelate=False)
    with torch.no_grad():
        param.spectrum.zero_()
        param.spectrum[0, :, 0, 0, 0] = torch.tensor([0.5, -1.0, 2.0])
    # the DC bin alone: irfft2 (orthonormal) gives X0 / sqrt(H W); the DC scale is
    # sqrt(H W) / (1 / max(H, W)); the result is divided by 4 before the sigmoid
    expected = torch.sigmoid(torch.tensor([0.5, -1.0, 2.0]) * 12 / 4)
    torch.testing.assert_close(param()[0], expected[:, None, None].expand(3, 8, 12))


def test_fourier_scale_damps_high_frequencies():
    param = FourierImage(1, 32, 32, decorrelate=False)
    assert param.scale[1, 1] > param.scale[8, 8] > param.scale[16, 16]
    assert param.scale[0, 0] == param.scale[0, 1]  # the DC bin is clamped to the lowest frequency


def test_colour_decorrelation_is_the_matrix_then_sigmoid():
    assert math.isclose(float(COLOR_CORRELATION.norm(dim=0).max()), 1.0, rel_tol=1e-6)
    param = PixelImage(2, 4, 5, sd=1.0, seed=3)
    x = param.pixels.detach()
    manual = torch.sigmoid(torch.stack([sum(COLOR_CORRELATION[i, j] * x[:, j] for j in range(3)) for i in range(3)], 1))
    torch.testing.assert_close(param(), manual)


@pytest.mark.parametrize("decorrelate", [False, True])
def test_fixed_image_starts_from_the_given_pixels(decorrelate):
    pixels = torch.rand(2, 3, 6, 7) * 0.9 + 0.05
    torch.testing.assert_close(FixedImage(pixels, decorrelate=decorrelate)(), pixels, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        FixedImage(torch.rand(2, 4, 6, 7))


def test_phase_image_keeps_the_magnitude_spectrum_whatever_the_phase():
    param = PhaseImage(2, 16, 20, mean_colour=0, tilt=0, decorrelate=False, seed=0)
    with torch.no_grad():  # any phase an optimizer may reach; the disabled freedoms do nothing
        param.phase.copy_(torch.randn(param.phase.shape) * 5)
        param.colour.fill_(3.0)
        param.slope.fill_(3.0)
    raw = param.raw()
    assert torch.allclose(raw.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(raw.std(dim=(1, 2, 3)), torch.ones(2), atol=1e-4)
    # the bins whose conjugate twin is stored too (width 0 and Nyquist columns) may only be
    # mixed by irfft2; elsewhere each bin's amplitude is the fixed one up to one scale per image
    amplitude = torch.fft.rfft2(raw, norm="ortho").abs()[..., 1:-1]
    ratio = amplitude / param.magnitude[..., 1:-1]
    for k in range(2):
        torch.testing.assert_close(ratio[k], ratio[k].mean().expand_as(ratio[k]), rtol=1e-3, atol=1e-4)


def test_phase_image_frees_only_a_bounded_mean_colour_and_slope():
    param = PhaseImage(2, 16, 20, mean_colour=1.0, tilt=0.5, seed=0)
    with torch.no_grad():
        param.phase.copy_(torch.randn(param.phase.shape) * 5)
        param.colour.copy_(torch.tensor([[-50.0, 0.3, 50.0], [0.0, 0.0, 0.0]]).view(2, 3, 1, 1))
        param.slope.copy_(torch.tensor([50.0, -0.2]).view(2, 1, 1, 1))
    raw = param.raw()
    # no channel has a DC bin, so each channel's mean is the bounded colour, whatever the parameter
    means = raw.mean(dim=(2, 3))
    expected = torch.tensor([[-1.0, math.tanh(0.3), 1.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(means, expected, atol=1e-5, rtol=0)
    # the spectrum keeps its shape up to one slope per image: amplitude / (natural * f**tilt) is flat
    amplitude = torch.fft.rfft2(raw - raw.mean(dim=(2, 3), keepdim=True), norm="ortho").abs()[..., 1:-1]
    shaped = param.spectrum_magnitude()[..., 1:-1]
    for k in range(2):
        ratio = amplitude[k] / shaped[k]
        torch.testing.assert_close(ratio, ratio.mean().expand_as(ratio), rtol=1e-3, atol=1e-4)
    # image 0's slope is at its bound: its high frequencies are boosted by at most f**0.5 (cycles per image)
    frequency = torch.exp(param.log_frequency)
    torch.testing.assert_close(shaped[0, 0], (param.magnitude * frequency**0.5)[..., 1:-1], rtol=1e-4, atol=0)
    with pytest.raises(ValueError, match="bounds"):
        PhaseImage(1, 8, 8, tilt=-1)


def test_amplitude_spectrum_is_the_mean_of_each_images_centred_channels():
    rng = np.random.default_rng(0)
    images = rng.random((3, 3, 12, 10))
    # numpy's FFT, one image and channel at a time, is the reference
    expected = np.mean([np.abs(np.fft.rfft2(ch - ch.mean(), norm="ortho")) for image in images for ch in image], 0)
    expected[0, 0] = 0.0
    spectrum = amplitude_spectrum(torch.from_numpy(images))
    np.testing.assert_allclose(spectrum.numpy(), expected, rtol=1e-5, atol=1e-6)
    # a vertical grating puts all its energy in one horizontal frequency
    columns = np.cos(2 * np.pi * 3 * np.arange(10) / 10)
    grating = np.broadcast_to(0.5 + 0.4 * columns, (1, 3, 12, 10)).copy()
    peak = amplitude_spectrum(torch.from_numpy(grating))
    assert peak.argmax().item() == 3 and peak.sum() == pytest.approx(peak[0, 3].item(), rel=1e-4)
    with pytest.raises(ValueError, match="non-empty"):
        amplitude_spectrum(torch.zeros(0, 3, 8, 8))


def test_phase_image_keeps_a_given_spectrum_whatever_the_phase():
    spectrum = amplitude_spectrum(torch.rand(4, 3, 16, 20) ** 3)
    param = PhaseImage(2, 16, 20, mean_colour=0, spectrum=spectrum, seed=0)
    with torch.no_grad():
        param.phase.copy_(torch.randn(param.phase.shape) * 5)
    amplitude = torch.fft.rfft2(param.raw(), norm="ortho").abs()[..., 1:-1]
    for k in range(2):
        ratio = amplitude[k] / spectrum[..., 1:-1]
        torch.testing.assert_close(ratio, ratio.mean().expand_as(ratio), rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match=r"16 x 20 images has shape \(16, 11\)"):
        PhaseImage(1, 16, 20, spectrum=torch.ones(16, 20))
    with pytest.raises(ValueError, match="non-negative"):
        PhaseImage(1, 16, 20, spectrum=-spectrum)


def test_natural_decay_is_the_slope_of_photographs_spectra():
    data = pytest.importorskip("skimage.data")
    import torch.nn.functional as F

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    slopes = []
    for size in (64, 128):
        frequencies = fft_frequencies(size, size)
        amplitude = 0
        for photo in photos:
            x = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255).permute(2, 0, 1)[None]
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
            amplitude = amplitude + torch.fft.rfft2(x - x.mean(), norm="ortho").abs().mean(dim=(0, 1))
        keep = frequencies > 0
        slope = np.polyfit(np.log(frequencies[keep].numpy()), np.log(amplitude[keep].numpy()), 1)[0]
        slopes.append(-slope)
    assert all(abs(s - NATURAL_DECAY) < 0.3 for s in slopes), slopes


def test_random_backgrounds_are_flat_colours_greys_or_noise():
    grounds = random_backgrounds(60, 12, 16, torch.Generator().manual_seed(0))
    assert grounds.shape == (60, 3, 12, 16) and grounds.min() >= 0 and grounds.max() <= 1
    flat = grounds.flatten(2).std(-1).amax(-1) == 0
    grey = flat & (grounds == grounds[:, :1]).flatten(1).all(-1)
    # a third of each kind, give or take; noise varies over the image
    kinds = [int(grey.sum()), int((flat & ~grey).sum()), int((~flat).sum())]
    assert min(kinds) >= 10, kinds
    again = random_backgrounds(60, 12, 16, torch.Generator().manual_seed(0))
    torch.testing.assert_close(grounds, again)


def test_transparent_image_is_its_colour_over_a_background_by_its_alpha():
    param = TransparentImage(3, 16, 20, opacity_cost=0.5, background=0.25, seed=0)
    with torch.no_grad():
        param.alpha.phase.copy_(torch.randn(param.alpha.phase.shape) * 3)
    rgba = param.rgba()
    assert rgba.shape == (3, 4, 16, 20) and rgba.min() >= 0 and rgba.max() <= 1
    colour, alpha = rgba[:, :3], rgba[:, 3:]
    torch.testing.assert_close(alpha, torch.sigmoid(8.0 * param.alpha.raw()))  # the default sharpness
    torch.testing.assert_close(param(), colour * alpha + 0.25 * (1 - alpha))
    # the model sees it over a new random background at every step, drawn from the generator
    ground = random_backgrounds(3, 16, 20, torch.Generator().manual_seed(7))
    drawn = param.draw(torch.Generator().manual_seed(7))
    torch.testing.assert_close(drawn, colour * alpha + ground * (1 - alpha))
    score = torch.tensor([2.0, -1.0, 0.5])
    torch.testing.assert_close(param.cost(score), 0.5 * alpha.mean(dim=(1, 2, 3)))
    param.relative = True  # a share of each score's size
    torch.testing.assert_close(param.cost(score), 0.5 * alpha.mean(dim=(1, 2, 3)) * score.abs())
    # the alpha is one smooth channel: steeper than the colour's spectrum
    assert param.alpha.phase.shape[1] == 1
    with pytest.raises(ValueError, match="opacity_cost"):
        TransparentImage(1, 8, 8, opacity_cost=-1)
    with pytest.raises(ValueError, match="alpha_sharpness"):
        TransparentImage(1, 8, 8, alpha_sharpness=0)
    with pytest.raises(ValueError, match="channels"):
        PhaseImage(1, 8, 8, channels=1, decorrelate=True)


def test_the_opacity_cost_clears_what_the_objective_does_not_need(vit):
    objective = obj.channel("blocks.1", [0, 1])
    opacity = {}
    for cost in (0.0, 3.0):
        param = TransparentImage(2, 32, 32, opacity_cost=cost, alpha_bias=3.0, seed=0)
        result = render(vit, objective, param=param, steps=48, progress=False)
        with torch.no_grad():
            opacity[cost] = float(param.rgba()[:, 3].mean())
        # what render returns is the display: the images over the flat background
        with torch.no_grad():
            np.testing.assert_array_equal(result.images, to_uint8(param()))
    assert opacity[3.0] < opacity[0.0] - 0.15, opacity


def test_a_sharp_alpha_draws_silhouettes_not_clouds():
    """The default alpha is nearly opaque or nearly clear everywhere, with the same smooth
    outlines as a soft one (the same field through a steeper sigmoid)."""
    with torch.no_grad():
        soft, sharp = (TransparentImage(4, 64, 64, alpha_sharpness=k, seed=0).rgba()[:, 3] for k in (1.0, 8.0))
    half_clear = [float(((alpha > 0.1) & (alpha < 0.9)).float().mean()) for alpha in (soft, sharp)]
    assert half_clear[1] < 0.25 and half_clear[0] > 0.9, half_clear
    assert torch.equal(sharp > 0.5, soft > 0.5)


def test_lowres_image_is_smooth():
    param = LowResImage(1, 32, 32, factor=8, sd=1.0, seed=0, decorrelate=False)
    assert param.pixels.shape == (1, 3, 4, 4)
    out = param()
    assert (out[..., 1:] - out[..., :-1]).abs().max() < 0.2


# -- transforms --------------------------------------------------------------------------------


def test_pad_and_jitter():
    x = torch.rand(3, 3, 10, 10)
    padded = pad(2, value=0.5)(x)
    assert padded.shape == (3, 3, 14, 14)
    assert (padded[:, :, :2] == 0.5).all() and torch.equal(padded[:, :, 2:-2, 2:-2], x)
    shifted = jitter(4)(x, torch.Generator().manual_seed(0))
    assert shifted.shape == (3, 3, 7, 7)
    for i in range(3):  # each image is some 7 x 7 crop of its own input
        crops = [x[i, :, dy : dy + 7, dx : dx + 7] for dy in range(4) for dx in range(4)]
        assert any(torch.equal(shifted[i], crop) for crop in crops)


def test_scale_and_rotate():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(random_scale([1.0])(x, generator), x)
    torch.testing.assert_close(random_rotate([0])(x, generator), x)
    # a quarter turn of a square image lands pixel centres on pixel centres: exactly rot90
    torch.testing.assert_close(random_rotate([90])(x, generator), torch.rot90(x, 1, dims=(2, 3)), atol=1e-4, rtol=0)
    zoomed = random_scale([2.0])(x, generator)
    assert zoomed[0, 0].std() < x[0, 0].std()  # a 2x zoom shows the middle half, with less spread


def test_random_crop_zooms_into_a_box_and_adds_noise():
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(4, 3, 32, 32).contiguous()
    generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(random_crop(1.0)(ramp, generator), ramp, atol=1e-5, rtol=0)
    crops = random_crop(0.5)(ramp, generator)
    for out in crops:
        row = out[0, 16]
        steps = row[1:-1].diff()
        # a box of 0.5-1 of the side, resized to the full side: the ramp's slope shrinks by the
        # same factor, and what is shown is a contiguous piece of it
        assert 0.5 / 31 - 1e-4 <= float(steps.mean()) <= 1 / 31 + 1e-4
        assert torch.allclose(steps, steps.mean().expand_as(steps), atol=1e-4)
        assert row.min() >= 0 and row.max() <= 1
    noisy = random_crop(1.0, noise=0.1)(ramp, generator)
    assert 0.08 < float((noisy - ramp).std()) < 0.12
    with pytest.raises(ValueError, match="min_scale"):
        random_crop(0)


def test_random_dihedral_turns_and_mirrors_each_image_exactly():
    square = torch.rand(1, 3, 8, 8).expand(64, 3, 8, 8)
    group = [torch.rot90(m, k, dims=(1, 2)) for m in (square[0], square[0].flip(-1)) for k in range(4)]
    out = random_dihedral()(square, torch.Generator().manual_seed(0))
    which = [[i for i, g in enumerate(group) if torch.equal(o, g)] for o in out]
    assert all(len(w) == 1 for w in which)  # each output is exactly one of the eight
    assert {w[0] for w in which} == set(range(8))  # and each of the eight is drawn
    wide = torch.rand(16, 3, 4, 8)
    turned = random_dihedral()(wide, torch.Generator().manual_seed(0))
    assert turned.shape == wide.shape  # half and quarter turns only where they keep the shape
    for o, x in zip(turned, wide, strict=True):
        assert any(torch.equal(o, g) for g in (x, x.flip(-1), x.flip(-2), x.flip(-1).flip(-2)))


def test_transforms_are_per_image_and_reproducible():
    x = torch.rand(8, 3, 32, 32)
    chain = compose(standard_transforms(32))
    a = chain(x, torch.Generator().manual_seed(1))
    b = chain(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    same = chain(x[:1].expand(8, -1, -1, -1), torch.Generator().manual_seed(2))
    assert len({tuple(img.flatten()[:50].tolist()) for img in same}) > 1  # not one draw for the batch


# -- objectives on hand-made activations -------------------------------------------------------


def test_channel_and_neuron_on_feature_maps():
    x = torch.randn(3, 5, 4, 4)
    acts = {"conv": x}
    torch.testing.assert_close(obj.channel("conv", 2)(acts), x[:, 2].mean(dim=(1, 2)))
    per_image = torch.stack([x[0, 0], x[1, 4], x[2, 1]]).mean((1, 2))
    torch.testing.assert_close(obj.channel("conv", [0, 4, 1])(acts), per_image)
    torch.testing.assert_close(obj.neuron("conv", 3)(acts), x[:, 3, 2, 2])
    torch.testing.assert_close(obj.neuron("conv", 3, where=(1, 0))(acts), x[:, 3, 1, 0])
    with pytest.raises(IndexError, match="out of range.*5 units"):
        obj.channel("conv", 5)(acts)
    with pytest.raises(ValueError, match="2 units given for a batch of 3"):
        obj.channel("conv", [1, 2])(acts)
    with pytest.raises(ValueError, match="one position"):
        obj.neuron("conv", 1, where="all")


def test_token_objectives_handle_the_class_token():
    x = torch.randn(2, 1 + 9, 6)  # class token + a 3 x 3 patch grid
    acts = {"blocks.0": x}
    torch.testing.assert_close(obj.channel("blocks.0", 4)(acts), x[:, 1:, 4].mean(1))
    torch.testing.assert_close(obj.channel("blocks.0", 4, where="class")(acts), x[:, 0, 4])
    torch.testing.assert_close(obj.channel("blocks.0", 4, where="all")(acts), x[:, :, 4].mean(1))
    torch.testing.assert_close(obj.neuron("blocks.0", 1)(acts), x[:, 1 + 4, 1])  # centre patch
    torch.testing.assert_close(obj.neuron("blocks.0", 1, where=(2, 1))(acts), x[:, 1 + 2 * 3 + 1, 1])
    torch.testing.assert_close(obj.neuron("blocks.0", 1, where=0)(acts), x[:, 0, 1])


def test_directions_and_composition():
    x = torch.randn(2, 1 + 4, 3)
    v = torch.tensor([1.0, -2.0, 0.5])
    acts = {"t": x, "embedding": torch.randn(2, 3)}
    patches = x[:, 1:]
    dot = patches @ v
    torch.testing.assert_close(obj.direction("t", v)(acts), dot.mean(1))
    unit = v / v.norm()
    cos = (patches @ unit) / patches.norm(dim=-1)
    expected = ((patches @ unit) * cos.clamp(min=0.1) ** 2).mean(1)
    torch.testing.assert_close(obj.direction_cossim("t", v, power=2)(acts), expected)
    w = torch.diag(torch.tensor([2.0, 1.0, 1.0]))
    torch.testing.assert_close(obj.direction_cossim("t", v, whitening=w)(acts),
                               obj.direction_cossim("t", w @ v)(acts))  # fmt: skip
    torch.testing.assert_close(obj.deepdream("t")(acts), x.pow(2).mean((1, 2)))
    t = torch.randn(3)
    torch.testing.assert_close(obj.text(t)(acts), torch.nn.functional.cosine_similarity(acts["embedding"], t[None]))

    a, b = obj.channel("t", 0), obj.direction("t", v)
    combined = 2 * a - b / 4 + 1.5
    torch.testing.assert_close(combined(acts), 2 * a(acts) - b(acts) / 4 + 1.5)
    torch.testing.assert_close((a * b)(acts), a(acts) * b(acts))
    torch.testing.assert_close((-a)(acts), -a(acts))
    assert (a + obj.text(t)).needs_embedding and not (a + b).needs_embedding
    assert (a + obj.channel("u", 0)).layers == ("t", "u")
    with pytest.raises(KeyError, match="'u' was not captured"):
        obj.channel("u", 0)(acts)


def test_diversity_prefers_different_images():
    same = {"t": torch.randn(1, 5, 4).expand(3, -1, -1)}
    different = {"t": torch.randn(3, 5, 4)}
    torch.testing.assert_close(obj.diversity("t")(same), torch.full((3,), -1.0))
    assert (obj.diversity("t")(different) > -1).all()


# -- the render loop on real models ------------------------------------------------------------


@pytest.mark.parametrize("engine", ["phase", "fourier"])
def test_render_raises_every_unit_well_above_random_images(vit, engine):
    units = list(range(8))
    objective = obj.channel("blocks.1", units)
    if engine == "phase":  # the default: MACO, against random images with the same spectrum
        result = render(vit, objective, batch=8, steps=96, progress=False)
        with torch.no_grad():
            random_images = PhaseImage(64, 32, 32, seed=1)()
    else:  # lucid's: free Fourier coefficients and small transforms, against uniform noise
        param = FourierImage(8, 32, 32, seed=0)
        result = render(vit, objective, param=param, transforms=standard_transforms(32), steps=64, progress=False)
        random_images = torch.rand(64, 3, 32, 32)
    assert result.images.shape == (8, 32, 32, 3) and result.images.dtype == np.uint8
    baseline = np.stack([evaluate(vit, obj.channel("blocks.1", u), random_images) for u in units])  # (unit, image)
    achieved = evaluate(vit, objective, result.images)
    assert (achieved > baseline.max(1) + 0.3).all(), (achieved, baseline.max(1))
    # image i is made for unit i: it excites unit i more than the other units' images do
    table = np.stack([evaluate(vit, obj.channel("blocks.1", u), result.images) for u in units])  # (unit, image)
    assert (table.argmax(1) == np.arange(8)).mean() >= 0.75, table.round(2)
    # where the feature is: the importance map is in [0, 1] and not flat
    assert result.importance.shape == (8, 32, 32) and 0 <= result.importance.min() < result.importance.max() <= 1


@pytest.mark.parametrize("engine", ["phase", "fourier"])
def test_render_on_a_resnet(resnet, engine):
    with torch.no_grad():
        phase_images = PhaseImage(16, 64, 64, seed=1)()
    random_images = phase_images if engine == "phase" else torch.rand(16, 3, 64, 64)
    # a random ResNet has dead units; take four that respond to something
    per_unit = np.stack([evaluate(resnet, obj.channel("layer3", u), random_images) for u in range(32)])
    units = np.argsort(-per_unit.mean(1))[:4].tolist()
    objective = obj.channel("layer3", units)
    if engine == "phase":
        # a fixed natural spectrum cannot feed an untrained network's taste for pixel noise, so
        # the margin over random images of that spectrum is smaller (1.3-1.5x measured)
        result, margin = render(resnet, objective, batch=4, steps=48, progress=False), 1.2
    else:
        param = FourierImage(4, 64, 64, seed=0)
        result = render(resnet, objective, param=param, transforms=standard_transforms(64), steps=48, progress=False)
        margin = 1.5
    assert (evaluate(resnet, objective, result.images) > margin * per_unit[units].max(1)).all()


def test_render_is_reproducible_streams_frames_and_can_be_interrupted(vit):
    objective = obj.neuron("blocks.0", [3, 5])
    grad_flags = [p.requires_grad for p in vit.model.parameters()]
    first = render(vit, objective, batch=2, steps=10, seed=4, progress=False)
    again = render(vit, objective, batch=2, steps=10, seed=4, progress=False)
    np.testing.assert_array_equal(first.images, again.images)
    assert not np.array_equal(first.images, render(vit, objective, batch=2, steps=10, seed=5, progress=False).images)

    frames = []
    render(vit, objective, batch=2, steps=10, every=4, progress=False,
           callback=lambda step, images, scores: frames.append((step, images.shape, scores.shape)))  # fmt: skip
    assert frames == [(4, (2, 32, 32, 3), (2,)), (8, (2, 32, 32, 3), (2,)), (10, (2, 32, 32, 3), (2,))]

    def stop_at_six(step, images, scores):
        if step >= 6:
            raise KeyboardInterrupt

    stopped = render(vit, objective, batch=2, steps=100, every=3, progress=False, callback=stop_at_six)
    assert stopped.interrupted and stopped.steps == 6 and stopped.images.shape == (2, 32, 32, 3)
    calls = iter(range(100))
    early = render(vit, objective, batch=2, steps=100, progress=False, should_stop=lambda: next(calls) >= 2)
    assert early.interrupted and early.steps == 3
    assert [p.requires_grad for p in vit.model.parameters()] == grad_flags  # restored after rendering


def test_render_averages_each_steps_gradient_over_its_views(vit):
    """``views`` random draws a step, the gradient their mean: Adam's first step moves every
    pixel by ``lr`` against the sign of the mean gradient, which a hand replay of the same draws
    computes; the gradient of the last draw alone points elsewhere."""
    objective = obj.channel("blocks.1", 0)
    crop = random_crop(0.5, noise=0.05)
    param = PixelImage(1, 32, 32, decorrelate=False, seed=0)
    before = param.pixels.detach().clone()
    result = render(vit, objective, param=param, transforms=[crop], views=3, steps=1, lr=0.01, seed=7, progress=False)
    moved = param.pixels.detach() - before

    replay = PixelImage(1, 32, 32, decorrelate=False, seed=0)
    reader = ActivationReader(vit, objective)
    generator = torch.Generator().manual_seed(7)
    gradients, scores = [], []
    for _ in range(3):
        replay.pixels.grad = None
        score = objective(reader(crop(replay.draw(generator), generator)))
        score.sum().backward()
        gradients.append(replay.pixels.grad.clone())
        scores.append(float(score.detach()))
    mean = torch.stack(gradients).mean(0)
    clear = mean.abs() > 1e-3 * mean.abs().max()  # where the sign is not lost in rounding
    assert (torch.sign(moved)[clear] == torch.sign(mean)[clear]).all()
    torch.testing.assert_close(moved[clear].abs(), torch.full_like(moved[clear], 0.01), rtol=1e-3, atol=0)
    assert (torch.sign(gradients[-1])[clear] != torch.sign(mean)[clear]).float().mean() > 0.1
    assert result.scores == pytest.approx([np.mean(scores)], rel=1e-5)  # the mean over the views
    with pytest.raises(ValueError, match="views must be at least 1, got 0"):
        render(vit, objective, views=0, steps=1, progress=False)


def test_render_stops_the_forward_pass_at_the_deepest_layer_needed(vit):
    calls = []
    handle = vit.layers.module("ln_post").register_forward_hook(lambda *_: calls.append(1))
    try:
        render(vit, obj.channel("blocks.0", 0), steps=2, progress=False, transforms=[])
        assert calls == []
        render(vit, obj.channel("blocks.0", 0) + obj.text(torch.randn(vit.embed_dim)), steps=2, progress=False)
        assert len(calls) == 2  # the embedding needs the whole tower
    finally:
        handle.remove()


def test_render_errors_are_clear(vit):
    with pytest.raises(LayerNotFoundError, match="Valid names: conv1, ln_pre, blocks.0"):
        render(vit, obj.channel("block.1", 0), steps=1, progress=False)
    with pytest.raises(ValueError, match="3 units given for a batch of 2"):
        render(vit, obj.channel("blocks.0", [0, 1, 2]), batch=2, steps=1, progress=False)


def test_render_units_covers_a_layer_in_chunks(vit):
    result = render_units(vit, "blocks.0", units=range(6), chunk=4, steps=6, progress=False)
    assert result.images.shape == (6, 32, 32, 3) and result.scores.shape == (6,) and not result.interrupted
    # chunking changes nothing about which image shows which unit
    alone = render(vit, obj.channel("blocks.0", [4, 5]), batch=2, steps=6, progress=False)
    np.testing.assert_array_equal(result.images[4:], alone.images)


def test_render_units_takes_each_chunks_parameterization_from_a_function(vit):
    made = []

    def published_maco(batch):
        made.append(PhaseImage(batch, 32, 32, mean_colour=0, tilt=0, seed=1))
        return made[-1]

    result = render_units(vit, "blocks.0", units=range(5), chunk=3, param=published_maco, steps=4, progress=False)
    assert [p.batch for p in made] == [3, 2]
    with torch.no_grad():  # the images are the chunks' own parameterizations, in order
        np.testing.assert_array_equal(result.images[3:], to_uint8(made[1]()))
    with pytest.raises(TypeError, match="function of the batch size"):
        render_units(vit, "blocks.0", units=range(2), param=PhaseImage(2, 32, 32), steps=1, progress=False)


def test_grid_lays_images_out_in_rows():
    images = np.stack([np.full((4, 5, 3), 10 * i, np.uint8) for i in range(5)])
    sheet = np.asarray(grid(images, columns=3, scale=2, gap=1))
    assert sheet.shape == (2 * 8 + 1, 3 * 10 + 2, 3)
    assert (sheet[:8, :10] == 0).all() and (sheet[9:, 11:21] == 40).all()
    assert (sheet[9:, 22:] == 255).all()  # the empty sixth cell stays white


def test_overlapping_renders_leave_the_model_as_they_found_it(vit_session):
    from clip_widgets.featvis.render import _frozen

    model = vit_session.model
    assert all(p.requires_grad for p in model.parameters())
    outer = _frozen(model)
    inner = _frozen(model)
    outer.__enter__()
    inner.__enter__()  # a second render starts while the first runs
    assert not any(p.requires_grad for p in model.parameters())
    outer.__exit__(None, None, None)  # the first ends first
    assert not any(p.requires_grad for p in model.parameters())  # the second still runs
    inner.__exit__(None, None, None)
    assert all(p.requires_grad for p in model.parameters()) and not model.training
