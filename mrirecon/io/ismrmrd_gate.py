"""The input gate for ISMRMRD raw data: what an HDF5 file's acquisition headers and XML header say,
checked before any sample is read.

The file is opened through :func:`~mrirecon.io.hdf5.open_hdf5` (no links out of the file, no
external or virtual storage); the acquisition table's declared size, the samples its headers declare
and the k-space volume that the XML encoding and the headers imply are checked against
:class:`~mrirecon.data.Limits` (the caps of fastMRI inputs). Only Cartesian 2-D single-encoding data
passes. :mod:`mrirecon.io.ismrmrd_raw` reads the samples of a file that passed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import ismrmrd
import numpy as np

from mrirecon.data.validate import read_xml_dataset
from mrirecon.io.errors import InputError
from mrirecon.io.hdf5 import Limits, check_dataset_size, corrupt_hdf5, format_size, open_hdf5

__all__ = ["GROUP", "LEFT_OUT", "RawLayout", "inspect_ismrmrd", "raw_group"]

GROUP = "dataset"
LEFT_OUT = (  # auxiliary scans, never k-space lines
    ismrmrd.ACQ_IS_NAVIGATION_DATA,
    ismrmrd.ACQ_IS_PHASECORR_DATA,
    ismrmrd.ACQ_IS_HPFEEDBACK_DATA,
    ismrmrd.ACQ_IS_RTFEEDBACK_DATA,
    ismrmrd.ACQ_IS_DUMMYSCAN_DATA,
    ismrmrd.ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA,
    ismrmrd.ACQ_IS_PHASE_STABILIZATION,
    ismrmrd.ACQ_IS_PHASE_STABILIZATION_REFERENCE,
)


def raw_group(hf: h5py.File) -> str | None:
    """Name of the ISMRMRD dataset group (``dataset`` or another group holding ``data`` and ``xml``)."""
    names = [GROUP] + sorted(k for k in hf if k != GROUP)
    for name in names:
        group = hf.get(name)
        if isinstance(group, h5py.Group) and "data" in group and "xml" in group:
            return name
    return None


@dataclass(frozen=True)
class RawLayout:
    """What the input gate learns from an ISMRMRD file's acquisition headers and XML header alone
    (no sample read): the group, the XML (text and parsed), the encoding and the declared k-space
    size [slices, channels, readout, phase] of the assembled volume."""

    group: str
    xml: str
    header: Any
    enc: dict[str, Any]
    kspace_shape: tuple[int, int, int, int]
    fully_sampled: bool


def inspect_ismrmrd(path: str | os.PathLike, limits: Limits | None = None) -> RawLayout:
    """The input gate for ISMRMRD raw data, reading headers only.

    The file is opened through :func:`~mrirecon.io.hdf5.open_hdf5` (no links out of the file, no
    external or virtual storage); the acquisition table's declared size, the samples its headers
    declare and the k-space volume that the XML encoding and the headers imply are checked against
    ``limits`` (the caps of fastMRI inputs) before any sample is read; too small a matrix is refused.
    """
    path = Path(path)
    limits = limits or Limits.from_env()
    with open_hdf5(path) as hf:
        try:
            group, heads = _read_heads(path, hf, limits)
            xml = read_xml_dataset(path, f"{group}/xml", hf[group]["xml"])
        except (OSError, RuntimeError, KeyError, ValueError) as err:
            if isinstance(err, InputError):
                raise
            raise corrupt_hdf5(path, err) from None
    try:
        header = ismrmrd.xsd.CreateFromDocument(xml)
    except Exception as err:  # the schema binding raises parser-specific types
        msg = " ".join(str(err).split())[:200]
        raise InputError(path, f"the ISMRMRD XML header is not valid ({msg})") from None
    enc = _encoding(path, header)
    flags = heads["flags"].astype(np.uint64)
    noise_bit = np.uint64(1 << (ismrmrd.ACQ_IS_NOISE_MEASUREMENT - 1))
    left_out = np.uint64(sum(1 << (f - 1) for f in LEFT_OUT))
    imaging = ((flags & noise_bit) == 0) & ((flags & left_out) == 0)
    if not imaging.any():
        raise InputError(path, "no imaging acquisitions (only noise or auxiliary scans)")
    idx = heads["idx"][imaging]
    slices = len(np.unique(idx["slice"]))
    channels = int(heads["active_channels"][imaging].max())
    nx = max(enc["enc_x"], int(heads["number_of_samples"][imaging].max()))
    shape = (slices, channels, nx, enc["enc_y"])
    _check_declared(path, "the assembled k-space", shape, limits)
    lines = idx["kspace_encode_step_1"][idx["repetition"] == idx["repetition"].min()].astype(np.int64)
    shift = enc["enc_y"] // 2 - enc["center_y"]
    fully = len(np.unique(lines + shift)) >= enc["enc_y"]
    return RawLayout(group=group, xml=xml, header=header, enc=enc, kspace_shape=shape, fully_sampled=fully)


def _read_heads(path: Path, hf: h5py.File, limits: Limits) -> tuple[str, np.ndarray]:
    """The group name and the acquisition headers (size-checked); refuses declared payloads above the cap."""
    group = raw_group(hf)
    if group is None:
        raise InputError(path, "not ISMRMRD raw data (no group holding 'data' and 'xml')")
    data = hf[group]["data"]
    if not isinstance(data, h5py.Dataset) or data.dtype.names is None or "head" not in data.dtype.names:
        raise InputError(path, f"'{group}/data' is not an ISMRMRD acquisition table")
    if data.ndim != 1 or data.shape[0] == 0:
        raise InputError(path, f"'{group}/data' holds no acquisitions (shape {data.shape})")
    check_dataset_size(path, f"{group}/data", data, limits)
    heads = data["head"]
    samples = heads["number_of_samples"].astype(np.int64) * heads["active_channels"].astype(np.int64)
    declared = int(samples.sum()) * np.dtype(np.complex64).itemsize
    if declared > limits.max_volume_bytes:
        raise InputError(
            path,
            f"acquisitions declare {format_size(declared)} of samples, above the limit of "
            f"{format_size(limits.max_volume_bytes)} per volume (MRIRECON_MAX_VOLUME_BYTES)",
        )
    return group, heads


def _check_declared(path: Path, what: str, shape: tuple[int, ...], limits: Limits) -> None:
    """Refuse a complex64 volume ``shape`` (slice axis first) above the per-volume or per-slice cap."""
    total = int(np.prod(shape, dtype=np.float64)) * np.dtype(np.complex64).itemsize
    if total > limits.max_volume_bytes:
        raise InputError(
            path,
            f"{what} would be {shape} complex64 = {format_size(total)}, above the limit of "
            f"{format_size(limits.max_volume_bytes)} per volume (MRIRECON_MAX_VOLUME_BYTES)",
        )
    per_slice = total // max(1, shape[0])
    if per_slice > limits.max_slice_bytes:
        raise InputError(
            path,
            f"{what} would have slices of {format_size(per_slice)} (shape {shape}), above the limit of "
            f"{format_size(limits.max_slice_bytes)} per slice (MRIRECON_MAX_SLICE_BYTES)",
        )


def _encoding(path: Path, header: Any) -> dict[str, Any]:
    """Matrix sizes, fields of view and the phase-encode centre of the single Cartesian 2-D encoding."""
    if len(header.encoding) != 1:
        raise InputError(path, f"{len(header.encoding)} encodings in the header; one is supported")
    enc = header.encoding[0]
    trajectory = getattr(enc.trajectory, "value", enc.trajectory)
    if str(trajectory).lower() != "cartesian":
        raise InputError(path, f"{trajectory} trajectory; only Cartesian data is supported")
    es, rs = enc.encodedSpace, enc.reconSpace
    if es.matrixSize.z > 1:
        raise InputError(path, f"3-D encoding (encoded matrix z = {es.matrixSize.z}); only 2-D is supported")
    fov = (es.fieldOfView_mm.x, es.fieldOfView_mm.y, rs.fieldOfView_mm.x)
    if min(es.matrixSize.x, es.matrixSize.y, rs.matrixSize.x, rs.matrixSize.y) < 1 or min(fov) <= 0:
        raise InputError(path, "the header's encoded/recon matrix sizes or fields of view are not positive")
    e1 = enc.encodingLimits.kspace_encoding_step_1 if enc.encodingLimits else None
    return {
        "enc_x": int(es.matrixSize.x),
        "enc_y": int(es.matrixSize.y),
        "recon_x": int(rs.matrixSize.x),
        "recon_y": int(rs.matrixSize.y),
        "fov_x": float(es.fieldOfView_mm.x),
        "fov_y": float(es.fieldOfView_mm.y),
        "recon_fov_x": float(rs.fieldOfView_mm.x),
        "thickness": float(rs.fieldOfView_mm.z or es.fieldOfView_mm.z or 0.0),
        "center_y": int(e1.center) if e1 is not None and e1.center is not None else int(es.matrixSize.y) // 2,
    }
