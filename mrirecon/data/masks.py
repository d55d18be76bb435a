"""k-space sampling masks: fastMRI's per-file evaluation masks; mask functions live in :mod:`mrirecon.physics`."""

from __future__ import annotations

import numpy as np

from mrirecon.physics import BASE_MASK_TYPES, make_mask_func, sample_mask

MASK_TYPES = BASE_MASK_TYPES  # plus "mixed" in make_mask_func (training only)
# The fastMRI (acceleration, centre fraction) pairs.
STANDARD_PAIRS = {4: 0.08, 8: 0.04}
__all__ = ["MASK_TYPES", "STANDARD_PAIRS", "file_mask", "fixed_seed", "make_mask_func", "sample_mask"]


def fixed_seed(fname: str) -> tuple[int, ...]:
    """The fastMRI per-file seed: the character codes of the file name."""
    return tuple(map(ord, fname))


def file_mask(
    fname: str,
    width: int,
    mask_type: str = "equispaced_fraction",
    acceleration: int = 4,
    center_fraction: float | None = None,
    seed: tuple[int, ...] | int | None = None,
) -> tuple[np.ndarray, int]:
    """The evaluation mask of a fully sampled file: fixed by its name (fastMRI's convention) unless
    ``seed`` is given; centre fraction from the standard pairs by default. -> (bool [W], num_low_frequencies)."""
    cf = center_fraction if center_fraction is not None else STANDARD_PAIRS.get(acceleration, 0.08)
    func = make_mask_func(mask_type, [acceleration], [cf])
    return sample_mask(func, width, fixed_seed(fname) if seed is None else seed)
