"""Phase-encode sampling masks, over fastMRI's mask functions (``fastmri.data.subsample``).

A mask selects whole phase-encode columns: numpy bool [W], or for the networks bool [B,1,1,W,1].
Training draws masks from a :class:`~fastmri.data.subsample.MaskFunc` (:func:`make_mask_func`, with
``"mixed"`` drawing type, acceleration, centre fraction and partial Fourier per call); evaluation uses
fastMRI's per-file masks (:func:`file_mask`: seeded by the file name).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from fastmri.data.subsample import MaskFunc, create_mask_for_mask_type
from torch import Tensor

__all__ = [
    "BASE_MASK_TYPES",
    "MASK_TYPES",
    "STANDARD_PAIRS",
    "MixedMaskFunc",
    "centre_lines",
    "file_mask",
    "fixed_seed",
    "make_mask_func",
    "partial_fourier",
    "sample_mask",
]

BASE_MASK_TYPES = ("random", "equispaced", "equispaced_fraction", "magic", "magic_fraction")
MASK_TYPES = BASE_MASK_TYPES  # plus "mixed" in make_mask_func (training only)
# The fastMRI (acceleration, centre fraction) pairs.
STANDARD_PAIRS = {4: 0.08, 8: 0.04}


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


def centre_lines(width: int, num_low_frequencies: Tensor) -> Tensor:
    """num_low_frequencies [B] -> bool [B,W]: the calibration centre as fastMRI's masks place it
    (columns ``(W - n + 1) // 2`` to that plus ``n``). Computed on the input's device, no host sync."""
    nlf = num_low_frequencies.reshape(-1, 1).long()
    lo = (width - nlf + 1) // 2
    cols = torch.arange(width, device=nlf.device).view(1, -1)
    return (cols >= lo) & (cols < lo + nlf)


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
