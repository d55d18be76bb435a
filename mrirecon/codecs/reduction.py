"""Exact and near-exact reductions of multi-coil k-space before a learned reconstruction.

- Readout crop: the readout (H) axis is always fully sampled, so cutting its field of view to the rows the
  target keeps (fastMRI brain: 640 oversampled rows -> 320) is an exact, line-by-line linear map; data
  consistency on the cropped data is consistency on the measured lines. It halves the work at fastMRI sizes.
- Coil compression: the measured samples' coil covariance, its leading eigenvectors as virtual coils
  (SVD / PCA compression). It makes the network's cost independent of the coil count (4-32 coils) and
  keeps nearly all signal energy; :func:`expand_coils` maps virtual-coil k-space back to the physical coils.
"""

from __future__ import annotations

import torch
from torch import Tensor


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
