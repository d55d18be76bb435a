"""Whole-volume reading of fastMRI files (validated first)."""

from __future__ import annotations

import os
from collections.abc import Sequence
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


@dataclass
class ImageFile:
    """A magnitude image volume read from HDF5: ``volume`` float32 [S,H,W], the dataset ``key`` used,
    the file's raw ``attrs`` and its ``ismrmrd_header`` (when asked for and readable, else None)."""

    volume: np.ndarray
    key: str
    attrs: dict[str, Any]
    header_xml: str | None = None


def read_image(
    path: str | os.PathLike, keys: Sequence[str], limits: Limits | None = None, with_header: bool = False
) -> ImageFile:
    """Read the first of ``keys`` present in an HDF5 file as a checked image volume -> :class:`ImageFile`.

    The one gate of every image input (ground truth, reconstructions, converter inputs): the file passes
    :func:`~mrirecon.io.hdf5.open_hdf5`; the dataset must be real numbers (not complex), 3-D
    [S,H,W], non-empty, within the size caps ``limits`` and finite. Raises :class:`InvalidInputError`.
    """
    path = Path(path)
    try:
        with open_hdf5(path) as hf:
            key = next((k for k in keys if k in hf), None)
            if key is None:
                found = ", ".join(sorted(hf.keys())) or "nothing"
                wanted = " or ".join(f"'{k}'" for k in keys)
                raise InvalidInputError(path, f"missing reconstruction dataset {wanted} (file holds: {found})")
            dset = hf[key]
            if not isinstance(dset, h5py.Dataset):
                raise InvalidInputError(path, f"'{key}' is not a dataset")
            if dset.dtype.kind == "c":
                raise InvalidInputError(path, f"'{key}' is complex ({dset.dtype}); expected a magnitude image")
            if dset.dtype.kind not in "fiu":
                raise InvalidInputError(path, f"'{key}' has dtype {dset.dtype}; expected real numbers")
            if dset.ndim != 3:
                raise InvalidInputError(path, f"'{key}' has shape {dset.shape}; expected [slices, height, width]")
            if 0 in dset.shape:
                raise InvalidInputError(path, f"'{key}' is empty (shape {dset.shape})")
            check_dataset_size(path, key, dset, limits)
            check_finite(path, key, dset)
            try:
                volume = np.asarray(dset[()], dtype=np.float32)
            except (OSError, ValueError) as err:
                raise InvalidInputError(path, f"cannot read '{key}', truncated or corrupt? ({err})") from None
            header = None
            if with_header:
                try:
                    header = read_header_xml(path, hf)
                except (InvalidInputError, OSError, ValueError):
                    header = None  # an unreadable header only costs the geometry it would give
            attrs = dict(hf.attrs.items())
    except OSError as err:
        raise corrupt_hdf5(path, err) from None
    return ImageFile(volume, key, attrs, header)


def read_target(
    path: str | os.PathLike, key: str | None = None, limits: Limits | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a target-only (ground-truth) or reconstruction file -> (float32 [S,h,w], attrs).

    ``key`` defaults to ``reconstruction_rss``, else ``reconstruction_esc``; checked by :func:`read_image`.
    """
    image = read_image(path, [key] if key else ["reconstruction_rss", "reconstruction_esc"], limits)
    return image.volume, {k: (v.item() if isinstance(v, np.generic) else v) for k, v in image.attrs.items()}
