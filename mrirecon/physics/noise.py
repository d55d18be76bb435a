"""Complex Gaussian k-space noise (white or coil-correlated) and the floor it puts under RSS images.

Noise arrays are complex64 [..., C, H, W] (coils on axis -3); every draw is seeded from the caller's
``numpy.random.Generator``, so a simulation is reproducible from its seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .fft import as_complex

__all__ = [
    "coil_noise",
    "kspace_noise_variance",
    "noise_correlation",
    "random_noise_covariance",
    "restore_noise_floor",
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


def kspace_noise_variance(measured: Tensor, band: float = 0.1) -> Tensor:
    """Noise variance per k-space sample, estimated from the data: measured [B,C,H,W,2] (zero off the mask,
    readout along H) -> [B]. The outer ``band`` of readout frequencies at both ends holds almost only noise;
    for complex Gaussian noise |k|^2 is exponential with mean sigma^2, so the median of |k|^2 over the measured
    samples there, over ln 2, estimates sigma^2 (robust to the little signal left at those frequencies)."""
    H = measured.shape[-3]
    n = max(1, int(round(H * band)))
    power = as_complex(torch.cat([measured[..., :n, :, :], measured[..., H - n :, :, :]], dim=-3)).abs().square()
    estimates = []
    for sample in power.flatten(1):
        kept = sample[sample > 0]
        estimates.append(kept.median() / math.log(2) if kept.numel() else sample.new_zeros(()))
    return torch.stack(estimates)


def restore_noise_floor(image: Tensor, measured: Tensor, mask: Tensor, share: float = 1.0) -> Tensor:
    """The RSS image of a reconstruction whose unmeasured lines carry no noise -> the expected RSS magnitude of
    the fully sampled noisy scan, which is what fastMRI's targets are.

    Under the orthonormal FFT every pixel of a fully sampled RSS image carries the coils' summed noise power
    C sigma^2, a floor under the background. Measured lines put back bring only their share f of it, so
    sqrt(image^2 + share (1 - f) C sigma^2) adds the rest; sigma^2 from :func:`kspace_noise_variance`.
    image [B,H,W]; measured [B,C,H,W,2], zero off the mask; mask broadcastable to measured -> [B,H,W].
    """
    sigma2 = kspace_noise_variance(measured)
    measured_share = mask.expand_as(measured)[:, 0, ..., 0].float().mean(dim=(-2, -1))
    floor = share * (1 - measured_share) * measured.shape[1] * sigma2
    return (image.square() + floor.to(image.dtype).view(-1, 1, 1)).sqrt()
