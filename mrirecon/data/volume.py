"""Whole-volume reading of fastMRI files (validated first)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from fastmri.data.transforms import center_crop

from mrirecon.data.validate import (
    InvalidInputError,
    Limits,
    check_dataset_size,
    check_finite,
    corrupt_hdf5,
    open_hdf5,
    read_header_xml,
    validate_file,
)


@dataclass
class Volume:
    """One fastMRI volume in memory.

    kspace: complex64 [S,C,H,W] (singlecoil files get C=1); mask: bool [W] for test-format files;
    target: float32 [S,h,w] centre-cropped to ``crop_size`` (None for test-format files);
    max_value: the ``max`` attribute, else the target maximum, else None.
    """

    fname: str
    kspace: np.ndarray
    mask: np.ndarray | None
    num_low_frequencies: int | None
    target: np.ndarray | None
    max_value: float | None
    crop_size: tuple[int, int]
    attrs: dict[str, Any] = field(default_factory=dict)
    header_xml: str | None = None
    challenge: str = "multicoil"

    @property
    def is_test_format(self) -> bool:
        return self.mask is not None and self.target is None


def read_volume(path: str | os.PathLike, challenge: str | None = None, limits: Limits | None = None) -> Volume:
    """Validate (:func:`validate_file`, size caps ``limits``) and load a whole fastMRI file (see :class:`Volume`)."""
    path = Path(path)
    info = validate_file(path, challenge=challenge, check_values=True, limits=limits)
    try:
        with open_hdf5(path) as hf:
            kspace = np.asarray(hf["kspace"][()], dtype=np.complex64)
            target = np.asarray(hf[info.recon_key][()], dtype=np.float32) if info.recon_key else None
            header = read_header_xml(path, hf)
    except OSError as err:  # pragma: no cover - validate_file reads the same data first
        raise corrupt_hdf5(path, err) from None
    if kspace.ndim == 3:
        kspace = kspace[:, None]
    if target is not None:
        target = np.ascontiguousarray(center_crop(target, info.crop_size))
    if "max" in info.attrs:
        max_value = float(info.attrs["max"])
    elif target is not None:
        max_value = float(target.max())
    else:
        max_value = None
    return Volume(
        fname=path.name,
        kspace=kspace,
        mask=info.mask,
        num_low_frequencies=info.num_low_frequencies,
        target=target,
        max_value=max_value,
        crop_size=info.crop_size,
        attrs=info.attrs,
        header_xml=header,
        challenge=info.challenge,
    )


def read_target(
    path: str | os.PathLike, key: str | None = None, limits: Limits | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a target-only (ground-truth) or reconstruction file -> (float32 [S,h,w], attrs).

    ``key`` defaults to ``reconstruction_rss``, else ``reconstruction_esc``. Validated through the
    same gate as k-space files (:func:`~mrirecon.data.validate.open_hdf5`, size caps ``limits``):
    HDF5, nothing outside the file, readable, dataset present, real-valued 3-D, finite.
    """
    path = Path(path)
    try:
        with open_hdf5(path) as hf:
            if key is None:
                key = next((k for k in ("reconstruction_rss", "reconstruction_esc") if k in hf), None)
                if key is None:
                    raise InvalidInputError(path, "missing dataset 'reconstruction_rss' or 'reconstruction_esc'")
            if key not in hf or not isinstance(hf[key], h5py.Dataset):
                raise InvalidInputError(path, f"missing dataset '{key}' (file has: {sorted(hf.keys())})")
            dset = hf[key]
            if dset.ndim != 3 or dset.dtype.kind != "f":
                raise InvalidInputError(path, f"'{key}' must be a real volume [S,h,w], got {dset.dtype} {dset.shape}")
            check_dataset_size(path, key, dset, limits)
            check_finite(path, key, dset)
            data = np.asarray(dset[()], dtype=np.float32)
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in hf.attrs.items()}
    except OSError as err:
        raise corrupt_hdf5(path, err) from None
    return data, attrs
