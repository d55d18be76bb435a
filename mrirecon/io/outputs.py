"""Writing a reconstructed magnitude volume [S,H,W] as HDF5, DICOM or NIfTI (each written atomically).

Unless ``keep_identity`` is set, no output carries identity: the ISMRMRD header loses its identifying
fields (:func:`mrirecon.deid.strip_ismrmrd_identity`), identifying attributes are not copied, the
NIfTI description is a fixed text, and exported files are named from a keyed pseudonym of the input
path (:func:`public_name`) rather than from the input name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

OUTPUT_FORMATS = ("h5", "dicom", "nifti")
CARRIED_KEYS = ("patient_id", "acquisition", "source_format", "repetition", "num_repetitions", "noise_prewhitened")
# attributes that name or point to a patient, study or source file; dropped unless keep_identity
IDENTITY_KEYS = (
    "patient_id",
    "patient_name",
    "patient_birth_date",
    "patient_sex",
    "series_description",
    "study_instance_uid",
    "series_instance_uid",
    "frame_of_reference_uid",
    "sop_instance_uids",
    "source_file",
)


def output_path(folder: Path, name: str | os.PathLike, fmt: str) -> Path:
    """``folder/name`` as ``<name>.h5``, ``<name>/`` (a DICOM series folder) or ``<name>.nii.gz``;
    ``name`` may hold sub-folders (a mirrored input tree) and its suffix is replaced."""
    rel = Path(name)
    stem = rel.parent / rel.name.removesuffix(rel.suffix) if rel.suffix else rel
    return {"h5": folder / f"{stem}.h5", "dicom": folder / stem, "nifti": folder / f"{stem}.nii.gz"}[fmt]


def public_name(src: str | os.PathLike, relative: str | os.PathLike, keep_identity: bool) -> Path:
    """The output name of input ``src``: its ``relative`` name with ``keep_identity`` (input names often
    hold the patient's name), else ``ANON-<keyed pseudonym of the input path>``."""
    if keep_identity:
        return Path(relative)
    from mrirecon.dicom import pseudonym

    return Path(pseudonym("output", str(Path(src).resolve())))


def carried_attrs(attrs: dict[str, Any], keep_identity: bool = False) -> dict[str, Any]:
    """The input attributes an output keeps: acquisition, source and geometry (identity only if asked)."""
    from mrirecon.io.ismrmrd_raw import GEOMETRY_KEYS

    keys = (*CARRIED_KEYS, *GEOMETRY_KEYS)
    return {k: attrs[k] for k in keys if k in attrs and (keep_identity or k not in IDENTITY_KEYS)}


def public_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` without :data:`IDENTITY_KEYS`."""
    return {k: v for k, v in attrs.items() if k not in IDENTITY_KEYS}


def geometry_known(attrs: dict[str, Any]) -> bool:
    return "image_orientation_patient" in attrs and "image_position_patient" in attrs


def write_output(
    path: Path,
    fmt: str,
    volume: np.ndarray,
    header_xml: str | None,
    attrs: dict[str, Any],
    source_name: str,
    keep_identity: bool = False,
) -> str | None:
    """Write ``volume`` in ``fmt`` to ``path`` (see :func:`output_path`); returns a note for the user
    when the geometry is incomplete (NIfTI without orientation), else None. Without ``keep_identity``
    the header and attributes are de-identified here, whatever the caller passed."""
    from mrirecon import convert
    from mrirecon.deid import strip_ismrmrd_identity

    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    if fmt == "dicom":  # the DICOM writer pseudonymises from the full identity itself
        convert.write_dicom_volume(
            volume, header_xml, attrs, path, source_name=source_name, keep_identity=keep_identity
        )
        return None
    if not keep_identity:
        header_xml, attrs = strip_ismrmrd_identity(header_xml), public_attrs(attrs)
    if fmt == "h5":
        from mrirecon.reconstruct import write_reconstruction

        write_reconstruction(path, volume, attrs, header_xml)
        return None
    from mrirecon.io.nifti import UNKNOWN_ORIENTATION, write_nifti

    known = geometry_known(attrs)
    write_nifti(path, volume, convert.geometry_from_h5(header_xml, attrs), known)
    return None if known else f"{path}: {UNKNOWN_ORIENTATION} (the input has no patient orientation)"
