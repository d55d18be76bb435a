"""ISMRMRD raw data (Cartesian 2-D, one or more slices) -> the in-memory :class:`~mrirecon.data.Volume`.

Read with the ``ismrmrd`` package (``Dataset``, acquisitions, XML header), after the input gate
(:func:`inspect_ismrmrd`: :func:`~mrirecon.io.hdf5.open_hdf5` and the caps of
:class:`~mrirecon.data.Limits`, checked on headers before any sample is read). What the reader does:

- noise-adjustment scans (``ACQ_IS_NOISE_MEASUREMENT``) give the coil noise covariance; the coils are
  prewhitened with its inverse Cholesky factor, scaled to keep the mean noise power;
- navigator, phase-correction, feedback and dummy acquisitions are left out; parallel-imaging
  calibration lines of the same readout are k-space lines like any other;
- k-space is placed by the encoding counters (slice, ``kspace_encode_step_1``), repeated lines
  (averages) are averaged, one repetition is taken; several contrasts, phases or sets are refused;
- readout oversampling (encoded over recon field of view along x) is removed in image space; the image
  is later cropped to the ``reconSpace`` matrix (``Volume.crop_size``);
- the mask is the set of acquired phase-encode lines: all acquired -> fully sampled (``mask`` None,
  ``target`` the RSS image, as in fastMRI train files); otherwise a test-format volume;
- the XML header is carried as ``Volume.header_xml``; the geometry of the acquisitions (when they carry
  one) becomes the DICOM-style attributes of :data:`GEOMETRY_KEYS`, which the DICOM and NIfTI writers use.

Image layout as in fastMRI: rows = readout (x), columns = phase encoding (y).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import sigpy

from mrirecon.data.transforms import center_run_length
from mrirecon.data.volume import Volume
from mrirecon.io.errors import InputError
from mrirecon.io.hdf5 import Limits
from mrirecon.io.ismrmrd_gate import LEFT_OUT, inspect_ismrmrd
from mrirecon.physics import zero_filled_rss_np

GEOMETRY_KEYS = (
    "pixel_spacing",
    "slice_thickness",
    "slice_spacing",
    "image_orientation_patient",
    "image_position_patient",
    "geometry_source",
)
NO_GEOMETRY = "none: the acquisitions carry no orientation (voxel sizes from the header, axes assumed)"


def read_ismrmrd(path: str | os.PathLike, repetition: int = 0, limits: Limits | None = None) -> Volume:
    """Validate and read an ISMRMRD raw file -> :class:`Volume` (kspace complex64 [S,C,H,W]).

    The file passes :func:`inspect_ismrmrd` (the input gate, with the caps of ``limits``, default
    :meth:`Limits.from_env`) before ``ismrmrd.Dataset`` reads any acquisition.

    Raises:
        InputError: one line naming the file and the problem (refused layouts included).
    """
    path = Path(path)
    limits = limits or Limits.from_env()
    layout = inspect_ismrmrd(path, limits)
    enc = layout.enc
    acquisitions = _read_acquisitions(path, layout.group)
    noise, image = _split(acquisitions)
    if not image:
        raise InputError(path, "no imaging acquisitions (only noise or auxiliary scans)")
    image, repetitions = _one_repetition(path, image, repetition)
    channels, samples = _uniform(path, image)
    whitener = _prewhitener(path, noise, channels) if noise else None
    kspace, slice_ids, acquired, firsts = _assemble(path, image, enc, channels, samples, whitener)
    if not kspace.any():
        raise InputError(path, "k-space is all zeros; there is nothing to reconstruct")
    row_spacing = enc["fov_x"] / kspace.shape[-2]  # image-space crops keep the sample spacing
    kspace = _remove_oversampling(kspace, enc)
    _check_matrix(path, kspace.shape[-2:], limits)
    crop = (min(enc["recon_x"], kspace.shape[-2]), min(enc["recon_y"], kspace.shape[-1]))
    if not (acquired == acquired[:1]).all():
        raise InputError(path, "slices were sampled on different phase-encode lines; one mask per file needed")
    geometry = _geometry(firsts, enc, row_spacing, crop)
    if "order" in geometry:  # slices sorted along the slice normal
        order = geometry.pop("order")
        kspace, slice_ids = kspace[order], [slice_ids[i] for i in order]
    mask = acquired[0]
    attrs: dict[str, Any] = {
        "source_format": "ismrmrd",
        "repetition": repetition,
        "num_repetitions": repetitions,
        "slice_indices": np.asarray(slice_ids, dtype=np.int32),
        "noise_prewhitened": int(whitener is not None),
        "noise_samples": int(sum(a.number_of_samples for a in noise)),
        **geometry,
    }
    if mask.all():
        target = zero_filled_rss_np(kspace, crop)  # fully sampled: the RSS target
        mask_out, nlf = None, None
        max_value = float(target.max())
    else:
        target, mask_out, max_value = None, mask, None
        nlf = center_run_length(mask)
        attrs["acceleration"] = int(round(mask.size / mask.sum()))
        attrs["num_low_frequency"] = nlf
    return Volume(
        fname=path.name,
        kspace=kspace,
        mask=mask_out,
        num_low_frequencies=nlf,
        target=target,
        max_value=max_value,
        crop_size=crop,
        attrs=attrs,
        header_xml=layout.xml,
        challenge="multicoil",
    )


def _check_matrix(path: Path, hw: tuple[int, ...], limits: Limits) -> None:
    if min(hw) < limits.min_matrix:
        raise InputError(
            path,
            f"k-space matrix {hw[0]}x{hw[1]} is too small to reconstruct (at least {limits.min_matrix} per side)",
        )


def _read_acquisitions(path: Path, group: str) -> list[ismrmrd.Acquisition]:
    """Every acquisition, read by ``ismrmrd.Dataset`` (after :func:`inspect_ismrmrd` passed)."""
    try:
        ds = ismrmrd.Dataset(str(path), group, create_if_needed=False, mode="r")
    except OSError as err:
        raise InputError(path, f"cannot open the ISMRMRD dataset ({err})") from None
    try:
        return [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    except (OSError, KeyError, ValueError, LookupError, TypeError) as err:
        raise InputError(path, f"cannot read the ISMRMRD acquisitions: truncated or corrupt ({err})") from None
    finally:
        ds.close()


def _split(acquisitions: list[ismrmrd.Acquisition]) -> tuple[list, list]:
    noise, image = [], []
    for acq in acquisitions:
        if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            noise.append(acq)
        elif not any(acq.is_flag_set(flag) for flag in LEFT_OUT):
            image.append(acq)
    return noise, image


def _one_repetition(path: Path, image: list, repetition: int) -> tuple[list, int]:
    """Refuse several contrasts/phases/sets; keep the acquisitions of one repetition."""
    for counter, what in (("contrast", "contrasts"), ("phase", "cardiac phases"), ("set", "sets")):
        values = {getattr(a.idx, counter) for a in image}
        if len(values) > 1:
            raise InputError(
                path, f"{len(values)} {what} (idx.{counter}); only one per file is supported: split the file first"
            )
    if any(a.idx.kspace_encode_step_2 != 0 for a in image):
        raise InputError(path, "kspace_encode_step_2 varies: 3-D encoding is not supported")
    reps = sorted({a.idx.repetition for a in image})
    if repetition not in reps:
        raise InputError(path, f"repetition {repetition} is not in the file (it has {reps})")
    return [a for a in image if a.idx.repetition == repetition], len(reps)


def _uniform(path: Path, image: list) -> tuple[int, int]:
    channels = {a.active_channels for a in image}
    samples = {a.number_of_samples - a.discard_pre - a.discard_post for a in image}
    if len(channels) != 1:
        raise InputError(path, f"imaging acquisitions have different channel counts {sorted(channels)}")
    if len(samples) != 1:
        raise InputError(path, f"imaging readouts have different lengths {sorted(samples)}")
    (c,), (n,) = channels, samples
    if c < 1 or n < 1:
        raise InputError(path, "imaging acquisitions hold no samples")
    return c, n


# --------------------------------------------------------------------------------------------
# physics


def _prewhitener(path: Path, noise: list, channels: int) -> np.ndarray:
    """[C,C] matrix W with W Psi W^H = (mean noise power) I, Psi the coil noise covariance."""
    if {a.active_channels for a in noise} != {channels}:
        raise InputError(path, f"noise scans do not have the {channels} channels of the imaging data")
    samples = np.concatenate([a.data for a in noise], axis=1).astype(np.complex128)  # [C, N]
    if samples.shape[1] <= channels:
        raise InputError(
            path, f"noise scans hold {samples.shape[1]} samples for {channels} coils: too few for a covariance"
        )
    psi = samples @ samples.conj().T / samples.shape[1]
    if not np.isfinite(psi).all():
        raise InputError(path, "noise scans contain NaN or Inf values")
    try:
        lower = np.linalg.cholesky(psi)
    except np.linalg.LinAlgError:
        raise InputError(path, "the coil noise covariance is singular (a dead or duplicated channel?)") from None
    scale = np.sqrt(np.trace(psi).real / channels)
    return scale * np.linalg.inv(lower)


def _assemble(
    path: Path, image: list, enc: dict, channels: int, samples: int, whitener: np.ndarray | None
) -> tuple[np.ndarray, list[int], np.ndarray, dict[int, Any]]:
    """k-space [S,C,Nx,Ny] (averaged over repeated lines), slice ids, acquired lines bool [S,Ny] and
    the first acquisition of every slice (for its geometry)."""
    nx = max(enc["enc_x"], samples)
    ny = enc["enc_y"]
    shift_y = ny // 2 - enc["center_y"]
    slice_ids = sorted({a.idx.slice for a in image})
    row = {s: i for i, s in enumerate(slice_ids)}
    total = np.zeros((len(slice_ids), channels, nx, ny), np.complex128)
    count = np.zeros((len(slice_ids), ny), np.int64)
    firsts: dict[int, Any] = {}
    for acq in image:
        line = acq.data[:, acq.discard_pre : acq.number_of_samples - acq.discard_post]
        if acq.is_flag_set(ismrmrd.ACQ_IS_REVERSE):
            line = line[:, ::-1]
        start = nx // 2 - (acq.center_sample - acq.discard_pre)
        col = acq.idx.kspace_encode_step_1 + shift_y
        if not (start >= 0 and start + samples <= nx):
            raise InputError(path, f"readout centre sample {acq.center_sample} does not fit {nx} samples")
        if not 0 <= col < ny:
            raise InputError(
                path, f"phase-encode line {acq.idx.kspace_encode_step_1} lies outside the encoded matrix ({ny} lines)"
            )
        if whitener is not None:
            line = whitener @ line
        s = row[acq.idx.slice]
        total[s, :, start : start + samples, col] += line
        count[s, col] += 1
        firsts.setdefault(s, acq)
    kspace = total / np.maximum(count, 1)[:, None, None, :]
    if not np.isfinite(kspace).all():
        raise InputError(path, "k-space contains NaN or Inf values")
    return kspace.astype(np.complex64), slice_ids, count > 0, firsts


def _remove_oversampling(kspace: np.ndarray, enc: dict) -> np.ndarray:
    """Crop the readout field of view to the recon one in image space -> k-space [S,C,H,W]."""
    nx = kspace.shape[-2]
    keep = int(round(nx * enc["recon_fov_x"] / enc["fov_x"]))
    if keep >= nx:
        return kspace
    image = sigpy.ifft(kspace, axes=(-2,))  # centred, orthonormal
    start = nx // 2 - keep // 2
    cropped = sigpy.fft(image[..., start : start + keep, :], axes=(-2,))
    return np.ascontiguousarray(cropped, dtype=np.complex64)


# --------------------------------------------------------------------------------------------
# geometry


def _geometry(firsts: dict[int, Any], enc: dict, dr: float, crop: tuple[int, int]) -> dict[str, Any]:
    """DICOM-style geometry attributes (LPS, as ISMRMRD's patient coordinates) of the cropped image.

    Rows follow ``read_dir``, columns ``phase_dir``; ``order`` sorts the slices along the normal.
    """
    dc = enc["fov_y"] / enc["enc_y"]
    out: dict[str, Any] = {"pixel_spacing": np.array([dr, dc]), "geometry_source": NO_GEOMETRY}
    if enc["thickness"] > 0:
        out["slice_thickness"] = enc["thickness"]
    acqs = [firsts[s] for s in sorted(firsts)]
    read = np.array([list(a.read_dir) for a in acqs], dtype=np.float64)
    phase = np.array([list(a.phase_dir) for a in acqs], dtype=np.float64)
    centre = np.array([list(a.position) for a in acqs], dtype=np.float64)
    unit = lambda v: np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)  # noqa: E731
    if not (unit(read) and unit(phase)) or not (np.allclose(read, read[0], atol=1e-4) and np.allclose(phase, phase[0])):
        return out
    row_dir, col_dir = phase[0], read[0]  # DICOM: along a row = increasing column index = phase encoding
    normal = np.cross(row_dir, col_dir)
    order = np.argsort(centre @ normal, kind="stable")
    centre = centre[order]
    first = centre - (crop[0] // 2) * dr * col_dir - (crop[1] // 2) * dc * row_dir
    out.update(
        image_orientation_patient=np.concatenate([row_dir, col_dir]),
        image_position_patient=first,
        geometry_source="ismrmrd acquisition headers (position, read_dir, phase_dir)",
        order=order,
    )
    if len(order) > 1:
        out["slice_spacing"] = float(np.median(np.diff(centre @ normal)))
    return out
