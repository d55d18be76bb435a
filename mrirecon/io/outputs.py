"""Writing a reconstructed magnitude volume [S,H,W] as HDF5, DICOM or NIfTI (each written atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

OUTPUT_FORMATS = ("h5", "dicom", "nifti")
CARRIED_KEYS = ("patient_id", "acquisition", "source_format", "repetition", "num_repetitions", "noise_prewhitened")


def output_path(folder: Path, name: str, fmt: str) -> Path:
    """``name.h5``, ``name/`` (a DICOM series folder) or ``name.nii.gz`` in ``folder``."""
    stem = Path(name).name.removesuffix(Path(name).suffix)
    return {"h5": folder / f"{stem}.h5", "dicom": folder / stem, "nifti": folder / f"{stem}.nii.gz"}[fmt]


def carried_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """The input attributes an output keeps: identity, acquisition, source and geometry."""
    from mrirecon.io.ismrmrd_raw import GEOMETRY_KEYS

    return {k: attrs[k] for k in (*CARRIED_KEYS, *GEOMETRY_KEYS) if k in attrs}


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
    when the geometry is incomplete (NIfTI without orientation), else None."""
    if fmt == "h5":
        from mrirecon.reconstruct import write_reconstruction

        write_reconstruction(path, volume, attrs, header_xml)
        return None
    from mrirecon import convert

    if fmt == "dicom":
        convert.write_dicom_volume(
            volume, header_xml, attrs, path, source_name=source_name, keep_identity=keep_identity
        )
        return None
    if fmt == "nifti":
        from mrirecon.io.nifti import UNKNOWN_ORIENTATION, write_nifti

        known = geometry_known(attrs)
        geometry = convert.geometry_from_h5(header_xml, attrs)
        write_nifti(path, volume, geometry, known, description=f"mrirecon {Path(source_name).name}")
        return None if known else f"{path}: {UNKNOWN_ORIENTATION} (the input has no patient orientation)"
    raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
