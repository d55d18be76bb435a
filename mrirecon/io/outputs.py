"""Writing a reconstructed magnitude volume [S,H,W] as HDF5, DICOM or NIfTI (each written atomically).

Unless ``keep_identity`` is set, no output carries identity: the ISMRMRD header loses its identifying
fields (:func:`mrirecon.io.deid.strip_ismrmrd_identity`), identifying attributes are not copied, DICOM
gets a keyed pseudonym of the patient (the source's PatientID, else the input file) and new keyed UIDs,
the NIfTI description is a fixed text, and exported files are named from a keyed pseudonym of the input
path (:func:`public_name`) rather than from the input name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrirecon.io import deid
from mrirecon.io.files import write_atomically

OUTPUT_FORMATS = ("h5", "dicom", "nifti")
ENHANCED_NAME = "ENHANCED.dcm"  # the one file of a multi-frame DICOM output folder
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
    return Path(deid.pseudonym("output", str(Path(src).resolve())))


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
    enhanced: bool = False,
    description: str | None = None,
) -> str | None:
    """Write ``volume`` in ``fmt`` to ``path`` (see :func:`output_path`); returns a note for the user
    when the geometry is incomplete (NIfTI without orientation), else None. Without ``keep_identity``
    the header and attributes are de-identified here, whatever the caller passed. DICOM only:
    ``enhanced`` writes one multi-frame object, ``description`` is the SeriesDescription kept with
    ``keep_identity``."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    if fmt == "dicom":  # the DICOM writer pseudonymises from the full identity itself
        write_dicom_volume(volume, header_xml, attrs, path, source_name, keep_identity, enhanced, description)
        return None
    if not keep_identity:
        header_xml, attrs = deid.strip_ismrmrd_identity(header_xml), public_attrs(attrs)
    if fmt == "h5":
        write_reconstruction(path, volume, attrs, header_xml)
        return None
    from mrirecon.io.dicom.header import geometry_from_h5
    from mrirecon.io.nifti import UNKNOWN_ORIENTATION, write_nifti

    known = geometry_known(attrs)
    write_nifti(path, volume, geometry_from_h5(header_xml, attrs), known)
    return None if known else f"{path}: {UNKNOWN_ORIENTATION} (the input has no patient orientation)"


def write_reconstruction(path: Path, recon: np.ndarray, attrs: dict[str, Any], header_xml: str | None) -> None:
    """A fastMRI submission file: ``reconstruction`` float32 [S,H,W], the header and ``attrs``."""
    if not np.isfinite(recon).all():
        raise ValueError(f"{path}: the reconstruction holds NaN or Inf values; nothing written")
    write_h5(path, {"reconstruction": np.asarray(recon, dtype=np.float32), "ismrmrd_header": header_xml}, attrs)


def write_h5(path: str | os.PathLike, datasets: dict[str, Any], attrs: dict[str, Any]) -> Path:
    """An HDF5 file holding ``datasets`` (None values left out) and file attributes ``attrs``, atomically."""

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as hf:
            for key, value in datasets.items():
                if value is not None:
                    hf.create_dataset(key, data=value)
            for key, value in attrs.items():
                hf.attrs[key] = value

    return write_atomically(path, write, ".h5")


def write_dicom_volume(
    volume: np.ndarray,
    header_xml: str | None,
    attrs: dict[str, Any],
    dst: Path,
    source_name: str,
    keep_identity: bool = False,
    enhanced: bool = False,
    description: str | None = None,
) -> None:
    """``volume`` [S,H,W] as the DICOM series folder ``dst`` (replaced if it exists; ``IM00001.dcm``...,
    or ``ENHANCED.dcm`` with ``enhanced``), de-identified unless ``keep_identity``.

    One pseudonym per patient (the source's PatientID), else one per input file ``source_name`` (never
    per file name); UIDs are keyed digests of the source unless ``keep_identity`` keeps its study and
    frame-of-reference UIDs.
    """
    from mrirecon.io import dicom

    ident = dicom.identity_from_h5(header_xml, attrs)
    patient = ident.get("PatientID")
    options: dict[str, Any] = {
        "geometry": dicom.geometry_from_h5(header_xml, attrs),
        "acquisition": dicom.acquisition_from_ismrmrd(header_xml),
        "series_description": (description if keep_identity else None) or dicom.DEIDENTIFIED_DESCRIPTION,
        "pseudonymise": not keep_identity,
        "pseudonym_key": f"patient:{patient}" if patient else f"file:{source_name}",
        "uid_key": source_name if keep_identity else deid.keyed_digest("source", source_name),
        "identity": ident if keep_identity else {},
    }
    if keep_identity:
        options["study_uid"] = str(attrs.get("study_instance_uid") or "") or None
        options["frame_of_reference_uid"] = str(attrs.get("frame_of_reference_uid") or "") or None
    volume = np.asarray(volume, dtype=np.float32)

    def write(tmp: Path) -> None:
        if enhanced:
            dicom.write_enhanced(volume, tmp / ENHANCED_NAME, **options)
        else:
            dicom.write_series(volume, tmp, **options)

    write_atomically(dst, write)
