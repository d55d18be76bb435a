"""Centred orthonormal 2-D Fourier transforms (fastMRI's convention) and the readout-only crop.

Torch tensors hold complex numbers as a trailing real/imaginary axis of size 2 ([..., H, W, 2]); the numpy
helpers take complex arrays [..., H, W]. The centre of k-space is index N // 2 on each axis.
"""

from __future__ import annotations

import fastmri
import numpy as np
import torch
from torch import Tensor

__all__ = [
    "as_complex",
    "crop_readout",
    "crop_readout_np",
    "fft2c",
    "fft2c_np",
    "ifft2c",
    "ifft2c_np",
    "readout_image",
]

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
    """Centred orthonormal 2-D FFT over the last two axes: complex [..., H, W] -> complex64 [..., H, W]
    (the same as ``fastmri.fft2c``)."""
    return _centred(x, inverse=False)


def ifft2c_np(k: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D inverse FFT: complex [..., H, W] -> complex64 [..., H, W] (``fastmri.ifft2c``)."""
    return _centred(k, inverse=True)


def as_complex(kspace: Tensor) -> Tensor:
    """[..., 2] real (half precision promoted to float32) -> complex [...]."""
    return torch.view_as_complex(kspace.to(torch.promote_types(kspace.dtype, torch.float32)).contiguous())


def readout_image(kspace: Tensor) -> Tensor:
    """k-space [..., H, W, 2] -> complex [..., H, W]: the centred orthonormal inverse FFT along the readout (H)
    only, image rows by k-space columns."""
    k = as_complex(kspace)
    return torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(k, dim=-2), dim=-2, norm="ortho"), dim=-2)


def crop_readout(kspace: Tensor, height: int) -> Tensor:
    """k-space [..., H, W, 2] -> [..., height, W, 2] holding the central ``height`` image rows.

    The readout (H) axis is always fully sampled, so cutting its field of view (fastMRI brain: 640
    oversampled rows -> 320) is an exact line-by-line linear map; data consistency on the cropped data is
    consistency on the measured lines. Orthonormal transforms along H only, so images from ``ifft2c`` keep
    their pixel values."""
    H = kspace.shape[-3]
    if height >= H:
        return kspace
    img = readout_image(kspace)
    top = (H - height) // 2
    img = img[..., top : top + height, :]
    out = torch.fft.fftshift(torch.fft.fft(torch.fft.ifftshift(img, dim=-2), dim=-2, norm="ortho"), dim=-2)
    return torch.view_as_real(out).to(kspace.dtype).contiguous()


def crop_readout_np(kspace: np.ndarray, height: int) -> np.ndarray:
    """complex [..., H, W] -> complex64 [..., min(H, height), W]: :func:`crop_readout` on numpy data."""
    k = torch.view_as_real(torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64)))
    return torch.view_as_complex(crop_readout(k, int(height)).contiguous()).numpy()
