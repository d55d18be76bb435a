"""``fastmri.data.SliceDataset`` with validation of every file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from fastmri.data.mri_data import SliceDataset

from mrirecon.data.validate import FileInfo, InvalidInputError, validate_file


class ValidatedSliceDataset(SliceDataset):
    """SliceDataset whose files are validated when it is built (structure, header, shapes, mask).

    Header-less files are accepted (fastMRI's own class needs ``ismrmrd_header``). NaN/Inf values
    are checked slice by slice as slices are read, or for whole files up front with
    ``check_values=True``. Hidden files (names starting with ``.``, e.g. partial writes) are skipped.
    Items are whatever ``transform`` returns for (kspace, mask, target, attrs, fname, slice_num).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        challenge: str = "multicoil",
        transform: Callable | None = None,
        sample_rate: float | None = None,
        volume_sample_rate: float | None = None,
        check_values: bool = False,
        **kwargs: Any,
    ):
        root = Path(root)
        if not root.is_dir():
            raise InvalidInputError(root, "data folder does not exist")
        self.check_values = check_values
        self.file_info: dict[str, FileInfo] = {}
        super().__init__(
            root,
            challenge,
            transform=transform,
            sample_rate=sample_rate,
            volume_sample_rate=volume_sample_rate,
            **kwargs,
        )

    def _retrieve_metadata(self, fname):
        fname = Path(fname)
        if fname.name.startswith("."):
            return {}, 0
        info = validate_file(fname, challenge=self.recons_key_challenge, check_values=self.check_values)
        self.file_info[str(fname)] = info
        return info.metadata(), info.num_slices

    @property
    def recons_key_challenge(self) -> str:
        return "singlecoil" if self.recons_key == "reconstruction_esc" else "multicoil"

    def __getitem__(self, i: int):
        fname, dataslice, metadata = self.raw_samples[i]
        try:
            with h5py.File(fname, "r") as hf:
                kspace = hf["kspace"][dataslice]
                mask = np.asarray(hf["mask"]) if "mask" in hf else None
                target = hf[self.recons_key][dataslice] if self.recons_key in hf else None
                attrs = dict(hf.attrs)
        except (OSError, KeyError) as err:
            raise InvalidInputError(fname, f"cannot read slice {dataslice} ({err})") from None
        if not np.isfinite(kspace).all():
            raise InvalidInputError(fname, f"'kspace' contains NaN or Inf values (slice {dataslice})")
        if target is not None and not np.isfinite(target).all():
            raise InvalidInputError(fname, f"'{self.recons_key}' contains NaN or Inf values (slice {dataslice})")
        attrs.update(metadata)
        if self.transform is None:
            return kspace, mask, target, attrs, fname.name, dataslice
        return self.transform(kspace, mask, target, attrs, fname.name, dataslice)
