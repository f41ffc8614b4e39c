"""Image parameterizations: what the optimizer changes, and how that becomes an RGB image.

Optimizing raw pixels finds high-frequency patterns the model responds to but people cannot see.
A Fourier parameterization scaled by 1/frequency gives every frequency an equal say, and a
decorrelated colour space (the square root of natural images' colour covariance) lets the
optimizer move along the directions where colours actually vary. Both still let the optimizer
raise the energy of fine detail, and on small or non-robust models that is where it goes
(static). :class:`PhaseImage` (MACO), the default of ``render``, fixes every frequency's energy to
a photograph's and optimizes only where it lands. Every parameterization is an ``nn.Module``
whose ``forward()`` returns a batch ``(N, 3, H, W)`` in [0, 1].
"""

from __future__ import annotations

import math
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

# Square root of the colour covariance of natural images (ImageNet), as an RGB matrix; its
# columns are the decorrelated colour directions. Normalized so the largest column has norm 1.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_CORRELATION = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


def _generator(seed: int | torch.Generator | None) -> torch.Generator | None:
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(int(seed))


class ImageParam(nn.Module):
    """Base class: ``forward()`` gives ``(N, 3, H, W)`` in [0, 1]; ``decorrelate`` maps the
    optimized colour channels through :data:`COLOR_CORRELATION` before the sigmoid.
    ``learning_rate`` is the Adam step that suits the parameterization's units."""

    learning_rate = 0.05

    def __init__(self, batch: int, height: int, width: int, decorrelate: bool = True):
        super().__init__()
        if batch < 1 or height < 1 or width < 1:
            raise ValueError(f"batch, height and width must be positive, got {batch}, {height}, {width}")
        self.batch, self.height, self.width, self.decorrelate = int(batch), int(height), int(width), decorrelate

    def raw(self) -> torch.Tensor:
        """The unconstrained image (N, 3, H, W) before colour mapping and squashing."""
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        x = self.raw()
        if self.decorrelate:
            x = torch.einsum("ij,njhw->nihw", COLOR_CORRELATION.to(x), x)
        return torch.sigmoid(x)

    def draw(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """The images as the model sees them during optimization (``forward()`` unless a
        parameterization draws them differently each step, such as over random backgrounds)."""
        return self()

    def cost(self, score: torch.Tensor) -> torch.Tensor | float:
        """What the parameterization charges per image, subtracted from the objective's
        ``score`` (given detached) during optimization; nothing by default."""
        return 0.0


class PixelImage(ImageParam):
    """One free parameter per pixel and channel."""

    def __init__(self, batch: int, height: int, width: int, *, sd: float = 0.01, decorrelate: bool = True,
                 seed: int | torch.Generator | None = None):  # fmt: skip
        super().__init__(batch, height, width, decorrelate)
        self.pixels = nn.Parameter(torch.randn(batch, 3, height, width, generator=_generator(seed)) * sd)

    def raw(self) -> torch.Tensor:
        return self.pixels


def fft_frequencies(height: int, width: int) -> torch.Tensor:
    """|frequency| (cycles per pixel) of each bin of a real 2-D FFT of an (height, width) image."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


class FourierImage(ImageParam):
    """The image's 2-D spectrum is the parameter, each bin scaled by 1/frequency^``decay``
    so low and high frequencies get comparable gradients."""

    learning_rate = 0.005

    def __init__(self, batch: int, height: int, width: int, *, sd: float = 0.01, decay: float = 1.0,
                 decorrelate: bool = True, seed: int | torch.Generator | None = None):  # fmt: skip
        super().__init__(batch, height, width, decorrelate)
        frequencies = fft_frequencies(height, width)
        scale = 1.0 / frequencies.clamp(min=1.0 / max(height, width)) ** decay
        # keep the total energy independent of image size
        self.register_buffer("scale", scale * math.sqrt(height * width), persistent=False)
        shape = (batch, 3, *frequencies.shape, 2)  # real and imaginary parts
        self.spectrum = nn.Parameter(torch.randn(shape, generator=_generator(seed)) * sd)

    def raw(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="ortho")
        return image / 4.0  # keeps the initial sigmoid inputs in its near-linear range


# Amplitude spectra of photographs fall off as 1 / frequency ** NATURAL_DECAY: the slope fitted on
# scikit-image's photographs cropped and resized to 64-224 px is 1.75-1.98 (tests re-measure it).
NATURAL_DECAY = 1.8


def amplitude_spectrum(images: torch.Tensor) -> torch.Tensor:
    """The mean amplitude spectrum ``(H, W // 2 + 1)`` of ``images`` (``(N, 3, H, W)`` in [0, 1]):
    the amplitudes averaged over channels and images, with the DC bin (the mean colour) zero.
    MACO keeps the spectrum of the images the model was trained on; this is what
    :class:`PhaseImage` takes as ``spectrum``."""
    if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, 3, H, W) batch, got {tuple(images.shape)}")
    total = torch.zeros(images.shape[2], images.shape[3] // 2 + 1, dtype=torch.float64)
    for chunk in images.split(64):
        total += torch.fft.rfft2(chunk.double(), norm="ortho").abs().mean(1).sum(0)
    spectrum = (total / len(images)).float()
    spectrum[0, 0] = 0.0
    return spectrum


class PhaseImage(ImageParam):
    """MACO (Fel et al., 2023): the magnitude of each image's spectrum is fixed to that of
    natural images (1 / frequency ** ``decay``) and only the phase is optimized. The optimizer
    cannot pump energy into single frequencies, so the image keeps a photograph's mix of coarse
    and fine structure and shows where the features are, not a lattice of pixel patterns. Each
    image is standardized and squashed; its channels are independent by default, which keeps
    the saturated colours drawn scenes have (the natural-image colour correlation mutes them).

    A few numbers per image are free beyond MACO's phase, because MACO cannot draw what many
    units of a late layer code: the backdrop. ``mean_colour`` bounds (in logits) a learnable mean
    colour per image (MACO's is always mid grey: no lawn, no night sky). ``tilt`` bounds a
    learnable change of the spectrum's slope (decay - tilt .. decay + tilt); it is off by default:
    on world-rn-robust the optimizer only ever flattens the slope, filling the picture with
    grain (a closer match to the scenes' noise backdrops by the numbers, static to a person).
    The slope moves all frequencies together, so single bins still cannot be pumped.
    ``mean_colour=0`` (:data:`MACO_AS_PUBLISHED`) is MACO as published.

    ``channels=1`` gives a grey-level map (an alpha channel, :class:`TransparentImage`).

    ``spectrum`` (``(H, W // 2 + 1)``, e.g. :func:`amplitude_spectrum` of the images the model
    saw, as MACO does with ImageNet's) replaces the power law: the drawn shapes of the embedded
    models' world have a far flatter spectrum (slope about 1) than photographs."""

    learning_rate = 0.1  # radians of phase per Adam step

    def __init__(self, batch: int, height: int, width: int, *, decay: float = NATURAL_DECAY,
                 mean_colour: float = 1.0, tilt: float = 0.0, spectrum: torch.Tensor | None = None,
                 decorrelate: bool = False, channels: int = 3,
                 seed: int | torch.Generator | None = None):  # fmt: skip
        super().__init__(batch, height, width, decorrelate)
        if channels < 1 or (decorrelate and channels != 3):
            raise ValueError(f"channels must be >= 1 (3 to decorrelate colours), got {channels}")
        if mean_colour < 0 or tilt < 0:
            raise ValueError(f"mean_colour and tilt are bounds and must be >= 0, got {mean_colour}, {tilt}")
        self.mean_colour, self.tilt = float(mean_colour), float(tilt)
        frequencies = fft_frequencies(height, width).clamp(min=1.0 / max(height, width))
        if spectrum is None:
            magnitude = 1.0 / frequencies**decay
        else:
            magnitude = torch.as_tensor(spectrum, dtype=torch.float32).detach().clone()
            if magnitude.shape != frequencies.shape:
                raise ValueError(f"a spectrum for {height} x {width} images has shape {tuple(frequencies.shape)}, "
                                 f"got {tuple(magnitude.shape)}")  # fmt: skip
            if not torch.isfinite(magnitude).all() or (magnitude < 0).any() or not magnitude.flatten()[1:].any():
                raise ValueError("a spectrum holds finite, non-negative amplitudes, not all zero")
        magnitude[0, 0] = 0.0  # no DC: the mean is set by the standardization and the mean colour
        self.register_buffer("magnitude", magnitude, persistent=False)
        # log of frequency in cycles per image: 0 at the lowest frequency, so a tilt keeps the
        # coarsest structure's amplitude and turns the rest of the spectrum about it
        self.register_buffer("log_frequency", torch.log(frequencies * max(height, width)), persistent=False)
        shape = (batch, channels, *frequencies.shape)
        self.phase = nn.Parameter((torch.rand(shape, generator=_generator(seed)) * 2 - 1) * math.pi)
        self.colour = nn.Parameter(torch.zeros(batch, channels, 1, 1))  # tanh-bounded by mean_colour
        self.slope = nn.Parameter(torch.zeros(batch, 1, 1, 1))  # tanh-bounded by tilt

    def spectrum_magnitude(self) -> torch.Tensor:
        """Each image's amplitude spectrum, ``(N, 1, H, W // 2 + 1)`` or, with no tilt, the
        shared ``(H, W // 2 + 1)`` (up to one scale)."""
        if not self.tilt:
            return self.magnitude
        tilt = self.tilt * torch.tanh(self.slope)
        return self.magnitude * torch.exp(tilt * self.log_frequency)

    def raw(self) -> torch.Tensor:
        spectrum = torch.polar(self.spectrum_magnitude().expand_as(self.phase), self.phase)
        image = torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="ortho")
        image = (image - image.mean(dim=(1, 2, 3), keepdim=True)) / image.std(dim=(1, 2, 3), keepdim=True)
        return image + self.mean_colour * torch.tanh(self.colour)


MACO_AS_PUBLISHED = MappingProxyType({"mean_colour": 0.0, "tilt": 0.0})  # read-only: shared by every caller
""":class:`PhaseImage` options for MACO as published: a grey mean and one fixed spectral slope."""


def random_backgrounds(batch: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One background per image, ``(N, 3, H, W)`` in [0, 1]: a flat colour, a flat grey or
    natural-spectrum noise around a random colour, a third of the time each."""
    kind = torch.randint(3, (batch, 1, 1, 1), generator=generator)
    flat = torch.rand(batch, 3, 1, 1, generator=generator).expand(batch, 3, height, width)
    grey = torch.rand(batch, 1, 1, 1, generator=generator).expand(batch, 3, height, width)
    noise = PhaseImage(batch, height, width, mean_colour=2.0, seed=generator)
    with torch.no_grad():
        noise.colour.normal_(generator=generator)
        noise = noise()
    return torch.where(kind == 0, flat, torch.where(kind == 1, grey, noise))


class TransparentImage(ImageParam):
    """An image with an alpha channel that the model sees over a new random background at every
    step (Mordvintsev et al., 2018, "Differentiable Image Parameterizations"), each unit of mean
    opacity costing ``opacity_cost`` of the score (``relative``: that share of the score's own
    size, for objectives with no common scale such as units). Only what the objective needs
    stays opaque, so a class image shows the thing on an empty ground instead of a texture
    filling the frame.

    The colour is a :class:`PhaseImage` (MACO, ``colour_kw`` passed on); the alpha is a smooth
    one-channel phase image (spectral slope ``alpha_decay``; a mean free within ``+-alpha_bias``
    of its standard deviation, so anything from a speck to the whole frame can be opaque) through
    a sigmoid ``alpha_sharpness`` times steeper than the colour's: a silhouette with a clean edge,
    as drawn things have. A soft alpha (``alpha_sharpness=1``) leaves a halo of half-transparent
    cloud round each shape, which the other embedded models read as a shape less often (README).
    ``forward()`` shows the images over a flat ``background`` grey; :meth:`rgba` gives the layers."""

    learning_rate = PhaseImage.learning_rate

    def __init__(self, batch: int, height: int, width: int, *, opacity_cost: float = 0.3,
                 background: float = 0.85, alpha_decay: float = 2.0, alpha_bias: float = 2.0,
                 alpha_sharpness: float = 8.0, relative: bool = False,
                 seed: int | torch.Generator | None = None, **colour_kw) -> None:  # fmt: skip
        super().__init__(batch, height, width, decorrelate=False)
        if opacity_cost < 0 or not 0 <= background <= 1:
            raise ValueError(f"opacity_cost must be >= 0 and background in [0, 1], got {opacity_cost}, {background}")
        if alpha_sharpness <= 0:
            raise ValueError(f"alpha_sharpness must be > 0, got {alpha_sharpness}")
        self.opacity_cost, self.background, self.relative = float(opacity_cost), float(background), relative
        self.alpha_sharpness = float(alpha_sharpness)
        generator = _generator(seed)
        self.colour = PhaseImage(batch, height, width, seed=generator, **colour_kw)
        self.alpha = PhaseImage(batch, height, width, decay=alpha_decay, mean_colour=alpha_bias, channels=1,
                                seed=generator)  # fmt: skip

    def opacity(self) -> torch.Tensor:
        """``(N, 1, H, W)`` in [0, 1]."""
        return torch.sigmoid(self.alpha_sharpness * self.alpha.raw())

    def rgba(self) -> torch.Tensor:
        """``(N, 4, H, W)`` in [0, 1]: colour and opacity."""
        return torch.cat([self.colour(), self.opacity()], 1)

    def _over(self, background: torch.Tensor | float) -> torch.Tensor:
        colour, alpha = self.colour(), self.opacity()
        return colour * alpha + background * (1 - alpha)

    def forward(self) -> torch.Tensor:
        return self._over(self.background)

    def draw(self, generator: torch.Generator | None = None) -> torch.Tensor:
        ground = random_backgrounds(self.batch, self.height, self.width, generator)
        return self._over(ground.to(self.alpha.phase.device))

    def cost(self, score: torch.Tensor) -> torch.Tensor:
        opacity = self.opacity().mean(dim=(1, 2, 3))
        # relative: a share of the score's own size, for objectives on no common scale (units)
        return self.opacity_cost * opacity * (score.abs() if self.relative else 1.0)


class LowResImage(ImageParam):
    """Pixels at 1/``factor`` of the resolution, upsampled bilinearly: smooth, coarse images."""

    def __init__(self, batch: int, height: int, width: int, *, factor: int = 4, sd: float = 0.01,
                 decorrelate: bool = True, seed: int | torch.Generator | None = None):  # fmt: skip
        super().__init__(batch, height, width, decorrelate)
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        small = (max(1, math.ceil(height / factor)), max(1, math.ceil(width / factor)))
        self.pixels = nn.Parameter(torch.randn(batch, 3, *small, generator=_generator(seed)) * sd)

    def raw(self) -> torch.Tensor:
        return F.interpolate(self.pixels, size=(self.height, self.width), mode="bilinear", align_corners=False)


class FixedImage(ImageParam):
    """Starts from given images (``(N, 3, H, W)`` in [0, 1], e.g. a photo for DeepDream) and
    optimizes them in the unconstrained space, so values stay in [0, 1]."""

    def __init__(self, images: torch.Tensor, *, decorrelate: bool = False, eps: float = 1e-3):
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W) in [0, 1], got {tuple(images.shape)}")
        n, _, h, w = images.shape
        super().__init__(n, h, w, decorrelate)
        logits = torch.logit(images.detach().float().clamp(eps, 1 - eps))
        if decorrelate:
            logits = torch.einsum("ij,njhw->nihw", torch.linalg.inv(COLOR_CORRELATION), logits)
        self.pixels = nn.Parameter(logits)

    def raw(self) -> torch.Tensor:
        return self.pixels


PARAMETERIZATIONS = {
    "fourier": FourierImage,
    "phase": PhaseImage,
    "transparent": TransparentImage,
    "pixel": PixelImage,
    "lowres": LowResImage,
}


def image(batch: int, height: int, width: int | None = None, *, kind: str = "fourier", **kw) -> ImageParam:
    """A parameterized image batch: ``kind`` is ``"fourier"`` (default), ``"phase"`` (MACO),
    ``"transparent"`` (MACO with an alpha channel), ``"pixel"`` or ``"lowres"``."""
    if kind not in PARAMETERIZATIONS:
        raise ValueError(f"unknown parameterization {kind!r}; choose one of {', '.join(PARAMETERIZATIONS)}")
    return PARAMETERIZATIONS[kind](batch, height, height if width is None else width, **kw)
