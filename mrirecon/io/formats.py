"""Input format dispatch: fastMRI HDF5 or ISMRMRD raw, detected by content."""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from mrirecon.data.validate import FileInfo, InvalidInputError, check_hdf5_file, validate_file
from mrirecon.data.volume import Volume
from mrirecon.data.volume import read_volume as read_fastmri

FORMATS = ("fastmri", "ismrmrd")


def detect_format(path: str | os.PathLike) -> str:
    """``"fastmri"`` (has ``kspace``) or ``"ismrmrd"`` (has an ISMRMRD raw group); anything else raises
    :class:`InvalidInputError` naming what was expected."""
    from mrirecon.io.ismrmrd_raw import raw_group

    path = Path(path)
    check_hdf5_file(path)
    try:
        with h5py.File(path, "r") as hf:
            if "kspace" in hf:
                return "fastmri"
            if raw_group(hf) is not None:
                return "ismrmrd"
            keys = sorted(hf.keys())
    except OSError as err:
        raise InvalidInputError(path, f"truncated or corrupt HDF5 file ({err})") from None
    raise InvalidInputError(
        path,
        f"missing dataset 'kspace' (fastMRI) or 'dataset/data' + 'dataset/xml' (ISMRMRD raw); "
        f"file has: {keys or 'nothing'}",
    )


def read_volume(path: str | os.PathLike, challenge: str | None = None) -> Volume:
    """Validate and read a fastMRI or ISMRMRD raw file -> :class:`Volume`."""
    if detect_format(path) == "ismrmrd":
        from mrirecon.io.ismrmrd_raw import read_ismrmrd

        if challenge not in (None, "multicoil"):
            raise InvalidInputError(path, f"ISMRMRD raw data is multi-coil; challenge {challenge!r} does not apply")
        return read_ismrmrd(path)
    return read_fastmri(path, challenge=challenge)


def validate_input(path: str | os.PathLike, check_values: bool = True) -> FileInfo:
    """:func:`~mrirecon.data.validate_file` for either format (an ISMRMRD file is read in full)."""
    path = Path(path)
    if detect_format(path) == "fastmri":
        return validate_file(path, check_values=check_values)
    volume = read_volume(path)
    S, C, H, W = volume.kspace.shape
    return FileInfo(
        path=path,
        challenge="multicoil",
        is_test_format=volume.is_test_format,
        kspace_shape=(S, C, H, W),
        recon_key=None,
        target_shape=None if volume.target is None else volume.target.shape,
        crop_size=volume.crop_size,
        encoding_size=(H, W, 1),
        recon_size=(*volume.crop_size, 1),
        padding_left=0,
        padding_right=W,
        has_header=True,
        mask=volume.mask,
        acceleration=volume.attrs.get("acceleration"),
        num_low_frequencies=volume.num_low_frequencies,
        attrs=volume.attrs,
    )
