"""Coil expand / reduce (the SENSE encoding without the mask) and coil compression.

Tensors: complex as a trailing axis of size 2; coils on axis 1 ([B, C, H, W, 2]); sensitivities S
[B, C, H, W, 2] in image space. Expand: x -> F(S_c x) per coil; reduce: y -> sum_c conj(S_c) F^H(y_c),
its adjoint.

Coil compression: the measured samples' coil covariance, its leading eigenvectors as virtual coils
(SVD / PCA compression). It makes a network's cost independent of the coil count (4-32 coils) and keeps
nearly all signal energy; :func:`expand_coils` maps virtual-coil k-space back to the physical coils.
"""

from __future__ import annotations

import fastmri
import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import binary_fill_holes
from torch import Tensor

from .fft import as_complex, fft2c_np

__all__ = [
    "coil_basis",
    "compress_coils",
    "expand_coils",
    "object_mask",
    "sens_expand",
    "sens_expand_np",
    "sens_reduce",
    "zero_outside_maps",
]


def sens_expand(image: Tensor, sens: Tensor) -> Tensor:
    """Coil k-space of an image: F(S_c x). image [B,1,H,W,2], sens [B,C,H,W,2] -> [B,C,H,W,2]."""
    return fastmri.fft2c(fastmri.complex_mul(image, sens))


def sens_reduce(kspace: Tensor, sens: Tensor) -> Tensor:
    """Coil combination: sum_c conj(S_c) F^H(y_c). kspace, sens [B,C,H,W,2] -> [B,1,H,W,2]."""
    return fastmri.complex_mul(fastmri.ifft2c(kspace), fastmri.complex_conj(sens)).sum(1, keepdim=True)


def zero_outside_maps(kspace: Tensor, sens: Tensor) -> Tensor:
    """Coil k-space whose coil images are set to zero where every map is zero (outside the object, as a cropped
    ESPIRiT calibration finds it). A slice whose maps are zero everywhere (no calibration) is left as it is.
    kspace, sens [B,C,H,W,2] -> [B,C,H,W,2]."""
    support = sens.square().sum(dim=(1, 4), keepdim=True) > 0  # [B,1,H,W,1]
    support |= ~support.flatten(1).any(dim=1).view(-1, 1, 1, 1, 1)
    return fastmri.fft2c(fastmri.ifft2c(kspace) * support)


def object_mask(image: Tensor, threshold: float, margin: int) -> Tensor:
    """Where the object is in an image: magnitude above ``threshold`` times its 99th percentile, holes filled
    (dark tissue enclosed by bright tissue, e.g. the skull under the scalp), dilated by ``margin`` pixels.
    image [B,1,H,W,2] -> float mask [B,1,H,W,1] (no gradient)."""
    magnitude = fastmri.complex_abs(image.detach().float())[:, 0]  # [B,H,W]
    level = torch.quantile(magnitude.flatten(1), 0.99, dim=1).view(-1, 1, 1)
    above = (magnitude > threshold * level).cpu().numpy()
    filled = torch.from_numpy(np.stack([binary_fill_holes(a) for a in above])).to(image.device)
    grown = F.max_pool2d(filled[:, None].float(), 2 * margin + 1, stride=1, padding=margin)
    return grown[..., None]


def sens_expand_np(image: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Noise-free coil k-space F(S_c x) of complex images [..., H, W] under maps [C, H, W] -> complex64
    [..., C, H, W]."""
    return fft2c_np(maps * np.asarray(image)[..., None, :, :])


def coil_basis(kspace: Tensor, virtual_coils: int) -> Tensor:
    """Per-sample compression basis from the measured samples: kspace [B,C,H,W,2] -> complex [B,C,V],
    orthonormal columns, strongest virtual coil first; V = min(virtual_coils, C). Each column's phase is
    fixed so that its first-coil entry is real and non-negative."""
    k = as_complex(kspace).flatten(2)  # [B,C,N]
    cov = k @ k.conj().transpose(1, 2)  # [B,C,C]
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    V = min(virtual_coils, k.shape[1])
    return fix_column_phase(vecs.flip(-1)[..., :V])


def fix_column_phase(vecs: Tensor) -> Tensor:
    """complex [B,C,V] -> the same columns, each rotated so its first-coil entry is real and >= 0.

    An eigenvector is defined only up to a unit phase, and LAPACK (CPU) and cuSOLVER (GPU) pick different
    ones; the networks see the virtual coils' phase, so without one convention the same scan reconstructs
    differently on the two devices (up to 0.02 SSIM per volume was measured)."""
    phase = torch.sgn(vecs[:, :1, :])
    return vecs * torch.where(phase == 0, torch.ones_like(phase), phase).conj()


def compress_coils(kspace: Tensor, basis: Tensor) -> Tensor:
    """[B,C,H,W,2] -> virtual coils [B,V,H,W,2] (basis [B,C,V])."""
    out = torch.einsum("bcv,bchw->bvhw", basis.conj(), as_complex(kspace))
    return torch.view_as_real(out).to(kspace.dtype)


def expand_coils(kspace: Tensor, basis: Tensor) -> Tensor:
    """Virtual coils [B,V,H,W,2] -> physical coils [B,C,H,W,2]: the projection onto the kept subspace."""
    out = torch.einsum("bcv,bvhw->bchw", basis, as_complex(kspace))
    return torch.view_as_real(out).to(kspace.dtype)
