"""Coil combination: root-sum-of-squares (RSS) and fastMRI's zero-filled / target image.

Torch: k-space [B,C,H,W,2] (complex as a trailing axis); numpy: complex [..., C, H, W].
"""

from __future__ import annotations

import fastmri
import numpy as np
import torch
from fastmri.data.transforms import center_crop
from torch import Tensor

from .fft import ifft2c_np

__all__ = ["center_crop", "coil_images_rss_np", "rss", "rss_np", "zero_filled_rss", "zero_filled_rss_np"]


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
