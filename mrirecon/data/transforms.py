"""Per-slice transform: fastMRI's VarNet transform plus test-format files."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from fastmri.data.subsample import MaskFunc
from fastmri.data.transforms import VarNetDataTransform, VarNetSample, center_crop

from ..physics import FINAL_SOLVE_GRID, coil_basis, compress_coils, crop_readout, espirit_sens


def center_run_length(mask: np.ndarray) -> int:
    """Length of the contiguous run of sampled columns through the k-space centre (bool [W])."""
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    c = mask.shape[0] // 2
    if not mask[c]:
        return 0
    lo, hi = c, c
    while lo > 0 and mask[lo - 1]:
        lo -= 1
    while hi < mask.shape[0] - 1 and mask[hi + 1]:
        hi += 1
    return hi - lo + 1


class TorchSeededMasks:
    """Random training masks that repeat run to run: each call without a seed draws one from torch's RNG
    (fixed by ``seed_everything``, and per worker in DataLoader workers), because fastmri's mask functions
    draw from their own generator, seeded from the operating system."""

    def __init__(self, inner: MaskFunc) -> None:
        self.inner = inner

    def __call__(self, shape: Any, offset: int | None = None, seed: Any = None) -> tuple[torch.Tensor, int]:
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        return self.inner(shape, offset=offset, seed=seed)


class SliceTransform:
    """``fastmri.data.transforms.VarNetDataTransform`` that also reads test-format files.

    - fully sampled file + ``mask_func``: a mask is drawn (fixed per file when ``use_seed``,
      random per call otherwise) and applied, as fastMRI does;
    - test-format file (``mask`` stored, k-space already undersampled): the file's mask is used,
      ``num_low_frequencies`` comes from the ``num_low_frequency`` attribute (else the centre run of
      the mask), the target is zeros of the crop size and ``max_value`` is 0;
    - fully sampled file and no ``mask_func``: every acquired column is kept.

    Returns a ``VarNetSample``: masked_kspace float32 [C,H,W,2] (singlecoil: C=1), mask bool
    [1,1,W,1], target float32 [h,w] (centre-cropped to ``crop_size``), fname, slice_num, max_value,
    crop_size.
    """

    def __init__(self, mask_func: MaskFunc | None = None, use_seed: bool = True):
        if mask_func is not None and not use_seed:
            mask_func = TorchSeededMasks(mask_func)
        self.mask_func = mask_func
        self.use_seed = use_seed
        self._masking = VarNetDataTransform(mask_func=mask_func, use_seed=use_seed)
        self._given_mask = VarNetDataTransform(mask_func=None, use_seed=use_seed)

    def __call__(
        self,
        kspace: np.ndarray,
        mask: np.ndarray | None,
        target: np.ndarray | None,
        attrs: dict[str, Any],
        fname: str,
        slice_num: int,
    ) -> VarNetSample:
        if kspace.ndim == 2:  # singlecoil [H,W] -> [1,H,W]
            kspace = kspace[None]
        attrs = dict(attrs)
        if target is not None and "max" not in attrs:
            attrs["max"] = float(np.max(target))
        if mask is not None:
            sample = self._given_mask(kspace, mask, target, attrs, fname, slice_num)
            nlf = attrs.get("num_low_frequency")
            nlf = int(nlf) if nlf is not None else center_run_length(mask)
            sample = sample._replace(num_low_frequencies=nlf)
        elif self.mask_func is not None:
            sample = self._masking(kspace, None, target, attrs, fname, slice_num)
        else:
            full = np.ones(kspace.shape[-1], dtype=np.float32)
            sample = self._given_mask(kspace, full, target, attrs, fname, slice_num)
            sample = sample._replace(num_low_frequencies=int(kspace.shape[-1]))
        crop = (int(sample.crop_size[0]), int(sample.crop_size[1]))
        if target is None:
            tgt = torch.zeros(crop, dtype=torch.float32)
            max_value = 0.0
        else:
            tgt = sample.target.to(torch.float32)
            if tgt.shape[-2] > crop[0] or tgt.shape[-1] > crop[1]:
                tgt = center_crop(tgt, crop)
            max_value = float(sample.max_value)
        return sample._replace(target=tgt, max_value=max_value, crop_size=crop)


class MapsSample(NamedTuple):
    """A ``VarNetSample`` with the ESPIRiT maps [V,h,W,2] of its virtual coils (see :class:`WithEspiritMaps`)."""

    masked_kspace: torch.Tensor
    mask: torch.Tensor
    num_low_frequencies: int | None
    target: torch.Tensor
    fname: str
    slice_num: int
    max_value: float
    crop_size: tuple[int, int]
    espirit_maps: torch.Tensor


class WithEspiritMaps:
    """A slice transform whose samples also carry the ESPIRiT maps that ``ReconModel``'s ``espirit`` final solve
    would compute: readout cut to the target's rows, coils compressed to ``virtual_coils`` (0: kept), sigpy's
    calibration on the CPU, eigenvalue ``crop``, so that the data loader's workers compute them off the training
    step's path. -> :class:`MapsSample`."""

    def __init__(self, inner: SliceTransform, virtual_coils: int, crop: float = 0.0) -> None:
        self.inner, self.virtual_coils, self.crop = inner, virtual_coils, crop

    def __call__(self, *args: Any) -> MapsSample:
        sample = self.inner(*args)
        kspace = crop_readout(sample.masked_kspace[None], sample.target.shape[-2])
        if self.virtual_coils and kspace.shape[1] > self.virtual_coils:
            kspace = compress_coils(kspace, coil_basis(kspace, self.virtual_coils))
        maps = espirit_sens(kspace, sample.num_low_frequencies, self.crop, FINAL_SOLVE_GRID)[0]
        return MapsSample(*sample, espirit_maps=maps)
