"""ESPIRiT coil sensitivities from the fully sampled centre (sigpy's ``EspiritCalib``), for numpy slices and for
batched torch tensors. Used by the classical baselines and by the reconstruction model's final solve."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .fft import as_complex, ifft2c

__all__ = [
    "FINAL_SOLVE_GRID",
    "NoCalibrationRegionError",
    "calib_width",
    "espirit_calibration",
    "espirit_maps",
    "espirit_sens",
    "map_misfit",
]

# ReconModel's ESPIRiT solve calibrates its maps on 64 x 64 pixels: 15 times faster than at 320 x 320 and as good
# (experiments/espirit_cost.py)
FINAL_SOLVE_GRID = 64


class NoCalibrationRegionError(ValueError):
    """The measured k-space has no fully sampled centre of at least 3 columns to calibrate ESPIRiT from."""


def calib_width(kspace: np.ndarray, wanted: int) -> int:
    """Largest square side <= ``wanted`` whose centred window (sigpy's ``resize`` crop) along W covers only
    acquired (non-zero) columns of ``kspace`` [C,H,W]."""
    sampled = np.any(kspace != 0, axis=(0, 1))
    W = sampled.shape[0]
    for width in range(min(wanted, kspace.shape[1], W), 0, -1):
        start = W // 2 - width // 2
        if sampled[start : start + width].all():
            return width
    return 0


def espirit_calibration(
    kspace: np.ndarray,
    num_low_frequencies: int,
    thresh: float = 0.02,
    kernel_width: int = 6,
    max_iter: int = 30,
    grid: int | None = None,
    gpu: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One ESPIRiT calibration with ``sigpy.mri.app.EspiritCalib``: ``kspace [C, H, W] complex -> (maps [C, H, W]
    complex64, uncropped, eigenvalue [H, W])``; a crop c is ``maps * (eigenvalue > c)``.

    sigpy's calibration region is a centred SQUARE of side ``calib_width``; it is set to ``num_low_frequencies``
    (capped at the contiguous sampled centre and at H), so it never includes unsampled columns. The kernel width
    shrinks to ``calib_width // 2`` for narrow ACS regions (e.g. 8x on small images). With fewer than ~8 ACS
    columns the maps degrade badly (a warning is issued): on 128-wide phantoms at 8x (5 ACS lines) SENSE and
    L1-wavelet fell below zero-filled.

    ``grid``: calibrate on at most ``grid`` x ``grid`` pixels (the centre of k-space: the same field of view in
    coarser pixels), then interpolate maps and eigenvalue to the full matrix (bilinear, the maps renormalised).
    The maps are smooth, and sigpy's per-pixel eigen-decomposition costs most of the time (5-6 s at 320 x 320
    with 8 virtual coils on the 2-core CPU, 0.3 s at 64 x 64; results/default_v12/espirit_grid.txt).

    ``gpu``: a CUDA device index to calibrate on (sigpy with CuPy; :func:`cupy_gpu` picks it); the results come
    back as numpy arrays either way.
    """
    # imported here: sigpy pulls in numba and llvmlite, which nothing but the calibration needs
    import sigpy as sp
    import sigpy.mri

    kspace = np.asarray(kspace)
    if kspace.ndim != 3 or not np.iscomplexobj(kspace):
        raise ValueError(f"kspace must be complex [C, H, W], got {kspace.dtype} {kspace.shape}")
    kspace = kspace.astype(np.complex64, copy=False)
    full = kspace.shape[1:]
    if grid is not None:
        kspace = sp.resize(kspace, (kspace.shape[0], min(full[0], grid), min(full[1], grid)))
    width = calib_width(kspace, int(num_low_frequencies))
    if width < 3:
        raise NoCalibrationRegionError(
            f"ESPIRiT needs a fully sampled centre of >= 3 columns, got {width} "
            f"(num_low_frequencies={num_low_frequencies})"
        )
    if width < 8:
        warnings.warn(f"ESPIRiT calibration from only {width} ACS columns: maps will be poor", stacklevel=3)
    app = sigpy.mri.app.EspiritCalib(
        kspace,
        calib_width=width,
        thresh=thresh,
        kernel_width=int(max(2, min(kernel_width, width // 2))),
        crop=0.0,
        max_iter=max_iter,
        device=sp.cpu_device if gpu is None else sp.Device(gpu),
        output_eigenvalue=True,
        show_pbar=False,
    )
    maps, eigenvalue = (sp.to_device(a, sp.cpu_device) for a in app.run())
    maps = maps.astype(np.complex64, copy=False)
    eigenvalue = eigenvalue.reshape(kspace.shape[1:])
    if maps.shape[1:] != full:
        maps, eigenvalue = _interpolate(maps, eigenvalue, full)
    return maps, eigenvalue


def _interpolate(maps: np.ndarray, eigenvalue: np.ndarray, full: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Maps [C,h,w] complex and eigenvalue [h,w] of a coarse grid of the same field of view -> [C,H,W], [H,W].
    Pixel j of a centred grid of N pixels sits at (j - N//2) / N of the field of view."""
    axes = []
    for n, N in zip(maps.shape[1:], full):
        coarse = (np.arange(N) - N // 2) * n / N + n // 2  # coarse pixel coordinate of each fine pixel
        axes.append(torch.from_numpy(2 * coarse / max(n - 1, 1) - 1).float())
    rows, cols = torch.meshgrid(*axes, indexing="ij")
    where = torch.stack([cols, rows], dim=-1)[None]  # grid_sample's (x, y) order
    planes = torch.from_numpy(np.concatenate([maps.real, maps.imag, eigenvalue[None].real]).astype(np.float32))
    fine = F.grid_sample(planes[None], where, mode="bilinear", padding_mode="border", align_corners=True)[0].numpy()
    C = maps.shape[0]
    out = fine[:C] + 1j * fine[C : 2 * C]
    norm = np.sqrt(np.sum(np.abs(out) ** 2, axis=0, keepdims=True))
    out = np.where(norm > 0, out / np.where(norm > 0, norm, 1), 0)
    return out.astype(np.complex64), fine[2 * C]


def cupy_gpu(device: torch.device) -> int | None:
    """The CUDA index sigpy can calibrate on for tensors on ``device``: None on the CPU or without CuPy (sigpy's
    numpy path then runs on the CPU, as in CI). Calibrated on the CPU, the solve took about 0.45 s of the 0.5 s an
    H200 spent per slice (results/default_v16/README.md)."""
    if device.type != "cuda":
        return None
    import sigpy as sp

    return (device.index or 0) if sp.config.cupy_enabled else None


def espirit_maps(kspace: np.ndarray, num_low_frequencies: int, crop: float = 0.95, **calibration) -> np.ndarray:
    """ESPIRiT coil sensitivities (one set of maps): ``kspace [C, H, W] complex -> maps [C, H, W] complex64`` with
    ``sum_c |S_c|^2 = 1`` where not cropped; ``crop`` zeroes them where the eigenvalue is below it (the
    background). ``calibration``: :func:`espirit_calibration`'s options (sigpy's ``thresh=0.02`` by default)."""
    maps, eigenvalue = espirit_calibration(kspace, num_low_frequencies, **calibration)
    return maps * (eigenvalue > crop)


def espirit_sens(
    measured: Tensor, num_low_frequencies: Tensor | int | None, crop: float, grid: int | None = None
) -> Tensor:
    """Batched :func:`espirit_maps`, calibrated on the tensors' GPU where sigpy has CuPy, else on the CPU: measured
    k-space [B,C,H,W,2] (zero off the mask) -> maps [B,C,H,W,2] on its device and dtype, no gradient (they depend
    on the data only). ``num_low_frequencies`` None: the whole contiguous sampled centre calibrates; ``grid``: see
    :func:`espirit_calibration`. A slice with no calibration region gets zero maps, with a warning: a solve with them
    leaves the network's image as it is."""
    k = as_complex(measured.detach().float()).cpu().numpy()
    wanted = torch.as_tensor(k.shape[-1] if num_low_frequencies is None else num_low_frequencies).expand(len(k))
    maps = np.zeros(k.shape, np.complex64)
    gpu = cupy_gpu(measured.device)
    for b in range(len(k)):
        try:
            maps[b] = espirit_maps(k[b], int(wanted[b]), crop=crop, grid=grid, gpu=gpu)
        except NoCalibrationRegionError as err:
            warnings.warn(f"no ESPIRiT maps for slice {b} of the batch, so no final solve there: {err}", stacklevel=2)
    return torch.view_as_real(torch.from_numpy(maps)).to(measured.device, measured.dtype)


def map_misfit(measured: Tensor, maps: Tensor, num_low_frequencies: Tensor | int | None) -> Tensor:
    """How badly the maps explain a scan: the share of its calibration region's coil images (the contiguous sampled
    centre, at most ``num_low_frequencies`` columns, as :func:`espirit_calibration` takes it) outside the maps'
    span, ||x - S S^H x|| / ||x||. measured, maps [B,C,H,W,2] -> [B] (0: explained; e.g. about 0.05 on the
    simulator's typical scans at 4x, 0.13-0.19 where an object cut off at the field of view's edge defeats one set
    of maps)."""
    k = as_complex(measured.detach().float())
    W = k.shape[-1]
    wanted = torch.as_tensor(W if num_low_frequencies is None else num_low_frequencies).expand(len(k))
    centre = torch.zeros(len(k), 1, 1, W, 1, device=measured.device)
    for b in range(len(k)):
        width = calib_width(k[b].cpu().numpy(), int(wanted[b]))
        centre[b, ..., W // 2 - width // 2 : W // 2 - width // 2 + width, :] = 1
    x, s = as_complex(ifft2c(measured.detach().float() * centre)), as_complex(maps.detach().float())
    outside = x - s * (s.conj() * x).sum(1, keepdim=True)
    return (outside.abs().square().sum((1, 2, 3)) / x.abs().square().sum((1, 2, 3)).clamp_min(1e-30)).sqrt()
