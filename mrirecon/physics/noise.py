"""Complex Gaussian k-space noise (white or coil-correlated) and the floor it puts under RSS images.

Noise arrays are complex64 [..., C, H, W] (coils on axis -3); every draw is seeded from the caller's
``numpy.random.Generator``, so a simulation is reproducible from its seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .fft import as_complex, readout_image

__all__ = [
    "coil_noise",
    "kspace_noise_variance",
    "noise_correlation",
    "random_noise_covariance",
    "readout_margin_noise",
    "restore_noise_floor",
    "rss_noise_mean_ratio",
    "sample_noise_variance",
    "white_noise",
]


def random_noise_covariance(
    num_coils: int, correlation: float, rng: np.random.Generator, latent: int = 2, gain_range=(0.7, 1.4)
) -> np.ndarray:
    """A random Hermitian positive-definite coil noise covariance [C,C] (complex128).

    Sigma = G ((1 - rho) I + rho M M^H) G with M [C, latent] complex, rows of unit norm (shared noise
    sources) and G = diag(per-coil noise gains, uniform in ``gain_range``, then scaled to mean variance 1).
    Every off-diagonal correlation coefficient has magnitude <= rho = ``correlation``; with ``latent=1``
    every pair reaches rho.
    """
    if not 0.0 <= correlation < 1.0:
        raise ValueError(f"noise correlation must be in [0, 1), not {correlation}")
    m = rng.standard_normal((num_coils, latent)) + 1j * rng.standard_normal((num_coils, latent))
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    corr = (1.0 - correlation) * np.eye(num_coils) + correlation * (m @ m.conj().T)
    gains = rng.uniform(*gain_range, size=num_coils)
    cov = corr * np.outer(gains, gains)
    return cov / np.real(np.trace(cov) / num_coils)


def noise_correlation(cov: np.ndarray) -> np.ndarray:
    """Correlation coefficients of a covariance [C,C] (complex; unit diagonal)."""
    d = np.sqrt(np.real(np.diag(cov)))
    return cov / np.outer(d, d)


def coil_noise(shape: tuple[int, ...], cov: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Complex Gaussian noise [..., C, H, W] (complex64) with coil covariance ``sigma**2 * cov`` (coils on axis -3)."""
    C = cov.shape[0]
    if shape[-3] != C:
        raise ValueError(f"noise shape {shape} does not have {C} coils on axis -3")
    chol = torch.from_numpy(np.linalg.cholesky(cov).astype(np.complex64))
    gen = torch.Generator().manual_seed(int(rng.integers(2**63)))  # seeded from rng: reproducible
    white = torch.randn(shape, dtype=torch.complex64, generator=gen) * float(sigma)  # E|n|^2 = sigma^2
    flat = white.reshape(*shape[:-3], C, -1)  # [..., C, H*W]
    return (chol @ flat).reshape(shape).numpy()


def white_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Independent complex Gaussian noise of any shape, E|n|^2 = ``sigma**2`` -> complex64.

    The same distribution as :func:`coil_noise` with an identity covariance, drawn straight from ``rng``
    (the stream of the original simulator presets, which stay reproducible bit for bit)."""
    noise = rng.standard_normal((2, *shape), dtype=np.float32) * np.float32(sigma / np.sqrt(2))
    return (noise[0] + 1j * noise[1]).astype(np.complex64)


def kspace_noise_variance(measured: Tensor, band: float = 0.1, outer_lines: float | None = None) -> Tensor:
    """Noise variance per k-space sample, estimated from the data: measured [B,C,H,W,2] (zero off the mask,
    readout along H) -> [B]. The outer ``band`` of readout frequencies at both ends holds almost only noise;
    for complex Gaussian noise |k|^2 is exponential with mean sigma^2, so the median of |k|^2 over the measured
    samples there, over ln 2, estimates sigma^2 (robust to the little signal left at those frequencies).
    ``outer_lines``: use only this share of the measured lines, those farthest from the centre of k-space. Without
    readout oversampling an object's edges leave signal at every readout frequency of the central lines; the
    outer lines carry the least of it."""
    return torch.stack([_pooled_variance(samples) for samples in _noise_samples(measured, band, outer_lines)])


def sample_noise_variance(samples: Tensor) -> Tensor:
    """Noise samples complex [B,C,N] (zero where nothing was measured; :func:`readout_margin_noise`) -> [B]: sigma^2
    per sample, as :func:`kspace_noise_variance` reads it (median of |n|^2 over all coils, over ln 2)."""
    return torch.stack([_pooled_variance(s) for s in samples])


def _pooled_variance(samples: Tensor) -> Tensor:
    power = samples.abs().square().flatten()
    power = power[power > 0]
    return power.median() / math.log(2) if power.numel() else power.new_zeros(())


def rss_noise_mean_ratio(measured: Tensor, band: float = 0.1, outer_lines: float | None = None) -> Tensor:
    """E|n| / sqrt(E|n|^2) for the RSS magnitude n of the coils' noise, read off the samples of
    :func:`kspace_noise_variance`: measured [B,C,H,W,2] -> [B], 1 for many independent coils, lower when the coils'
    noise is correlated (:func:`_gamma_mean_ratio`)."""
    return torch.stack([_gamma_mean_ratio(s, measured.dtype) for s in _noise_samples(measured, band, outer_lines)])


def _gamma_mean_ratio(samples: Tensor, dtype: torch.dtype) -> Tensor:
    """Noise samples complex [C, N] (zero columns ignored) -> E|n| / sqrt(E|n|^2) for the RSS magnitude n.
    |n|^2 = sum_i lambda_i e_i (lambda_i the eigenvalues of the coil noise covariance, e_i unit exponentials) is
    matched by a Gamma variable of shape k = (sum lambda)^2 / sum lambda^2, whose square root has the ratio
    Gamma(k + 1/2) / (Gamma(k) sqrt(k))."""
    samples = samples[:, samples.abs().sum(0) > 0]
    if samples.shape[1] < samples.shape[0]:
        return torch.ones((), dtype=dtype, device=samples.device)
    samples = samples.to(torch.complex128)
    cov = samples @ samples.conj().T / samples.shape[1]
    k = cov.diagonal().real.sum().square() / cov.abs().square().sum()
    return (torch.lgamma(k + 0.5) - torch.lgamma(k) - 0.5 * k.log()).exp().to(dtype)


def _coil_noise_power(samples: Tensor) -> Tensor:
    """Noise samples complex [C, N] (zero columns ignored) -> the sum of the coils' noise variances, each the
    median of |n|^2 over ln 2 (|n|^2 is exponential for complex Gaussian noise; the median shrugs off a little
    signal)."""
    power = samples[:, samples.abs().sum(0) > 0].abs().square()
    if power.shape[1] == 0:
        return power.new_zeros(())
    return (power.median(dim=1).values / math.log(2)).sum()


MIN_MARGIN_ROWS = 8  # fewer noise rows at each end than this: the floor reads sigma^2 off k-space instead


def readout_margin_noise(kspace: Tensor, height: int) -> Tensor | None:
    """The noise in the readout field of view that a crop to ``height`` rows cuts away: masked k-space
    [B,C,H,W,2] -> complex [B,C,N] (zero at unmeasured lines), or None when fewer than ``MIN_MARGIN_ROWS`` rows
    would be taken at each end.

    The readout is fully sampled and readout-oversampled scans (fastMRI brain: 640 rows for a 320-row image) hold
    the object in the central rows, so the inverse FFT of each measured line along the readout leaves only noise in
    the outer rows: the outer half of the rows cut at each end, the farthest from the object, at every measured
    line. Under the orthonormal transform each is a sample of the coil's k-space noise (variance sigma^2). Unlike
    the outer readout frequencies of the cropped data (:func:`kspace_noise_variance`), these carry no signal from
    object edges at the cropped field of view's border (results/default_v23)."""
    H = kspace.shape[-3]
    rows = (H - height) // 4
    if rows < MIN_MARGIN_ROWS:
        return None
    image = readout_image(kspace)  # [B,C,H,W]
    margins = torch.cat([image[..., :rows, :], image[..., H - rows :, :]], dim=-2)  # [B,C,2 rows,W]
    return margins.flatten(-2)


def _noise_samples(measured: Tensor, band: float, outer_lines: float | None) -> list[Tensor]:
    """measured [B,C,H,W,2] -> per sample, complex [C, N]: the outer ``band`` of readout frequencies of the measured
    lines (of the ``outer_lines`` share farthest from the centre, if given), zeros where a line was not measured."""
    H, W = measured.shape[-3], measured.shape[-2]
    n = max(1, int(round(H * band)))
    edges = as_complex(torch.cat([measured[..., :n, :, :], measured[..., H - n :, :, :]], dim=-3))  # [B,C,2n,W]
    distance = (torch.arange(W, device=measured.device) - W // 2).abs().float()
    out = []
    for sample in edges:  # [C, 2n, W]
        lines = sample.abs().sum(dim=(0, 1)) > 0
        if outer_lines is not None and lines.any():
            lines &= distance >= torch.quantile(distance[lines], 1.0 - outer_lines)
        out.append(sample[..., lines].flatten(1))
    return out


FLOOR_NOISE_LINES = 0.25  # share of the measured lines the noise floor's sigma^2 is read from


def restore_noise_floor(
    image: Tensor,
    measured: Tensor,
    share: float = 1.0,
    window: int = 5,
    level: str = "rms",
    noise_samples: Tensor | None = None,
) -> Tensor:
    """The RSS image of a reconstruction -> the same image with no region below a share of the noise floor of
    the fully sampled noisy scan, which fastMRI's targets carry.

    Under the orthonormal FFT every pixel of a fully sampled RSS image carries the coils' summed noise power
    P = sum_c sigma_c^2. ``noise_samples`` complex [B,C,N] (:func:`readout_margin_noise`) give it as the sum of
    their coils' variances; without them it is C sigma^2, sigma^2 from :func:`kspace_noise_variance` on the outer
    quarter of the measured lines. A network predicts the unmeasured lines without that noise, so its background
    can sit below the floor. Where the image's mean power over a ``window`` x ``window`` neighbourhood is under
    share P, the missing power is added: sqrt(image^2 + max(0, share P - local power)). Anatomy, far above the
    floor, and a background already at it are left as they are. ``level="mean"``: fill to the square of the noise
    magnitude's mean instead of its power, (:func:`rss_noise_mean_ratio`)^2 P: the target's background averages
    that, lower than sqrt(P) where the coils' noise is correlated.
    image [B,H,W]; measured [B,C,H,W,2] -> [B,H,W].
    """
    if level not in ("rms", "mean"):
        raise ValueError(f"level must be 'rms' or 'mean', got {level!r}")
    if noise_samples is None:
        samples = _noise_samples(measured, 0.1, FLOOR_NOISE_LINES)
        power = measured.shape[1] * kspace_noise_variance(measured, outer_lines=FLOOR_NOISE_LINES)
    else:
        samples = list(noise_samples)
        power = torch.stack([_coil_noise_power(s) for s in samples])
    if level == "mean":
        power = power * torch.stack([_gamma_mean_ratio(s, image.dtype) for s in samples]).square()
    floor = (share * power).to(image.dtype).view(-1, 1, 1)
    local = F.avg_pool2d(image.square()[:, None], window, stride=1, padding=window // 2, count_include_pad=False)
    return (image.square() + (floor - local[:, 0]).clamp(min=0)).sqrt()
