"""One conversion of one input, as the ``convert`` command runs them (each output written atomically).

- :func:`h5_to_dicom_file`: a fastMRI-style reconstruction file -> a DICOM series folder (or NIfTI);
- :func:`kspace_to_image_file`: a k-space file (fastMRI or ISMRMRD raw) reconstructed by the model ->
  DICOM, NIfTI or a fastMRI submission file (also what ``reconstruct`` runs per file);
- :func:`ismrmrd_to_h5_file`: ISMRMRD raw data -> a fastMRI-layout k-space file;
- :func:`dicom_series_to_h5`: the files of one DICOM series -> an HDF5 volume with its geometry.

Inputs pass the readers' checks; a bad one raises :class:`~mrirecon.io.InputError` naming it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mrirecon.data.validate import plain_value
from mrirecon.data.volume import read_image
from mrirecon.io import deid
from mrirecon.io.outputs import public_attrs, write_h5, write_output

__all__ = [
    "RECONSTRUCTION_KEYS",
    "dicom_series_to_h5",
    "h5_to_dicom_file",
    "ismrmrd_to_h5_file",
    "kspace_to_image_file",
    "read_reconstruction_h5",
]

RECONSTRUCTION_KEYS = ("reconstruction", "reconstruction_rss", "reconstruction_esc")

# (path, **options) -> (volume float [S,H,W], header_xml or None, attrs)
ReconstructFn = Callable[..., tuple[np.ndarray, "str | None", dict]]


def read_reconstruction_h5(
    path: str | Path, dataset: str | None = None
) -> tuple[np.ndarray, str | None, dict[str, Any], str]:
    """Read and check a reconstruction file -> ``(volume float32 [S,H,W], header_xml, attrs, key)``.

    ``key`` is the dataset used: ``dataset`` when given, else the first of :data:`RECONSTRUCTION_KEYS`
    present. Raises :class:`~mrirecon.io.InputError`: not HDF5, truncated/corrupt, missing dataset,
    wrong rank or dtype, empty, NaN/Inf values.
    """
    image = read_image(path, [dataset] if dataset else RECONSTRUCTION_KEYS, with_header=True)
    return image.volume, image.header_xml, {k: plain_value(v) for k, v in image.attrs.items()}, image.key


def _write(dst: Path, fmt: str, volume: np.ndarray, header: str | None, attrs: dict, src: Path, **options) -> None:
    """:func:`~mrirecon.io.outputs.write_output`; its note about a missing orientation goes to stderr."""
    note = write_output(dst, fmt, volume, header, attrs, source_name=str(src.resolve()), **options)
    if note:
        print(f"note: {note}", file=sys.stderr)


def h5_to_dicom_file(
    src: str | Path,
    dst: str | Path,
    *,
    keep_identity: bool = False,
    enhanced: bool = False,
    dataset: str | None = None,
    fmt: str = "dicom",
) -> Path:
    """Convert one reconstruction file to the DICOM series folder ``dst`` (replaced if it exists), or
    with ``fmt="nifti"`` to the NIfTI file ``dst``."""
    src, dst = Path(src), Path(dst)
    volume, header, attrs, key = read_reconstruction_h5(src, dataset)
    description = str(attrs.get("series_description") or f"mrirecon {key}")
    _write(
        dst, fmt, volume, header, attrs, src, keep_identity=keep_identity, enhanced=enhanced, description=description
    )
    return dst


def model_reconstruct() -> ReconstructFn:
    """The model's ``reconstruct_volume_file`` (imported lazily: it pulls in torch and the model)."""
    from mrirecon.reconstruct import reconstruct_volume_file

    return reconstruct_volume_file


def kspace_to_image_file(
    src: str | Path,
    dst: str | Path,
    *,
    options: dict[str, Any] | None = None,
    reconstruct: ReconstructFn | None = None,
    keep_identity: bool = False,
    enhanced: bool = False,
    fmt: str = "dicom",
) -> Path:
    """Reconstruct one k-space file with ``reconstruct(path, **options)`` and write ``dst`` in ``fmt``
    (``dicom``, ``nifti`` or ``h5``).

    ``reconstruct`` defaults to ``mrirecon.reconstruct.reconstruct_volume_file``; it is called with
    ``keep_identity=True`` (the full header comes back so that the patient gets their pseudonym; the
    writer de-identifies) and must return ``(volume float [S,H,W], header_xml or None, attrs)``.
    """
    src, dst = Path(src), Path(dst)
    fn = reconstruct or model_reconstruct()
    volume, header, attrs = fn(src, **{**(options or {}), "keep_identity": True})
    volume = np.asarray(volume)
    if volume.ndim != 3 or np.iscomplexobj(volume) or not np.all(np.isfinite(volume)):
        raise ValueError(f"reconstruction gave an unusable volume (shape {volume.shape}, dtype {volume.dtype})")
    header = plain_value(header)
    header = header if isinstance(header, str) else None
    volume = volume.astype(np.float32)
    _write(dst, fmt, volume, header, dict(attrs or {}), src, keep_identity=keep_identity, enhanced=enhanced)
    return dst


def ismrmrd_to_h5_file(src: str | Path, dst: str | Path, *, keep_identity: bool = False) -> Path:
    """ISMRMRD raw data -> a fastMRI-layout k-space file ``dst``: ``kspace`` [S,C,H,W], the header,
    ``reconstruction_rss`` when fully sampled, else ``mask``. Without ``keep_identity`` the header loses
    its identifying fields and the source name is not recorded."""
    from mrirecon.io.ismrmrd_raw import read_ismrmrd

    src = Path(src)
    volume = read_ismrmrd(src)
    header = volume.header_xml if keep_identity else deid.strip_ismrmrd_identity(volume.header_xml)
    attrs = {"acquisition": "ISMRMRD", **volume.attrs}
    attrs = {**attrs, "source_file": src.name} if keep_identity else public_attrs(attrs)
    if volume.target is not None:
        attrs["max"] = float(volume.target.max())
    datasets = {
        "kspace": volume.kspace,
        "ismrmrd_header": header,
        "reconstruction_rss": volume.target,
        "mask": None if volume.mask is None else volume.mask.astype(np.float32),
    }
    return write_h5(dst, datasets, attrs)


def _dicom_patient_key(ds: Any, series_uid: str) -> str:
    """What identifies the patient of a DICOM file (issuer + ID; the series when there is no ID)."""
    pid = str(ds.get("PatientID", "") or "")
    if not pid:
        return f"series:{series_uid}"
    return f"patient:{ds.get('IssuerOfPatientID', '') or ''}:{pid}"


def dicom_series_to_h5(files: Sequence[str | Path], dst: str | Path, *, keep_identity: bool = False) -> Path:
    """Convert the files of one DICOM series to the HDF5 file ``dst`` (replaced if it exists):
    ``reconstruction`` float32 [S,H,W] sorted along the slice normal, geometry, scale and UIDs as
    attributes; identity only with ``keep_identity`` (else a keyed pseudonymous ``patient_id``)."""
    import pydicom

    from mrirecon.io.dicom import load_series
    from mrirecon.io.dicom.header import PATIENT_ATTRIBUTES

    series = load_series(files)
    first = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    source = (series.series_uid, series.study_uid, series.frame_of_reference_uid)
    if keep_identity:
        uids = source
    else:  # basic profile: replace UIDs (keyed, so every series of a study still shares one study UID)
        uids = tuple(
            str(deid.keyed_uid(kind, uid)) if uid else "" for kind, uid in zip(("series", "study", "frame"), source)
        )
    a: dict[str, Any] = {"max": float(series.volume.max())}
    a["geometry_source"] = "dicom" if series.geometry is not None else "none"
    optional = {
        "pixel_spacing": series.pixel_spacing,
        "slice_thickness": series.slice_thickness,
        "slice_spacing": series.slice_spacing,
        "image_orientation_patient": series.orientation,
        "image_position_patient": series.positions,
    }
    a.update({k: np.asarray(v, dtype=np.float64) for k, v in optional.items() if v is not None})
    for name, values in (("scale_slope", series.slope), ("scale_intercept", series.intercept)):
        a[name] = float(values[0]) if np.all(values == values[0]) else np.asarray(values)
    a["series_instance_uid"], a["study_instance_uid"], a["frame_of_reference_uid"] = uids
    a["sop_class_uid"] = series.sop_class_uid
    a["modality"] = series.modality
    if keep_identity:
        a["series_description"] = series.series_description
        a.update({attr: str(first.get(keyword, "")) for attr, keyword in PATIENT_ATTRIBUTES.items()})
    else:
        a["patient_id"] = deid.pseudonym(_dicom_patient_key(first, series.series_uid))
    return write_h5(dst, {"reconstruction": series.volume}, a)
