"""NIfTI-1 output of a magnitude volume, with the affine of its patient geometry (nibabel).

The array is stored as ``[W, H, S]`` (i along a DICOM row = columns, j down the rows, k across slices),
the usual DICOM-to-NIfTI layout; the affine maps (i, j, k) to RAS millimetres. When the geometry has
no orientation (``geometry_known=False``) the affine holds the voxel sizes on assumed axes, the form
codes say "aligned" rather than "scanner", and the description says so. Written atomically under
a short temporary name (:func:`mrirecon.io.files.write_atomically`).
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from mrirecon.io.dicom.header import Geometry
from mrirecon.io.files import write_atomically

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
UNKNOWN_ORIENTATION = "orientation unknown: voxel sizes only, axes assumed"
DESCRIPTION = "mrirecon reconstruction"  # fixed: never text from the input (names, protocols)


def nifti_affine(geometry: Geometry, shape: tuple[int, int, int]) -> np.ndarray:
    """4x4 RAS affine for a volume of ``shape`` [S,H,W] stored as [W,H,S]."""
    o = np.asarray(geometry.orientation, dtype=np.float64)
    dr, dc = geometry.pixel_spacing
    lps = np.eye(4)
    lps[:3, 0] = o[:3] * dc
    lps[:3, 1] = o[3:] * dr
    lps[:3, 2] = geometry.normal * geometry.spacing_between_slices
    lps[:3, 3] = geometry.positions(shape)[0]
    return LPS_TO_RAS @ lps


def write_nifti(path: str | os.PathLike, volume: np.ndarray, geometry: Geometry, geometry_known: bool) -> Path:
    """Write float32 ``volume`` [S,H,W] to ``path`` (``.nii`` or ``.nii.gz``) atomically -> path.

    The header holds no free text from the input: ``descrip`` is :data:`DESCRIPTION` (plus the note
    on an unknown orientation), ``db_name``, ``aux_file`` and ``intent_name`` stay empty.
    """
    path = Path(path)
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"a NIfTI volume must be [S,H,W], got shape {volume.shape}")
    if not np.isfinite(volume).all():
        raise ValueError(f"{path}: the reconstruction holds NaN or Inf values; nothing written")
    affine = nifti_affine(geometry, volume.shape)
    img = nib.Nifti1Image(np.ascontiguousarray(volume.transpose(2, 1, 0)), affine)
    code = "scanner" if geometry_known else "aligned"
    img.set_sform(affine, code=code)
    img.set_qform(affine, code=code)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = DESCRIPTION if geometry_known else f"{DESCRIPTION}; {UNKNOWN_ORIENTATION}"
    suffix = ".nii.gz" if path.name.endswith(".gz") else ".nii"
    return write_atomically(path, lambda tmp: nib.save(img, tmp), suffix)
