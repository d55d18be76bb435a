"""Input format dispatch: fastMRI HDF5 or ISMRMRD raw, detected by content.

Both formats pass the same input gate (:func:`~mrirecon.io.hdf5.open_hdf5` and the caps of
:class:`~mrirecon.data.Limits`) before any data is read."""

from __future__ import annotations

import os
from pathlib import Path

from mrirecon.data.validate import FileInfo, Limits, open_hdf5, validate_file
from mrirecon.data.volume import Volume
from mrirecon.data.volume import read_volume as read_fastmri
from mrirecon.io.errors import InputError

FORMATS = ("fastmri", "ismrmrd")


def detect_format(path: str | os.PathLike) -> str:
    """``"fastmri"`` (has ``kspace``) or ``"ismrmrd"`` (has an ISMRMRD raw group); anything else raises
    :class:`InputError` naming what was expected."""
    from mrirecon.io.ismrmrd_gate import raw_group

    path = Path(path)
    try:
        with open_hdf5(path) as hf:  # the gate: nothing outside the file is ever opened
            if "kspace" in hf:
                return "fastmri"
            if raw_group(hf) is not None:
                return "ismrmrd"
            keys = sorted(hf.keys())
    except OSError as err:
        raise InputError(path, f"truncated or corrupt HDF5 file ({err})") from None
    raise InputError(
        path,
        f"missing dataset 'kspace' (fastMRI) or 'dataset/data' + 'dataset/xml' (ISMRMRD raw); "
        f"file has: {keys or 'nothing'}",
    )


def read_volume(path: str | os.PathLike, challenge: str | None = None, limits: Limits | None = None) -> Volume:
    """Validate and read a fastMRI or ISMRMRD raw file -> :class:`Volume` (size caps ``limits``,
    default :meth:`Limits.from_env`)."""
    if detect_format(path) == "ismrmrd":
        from mrirecon.io.ismrmrd_raw import read_ismrmrd

        if challenge not in (None, "multicoil"):
            raise InputError(path, f"ISMRMRD raw data is multi-coil; challenge {challenge!r} does not apply")
        return read_ismrmrd(path, limits=limits)
    return read_fastmri(path, challenge=challenge, limits=limits)


def validate_input(path: str | os.PathLike, check_values: bool = True, limits: Limits | None = None) -> FileInfo:
    """:func:`~mrirecon.data.validate_file` for either format. An ISMRMRD file is read in full with
    ``check_values``; without, only its headers are checked (:func:`~mrirecon.io.ismrmrd_gate.inspect_ismrmrd`)."""
    path = Path(path)
    if detect_format(path) == "fastmri":
        return validate_file(path, check_values=check_values, limits=limits)
    if not check_values:
        return _layout_info(path, limits)
    volume = read_volume(path, limits=limits)
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


def _layout_info(path: Path, limits: Limits | None) -> FileInfo:
    """A :class:`FileInfo` from the ISMRMRD headers alone (sizes before readout oversampling is removed)."""
    from mrirecon.io.ismrmrd_gate import inspect_ismrmrd

    layout = inspect_ismrmrd(path, limits)
    S, C, H, W = layout.kspace_shape
    crop = (layout.enc["recon_x"], layout.enc["recon_y"])
    return FileInfo(
        path=path,
        challenge="multicoil",
        is_test_format=not layout.fully_sampled,
        kspace_shape=(S, C, H, W),
        recon_key=None,
        target_shape=None,
        crop_size=crop,
        encoding_size=(H, W, 1),
        recon_size=(*crop, 1),
        padding_left=0,
        padding_right=W,
        has_header=True,
        attrs={"source_format": "ismrmrd"},
    )
