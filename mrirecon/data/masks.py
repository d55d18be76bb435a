"""k-space sampling masks: thin helpers over ``fastmri.data.subsample``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from fastmri.data.subsample import MaskFunc, create_mask_for_mask_type

MASK_TYPES = ("random", "equispaced", "equispaced_fraction", "magic", "magic_fraction")
# The fastMRI (acceleration, centre fraction) pairs.
STANDARD_PAIRS = {4: 0.08, 8: 0.04}


def make_mask_func(mask_type: str, accelerations: Sequence[int], center_fractions: Sequence[float]) -> MaskFunc:
    """A fastMRI MaskFunc; one (acceleration, centre fraction) pair is drawn per call."""
    if mask_type not in MASK_TYPES:
        raise ValueError(f"unknown mask_type {mask_type!r}; choose one of {', '.join(MASK_TYPES)}")
    if len(accelerations) != len(center_fractions) or not accelerations:
        raise ValueError(
            f"accelerations {list(accelerations)} and center_fractions {list(center_fractions)} "
            "must be non-empty lists of the same length"
        )
    return create_mask_for_mask_type(mask_type, list(center_fractions), list(accelerations))


def fixed_seed(fname: str) -> tuple[int, ...]:
    """The fastMRI per-file seed: the character codes of the file name."""
    return tuple(map(ord, fname))


def sample_mask(mask_func: MaskFunc, width: int, seed: tuple[int, ...] | int | None = None) -> tuple[np.ndarray, int]:
    """Draw one mask over ``width`` phase-encode columns -> (bool [W], num_low_frequencies)."""
    mask, nlf = mask_func((1, width, 1), seed=seed)
    return mask.numpy().reshape(width).astype(bool), int(nlf)


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
