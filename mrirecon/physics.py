"""The multi-coil Cartesian MRI forward model, in one place.

Conventions (fastMRI's): k-space is centred and the 2-D FFT is orthonormal (``fastmri.fft2c``);
torch tensors hold complex numbers as a trailing real/imaginary axis of size 2; the phase-encode axis
is the last spatial axis (W) and a mask selects whole columns. Numpy helpers take complex arrays.

Forward operator of a scan with coil maps S and column mask M:  A x = M F (S x);  A^H y = sum_c conj(S_c) F^H (M y_c).
"""

from __future__ import annotations

from collections.abc import Sequence

import fastmri
import numpy as np
import torch
from fastmri.data.subsample import MaskFunc, create_mask_for_mask_type
from fastmri.data.transforms import center_crop
from torch import Tensor

__all__ = [
    "BASE_MASK_TYPES",
    "MixedMaskFunc",
    "adjoint_op",
    "center_crop",
    "coil_images_rss_np",
    "coil_noise",
    "data_consistency",
    "fft2c",
    "fft2c_np",
    "forward_op",
    "ifft2c",
    "ifft2c_np",
    "make_mask_func",
    "noise_correlation",
    "partial_fourier",
    "random_noise_covariance",
    "rss",
    "rss_np",
    "sample_mask",
    "sens_expand",
    "sens_reduce",
    "soft_data_consistency",
    "zero_filled_rss",
    "zero_filled_rss_np",
]

# ----------------------------------------------------------------------------------------------
# Fourier transforms

fft2c = fastmri.fft2c  # [..., H, W, 2] -> [..., H, W, 2], centred, orthonormal
ifft2c = fastmri.ifft2c


def _centred(x: np.ndarray, inverse: bool) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.complex64))
    dims = (-2, -1)
    fft = torch.fft.ifftn if inverse else torch.fft.fftn
    H, W = t.shape[-2:]
    if H % 2 or W % 2:
        return torch.fft.fftshift(fft(torch.fft.ifftshift(t, dim=dims), dim=dims, norm="ortho"), dim=dims).numpy()
    # even sizes: the shifts are a (-1)^(i+j) modulation before and after the transform, times
    # (-1)^((H+W)/2); cheaper than rolling complex arrays
    checker = ((-1.0) ** (torch.arange(H)[:, None] + torch.arange(W)[None])).to(torch.float32)
    out = fft(t * checker, dim=dims, norm="ortho")
    return (out * (checker * (-1.0) ** ((H + W) // 2))).numpy()


def fft2c_np(x: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D FFT over the last two axes of a complex array (same as ``fastmri.fft2c``)."""
    return _centred(x, inverse=False)


def ifft2c_np(k: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D inverse FFT over the last two axes of a complex array (``fastmri.ifft2c``)."""
    return _centred(k, inverse=True)


# ----------------------------------------------------------------------------------------------
# coils and the encoding operator


def sens_expand(image: Tensor, sens: Tensor) -> Tensor:
    """Coil k-space of an image: F(S_c x). image [B,1,H,W,2], sens [B,C,H,W,2] -> [B,C,H,W,2]."""
    return fastmri.fft2c(fastmri.complex_mul(image, sens))


def sens_reduce(kspace: Tensor, sens: Tensor) -> Tensor:
    """Coil combination: sum_c conj(S_c) F^H(y_c). kspace, sens [B,C,H,W,2] -> [B,1,H,W,2]."""
    return fastmri.complex_mul(fastmri.ifft2c(kspace), fastmri.complex_conj(sens)).sum(1, keepdim=True)


def forward_op(image: Tensor, sens: Tensor, mask: Tensor) -> Tensor:
    """A x = M F (S x). image [B,1,H,W,2], sens [B,C,H,W,2], mask bool broadcastable (e.g. [B,1,1,W,1])."""
    return torch.where(mask, sens_expand(image, sens), 0.0)


def adjoint_op(kspace: Tensor, sens: Tensor, mask: Tensor) -> Tensor:
    """A^H y = sum_c conj(S_c) F^H (M y_c). kspace [B,C,H,W,2] -> [B,1,H,W,2]."""
    return sens_reduce(torch.where(mask, kspace, 0.0), sens)


def data_consistency(kspace: Tensor, measured: Tensor, mask: Tensor) -> Tensor:
    """Hard data consistency: measured lines replace the predicted ones. [B,C,H,W,2] -> same."""
    return torch.where(mask, measured, kspace)


def soft_data_consistency(kspace: Tensor, measured: Tensor, mask: Tensor, weight: Tensor | float) -> Tensor:
    """The VarNet gradient step on ||M k - y||^2: weight * M (k - y). [B,C,H,W,2] -> same (the step, not k)."""
    return torch.where(mask, kspace - measured, 0.0) * weight


# ----------------------------------------------------------------------------------------------
# root-sum-of-squares


def rss(kspace: Tensor, coil_dim: int = 1) -> Tensor:
    """RSS magnitude of the coil images: [...,C,...,H,W,2] -> the same without the coil and complex axes."""
    return fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(kspace)), dim=coil_dim)


def zero_filled_rss(masked_kspace: Tensor, crop: tuple[int, int] | None = None) -> Tensor:
    """Zero-filled RSS of [B,C,H,W,2] masked k-space -> [B,H,W], centre-cropped to ``crop`` when given."""
    image = rss(masked_kspace, coil_dim=1)
    return image if crop is None else center_crop(image, crop)


def rss_np(kspace: np.ndarray, coil_axis: int = -3) -> np.ndarray:
    """RSS of the coil images of complex k-space (coils on ``coil_axis``), float32, summed in float64."""
    power = torch.from_numpy(ifft2c_np(kspace)).abs().double().square()
    return power.sum(dim=coil_axis).sqrt().float().numpy()


def zero_filled_rss_np(kspace: np.ndarray, crop: tuple[int, int] | None = None) -> np.ndarray:
    """fastMRI's target/zero-filled image: RSS of complex [...,C,H,W] k-space, centre-cropped -> [...,h,w]."""
    image = rss_np(kspace)
    return np.ascontiguousarray(image if crop is None else center_crop(image, crop))


def coil_images_rss_np(maps: np.ndarray, image: np.ndarray) -> np.ndarray:
    """RSS of the coil images ``S_c x`` of one image x [H,W] under maps S [C,H,W] -> float32 [H,W]
    (``|x| sqrt(sum_c |S_c|^2)``: where the maps are zeroed, so is the image)."""
    return np.sqrt(np.sum(np.abs(maps * image[None]) ** 2, axis=0)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# sampling masks (over fastmri.data.subsample)

BASE_MASK_TYPES = ("random", "equispaced", "equispaced_fraction", "magic", "magic_fraction")


def make_mask_func(
    mask_type: str,
    accelerations: Sequence[int],
    center_fractions: Sequence[float],
    partial_fourier_prob: float = 0.0,
) -> MaskFunc:
    """A fastMRI MaskFunc; one (acceleration, centre fraction) pair is drawn per call.

    ``mask_type="mixed"`` returns a :class:`MixedMaskFunc` over random / equispaced / equispaced_fraction
    with the acceleration drawn from ``accelerations`` and the centre fraction uniform in
    [min(center_fractions), max(center_fractions)] and a partial-Fourier cut with ``partial_fourier_prob``
    (other types: must be 0).
    """
    if mask_type == "mixed":
        if not accelerations or not center_fractions:
            raise ValueError("mixed masks need non-empty accelerations and center_fractions")
        return MixedMaskFunc(accelerations, (min(center_fractions), max(center_fractions)), partial_fourier_prob)
    if partial_fourier_prob:
        raise ValueError("partial Fourier is drawn by mask_type 'mixed' only")
    if mask_type not in BASE_MASK_TYPES:
        raise ValueError(f"unknown mask_type {mask_type!r}; choose one of {', '.join((*BASE_MASK_TYPES, 'mixed'))}")
    if len(accelerations) != len(center_fractions) or not accelerations:
        raise ValueError(
            f"accelerations {list(accelerations)} and center_fractions {list(center_fractions)} "
            "must be non-empty lists of the same length"
        )
    return create_mask_for_mask_type(mask_type, list(center_fractions), list(accelerations))


def sample_mask(mask_func: MaskFunc, width: int, seed: tuple[int, ...] | int | None = None) -> tuple[np.ndarray, int]:
    """Draw one mask over ``width`` phase-encode columns -> (bool [W], num_low_frequencies)."""
    mask, nlf = mask_func((1, width, 1), seed=seed)
    return mask.numpy().reshape(width).astype(bool), int(nlf)


def partial_fourier(mask: np.ndarray, fraction: float, num_low_frequencies: int, side: int = 0) -> np.ndarray:
    """Drop the outer (1 - fraction) of the phase-encode columns on one side (0: low indices, 1: high),
    never the calibration centre. bool [W] -> bool [W]. ``fraction`` in (0.5, 1]."""
    if not 0.5 < fraction <= 1.0:
        raise ValueError(f"partial Fourier fraction must be in (0.5, 1], not {fraction}")
    W = mask.shape[-1]
    cut = min(int(round((1.0 - fraction) * W)), (W - num_low_frequencies + 1) // 2)
    out = np.array(mask, dtype=bool, copy=True)
    if cut > 0:
        if side == 0:
            out[..., :cut] = False
        else:
            out[..., W - cut :] = False
    return out


class MixedMaskFunc(MaskFunc):
    """A fastMRI-compatible mask function whose type, acceleration and centre fraction are drawn per call.

    Types: random, equispaced, equispaced_fraction (uniform); acceleration uniform over ``accelerations``;
    centre fraction uniform in ``center_fraction_range`` capped at 0.75 / acceleration; with probability
    ``partial_fourier_prob`` a partial-Fourier cut keeping a fraction uniform in ``partial_fourier_range``
    of the columns.
    Calls with the same ``seed`` give the same mask (fastMRI's per-file seeding).
    """

    TYPES = ("random", "equispaced", "equispaced_fraction")

    def __init__(
        self,
        accelerations: Sequence[int],
        center_fraction_range: tuple[float, float] = (0.04, 0.12),
        partial_fourier_prob: float = 0.0,
        partial_fourier_range: tuple[float, float] = (0.625, 0.875),
    ):
        super().__init__([center_fraction_range[0]], [int(accelerations[0])], allow_any_combination=True)
        self.acceleration_choices = [int(a) for a in accelerations]
        self.center_fraction_range = tuple(center_fraction_range)
        self.partial_fourier_prob = partial_fourier_prob
        self.partial_fourier_range = tuple(partial_fourier_range)

    def __call__(self, shape, offset=None, seed=None):
        rng = np.random.default_rng(None if seed is None else list(np.atleast_1d(seed)))
        kind = self.TYPES[int(rng.integers(len(self.TYPES)))]
        acc = self.acceleration_choices[int(rng.integers(len(self.acceleration_choices)))]
        lo, hi = self.center_fraction_range
        # the centre alone must stay below the sampled fraction (fastMRI's equispaced_fraction needs it)
        cf = float(rng.uniform(lo, max(lo, min(hi, 0.75 / acc))))
        inner = create_mask_for_mask_type(kind, [cf], [acc])
        mask, nlf = inner(shape, offset=offset, seed=int(rng.integers(2**31)))
        if rng.random() < self.partial_fourier_prob:
            frac = float(rng.uniform(*self.partial_fourier_range))
            cols = partial_fourier(mask.numpy().reshape(-1) > 0, frac, int(nlf), side=int(rng.integers(2)))
            mask = torch.from_numpy(cols.astype(np.float32)).reshape(mask.shape)
        return mask, nlf


# ----------------------------------------------------------------------------------------------
# noise


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


# ---------------------------------------------------------------- reductions before a learned reconstruction
# Exact and near-exact reductions of multi-coil k-space before a learned reconstruction.
#
# - Readout crop: the readout (H) axis is always fully sampled, so cutting its field of view to the rows the
#   target keeps (fastMRI brain: 640 oversampled rows -> 320) is an exact, line-by-line linear map; data
#   consistency on the cropped data is consistency on the measured lines. It halves the work at fastMRI sizes.
# - Coil compression: the measured samples' coil covariance, its leading eigenvectors as virtual coils
#   (SVD / PCA compression). It makes the network's cost independent of the coil count (4-32 coils) and
#   keeps nearly all signal energy; :func:`expand_coils` maps virtual-coil k-space back to the physical coils.


def _complex(kspace: Tensor) -> Tensor:
    """[..., 2] real (half precision promoted to float32) -> complex [...]."""
    return torch.view_as_complex(kspace.to(torch.promote_types(kspace.dtype, torch.float32)).contiguous())


def crop_readout(kspace: Tensor, height: int) -> Tensor:
    """k-space [..., H, W, 2] -> [..., height, W, 2] holding the central ``height`` image rows.

    Orthonormal transforms along H only, so images from ``ifft2c`` keep their pixel values."""
    H = kspace.shape[-3]
    if height >= H:
        return kspace
    k = _complex(kspace)
    img = torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(k, dim=-2), dim=-2, norm="ortho"), dim=-2)
    top = (H - height) // 2
    img = img[..., top : top + height, :]
    out = torch.fft.fftshift(torch.fft.fft(torch.fft.ifftshift(img, dim=-2), dim=-2, norm="ortho"), dim=-2)
    return torch.view_as_real(out).to(kspace.dtype).contiguous()


def coil_basis(kspace: Tensor, virtual_coils: int) -> Tensor:
    """Per-sample compression basis from the measured samples: kspace [B,C,H,W,2] -> complex [B,C,V],
    orthonormal columns, strongest virtual coil first; V = min(virtual_coils, C)."""
    k = _complex(kspace).flatten(2)  # [B,C,N]
    cov = k @ k.conj().transpose(1, 2)  # [B,C,C]
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    V = min(virtual_coils, k.shape[1])
    return vecs.flip(-1)[..., :V]


def compress_coils(kspace: Tensor, basis: Tensor) -> Tensor:
    """[B,C,H,W,2] -> virtual coils [B,V,H,W,2] (basis [B,C,V])."""
    k = _complex(kspace)
    out = torch.einsum("bcv,bchw->bvhw", basis.conj(), k)
    return torch.view_as_real(out).to(kspace.dtype)


def expand_coils(kspace: Tensor, basis: Tensor) -> Tensor:
    """Virtual coils [B,V,H,W,2] -> physical coils [B,C,H,W,2]: the projection onto the kept subspace."""
    k = _complex(kspace)
    out = torch.einsum("bcv,bvhw->bchw", basis, k)
    return torch.view_as_real(out).to(kspace.dtype)
