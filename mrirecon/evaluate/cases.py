"""Cases: one (volume, acceleration) with its mask and target, read from a fully sampled or a test-format
file (fastMRI's per-file mask seed, so every method sees the same mask)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import InvalidInputError, Volume, file_mask, read_target
from ..data.transforms import center_run_length
from ..io import read_volume
from ..metrics import center_crop_to
from ..physics import zero_filled_rss_np
from .methods import UsageError


@dataclass
class Case:
    """One volume at one acceleration: masked k-space [S,C,H,W], mask [W], target [S,h,w]."""

    fname: str
    acceleration: int
    masked: np.ndarray
    mask: np.ndarray
    num_low_frequencies: int
    target: np.ndarray

    @property
    def num_slices(self) -> int:
        return self.masked.shape[0]


def find_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.h5") if not p.name.startswith("."))


def _slice_range(n: int, k: int | None) -> slice:
    """The central ``k`` of ``n`` slices (all when k is None)."""
    if k is None or k >= n:
        return slice(0, n)
    start = (n - k) // 2
    return slice(start, start + k)


def _full_target(volume: Volume) -> np.ndarray:
    if volume.target is not None:
        return volume.target
    rss = np.stack([zero_filled_rss_np(k) for k in volume.kspace])  # fully sampled: the fastMRI target
    return np.ascontiguousarray(center_crop_to(rss, volume.crop_size))


def load_cases(
    path: Path,
    truth: Path | None,
    accelerations: Sequence[int],
    mask_type: str,
    max_slices: int | None,
) -> list[Case]:
    """Read one file -> its cases (one per acceleration for fully sampled files, one or none for
    test-format files). Raises :class:`InvalidInputError` for a bad file or missing ground truth."""
    volume = read_volume(path)
    sl = _slice_range(volume.kspace.shape[0], max_slices)
    if volume.mask is not None:  # test format: stored mask, acceleration attribute, separate truth
        acc = volume.attrs.get("acceleration")
        acc = int(acc) if acc is not None else int(round(volume.mask.size / max(1, volume.mask.sum())))
        if acc not in accelerations:
            return []
        if volume.target is not None:
            target = volume.target
        else:
            if truth is None:
                raise UsageError(f"{path} is a test-format file: give its ground-truth folder with --truth")
            tpath = truth / path.name
            if not tpath.is_file():
                raise InvalidInputError(tpath, f"missing ground truth for test-format file {path}")
            target, _ = read_target(tpath, "reconstruction_rss")
            w = target.shape[-1]  # fastmri.evaluate crops the target to (min(h, w), w)
            target = np.ascontiguousarray(center_crop_to(target, (min(target.shape[-2], w), w)))
            if target.shape[0] != volume.kspace.shape[0]:
                raise InvalidInputError(
                    tpath, f"{target.shape[0]} target slices, but {path} has {volume.kspace.shape[0]}"
                )
        mask = volume.mask.astype(bool)
        nlf = int(volume.num_low_frequencies or center_run_length(mask))
        masked = (volume.kspace[sl] * mask).astype(np.complex64)
        return [Case(path.name, acc, masked, mask, nlf, np.ascontiguousarray(target[sl]))]
    target = _full_target(volume)[sl]
    kspace = volume.kspace[sl]
    cases = []
    for acc in accelerations:  # the same draw as Reconstructor.prepare: fastMRI's per-file seed
        mask, nlf = file_mask(volume.fname, kspace.shape[-1], mask_type, acc)
        cases.append(Case(path.name, int(acc), (kspace * mask).astype(np.complex64), mask, int(nlf), target))
    return cases
