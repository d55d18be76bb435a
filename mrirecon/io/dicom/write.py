"""Writing a magnitude volume ``[S, H, W]`` as DICOM: one single-frame **MR Image Storage** series
(Explicit VR Little Endian, 16-bit unsigned, MONOCHROME2), or one Legacy Converted Enhanced MR object
(built from those images by highdicom).

Scaling (one per series): ``value = stored * slope + intercept`` with ``intercept = min(0, vmin)`` and
``slope = (vmax - intercept) / 65535``, so the whole range is kept (no clipping) and the error is at
most ``slope / 2``. The MR Image IOD has no Modality LUT, so the pair is stored

- in the standard Real World Value Mapping Sequence (0040,9096) of each image (what readers apply),
- in the private block ``"MRIRECON 1.0"`` of group 0x0011 (elements xx10 slope, xx11 intercept, FD),
- as text in ImageComments.

Window centre/width are computed from percentiles of the stored values of the whole series.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import set_pixel_data
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

from mrirecon.io.deid import pseudonym
from mrirecon.io.dicom.header import DEFAULT_GEOMETRY, Acquisition, Geometry

__all__ = [
    "DEIDENTIFIED_DESCRIPTION",
    "PRIVATE_CREATOR",
    "PRIVATE_GROUP",
    "build_slices",
    "quantise",
    "write_enhanced",
    "write_series",
]

PRIVATE_CREATOR = "MRIRECON 1.0"
PRIVATE_GROUP = 0x0011
SLOPE_ELEMENT = 0x10
INTERCEPT_ELEMENT = 0x11
DEIDENTIFIED_DESCRIPTION = "mrirecon reconstruction"  # replaces free-text descriptions when pseudonymising
_STORED_MAX = 65535
_BITS = 16


def quantise(volume: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Map a real volume to uint16 with one (slope, intercept) so that ``v ~ stored*slope+intercept``."""
    vol = np.asarray(volume, dtype=np.float64)
    if vol.size == 0 or not np.all(np.isfinite(vol)):
        raise ValueError("volume is empty or holds NaN/Inf values")
    intercept = min(0.0, float(vol.min()))
    span = float(vol.max()) - intercept
    slope = span / _STORED_MAX if span > 0 else 1.0
    stored = np.clip(np.rint((vol - intercept) / slope), 0, _STORED_MAX).astype(np.uint16)
    return stored, slope, intercept


def _window(stored: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(stored, [1.0, 99.5])
    if hi <= lo:
        lo, hi = float(stored.min()), float(stored.max())
    width = max(float(hi - lo), 1.0)
    return float(lo + width / 2), width


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def _rwvm_item(slope: float, intercept: float) -> Dataset:
    item = Dataset()
    item.RealWorldValueFirstValueMapped = 0
    item.RealWorldValueLastValueMapped = _STORED_MAX
    item.RealWorldValueIntercept = float(intercept)
    item.RealWorldValueSlope = float(slope)
    item.LUTExplanation = "reconstructed magnitude (arbitrary units)"
    item.LUTLabel = "MAGNITUDE"
    unit = Dataset()
    unit.CodeValue = "1"
    unit.CodingSchemeDesignator = "UCUM"
    unit.CodeMeaning = "no units"
    item.MeasurementUnitsCodeSequence = [unit]
    return item


def _basic_profile_code() -> Dataset:
    item = Dataset()
    item.CodeValue = "113100"
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = "Basic Application Confidentiality Profile"
    return item


def _uid(*parts: object) -> UID:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def build_slices(
    volume: np.ndarray,
    *,
    geometry: Geometry = DEFAULT_GEOMETRY,
    acquisition: Acquisition | None = None,
    series_description: str = DEIDENTIFIED_DESCRIPTION,
    pseudonymise: bool = True,
    pseudonym_key: str | None = None,
    uid_key: str | None = None,
    identity: dict[str, str] | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
) -> list[Dataset]:
    """The single-frame MR Image datasets of ``volume`` [S,H,W], in slice order.

    With ``pseudonymise`` (default) patient name and ID are ``pseudonym(pseudonym_key)`` (the volume's
    hash when no key is given), birth date, sex and study date are left empty, and ``identity`` is
    ignored. UIDs not given are derived deterministically from ``uid_key`` (default: the pseudonym key)
    and the data.
    """
    acquisition = acquisition or Acquisition()
    vol = np.asarray(volume)
    if vol.ndim != 3 or min(vol.shape) < 1:
        raise ValueError(f"volume must be [slices, height, width], got shape {vol.shape}")
    if np.iscomplexobj(vol):
        raise ValueError("volume is complex; write the magnitude")
    stored, slope, intercept = quantise(vol)
    centre, width = _window(stored)
    digest = hashlib.sha256(np.ascontiguousarray(vol, dtype=np.float32).tobytes()).hexdigest()
    key = pseudonym_key if pseudonym_key is not None else digest
    ukey = uid_key if uid_key is not None else key
    ident = dict(identity or {})
    if pseudonymise:
        pid = pseudonym(key)
        name = pid + "^"  # one-component person name, caret makes that explicit
        ident = {}
    else:
        name, pid = ident.get("PatientName", ""), ident.get("PatientID", "")
    study_uid = study_uid or ident.get("StudyInstanceUID") or _uid(ukey, digest, "study")
    series_uid = series_uid or _uid(ukey, digest, series_description, "series")
    frame_uid = frame_of_reference_uid or ident.get("FrameOfReferenceUID") or _uid(ukey, digest, "frame")
    now = _dt.datetime.now()
    content_date, content_time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    positions = geometry.positions(vol.shape)
    normal = geometry.normal
    rwvm = _rwvm_item(slope, intercept)
    comment = f"mrirecon: value = stored * {slope!r} + {intercept!r}"

    out = []
    for k in range(vol.shape[0]):
        ds = Dataset()
        sop_uid = _uid(series_uid, k, "instance")
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 192"
        # SOP common
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.InstanceCreationDate, ds.InstanceCreationTime = content_date, content_time
        # Patient
        ds.PatientName = name
        ds.PatientID = pid
        ds.PatientBirthDate = "" if pseudonymise else ident.get("PatientBirthDate", "")
        ds.PatientSex = "" if pseudonymise else ident.get("PatientSex", "")
        if pseudonymise:
            ds.PatientIdentityRemoved = "YES"
            ds.DeidentificationMethod = "PS3.15 basic profile; keyed pseudonym; new UIDs"
            ds.DeidentificationMethodCodeSequence = [_basic_profile_code()]
        # General study
        ds.StudyInstanceUID = study_uid
        ds.StudyDate = ident.get("StudyDate", "")
        ds.StudyTime = ident.get("StudyTime", "")
        ds.ReferringPhysicianName = ""
        ds.StudyID = ident.get("StudyID", "") or digest[:8].upper()
        ds.AccessionNumber = ident.get("AccessionNumber", "")
        if ident.get("StudyDescription"):
            ds.StudyDescription = ident["StudyDescription"]
        # General series
        ds.Modality = "MR"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 1
        ds.SeriesDescription = (DEIDENTIFIED_DESCRIPTION if pseudonymise else series_description)[:64]
        ds.PatientPosition = acquisition.patient_position
        ds.Laterality = ""
        if acquisition.protocol_name and not pseudonymise:  # free text: often holds names
            ds.ProtocolName = acquisition.protocol_name[:64]
        # Frame of reference
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        # General equipment
        ds.Manufacturer = acquisition.manufacturer
        if acquisition.model:
            ds.ManufacturerModelName = acquisition.model
        ds.SoftwareVersions = "mrirecon"
        # General image
        ds.InstanceNumber = k + 1
        ds.ContentDate, ds.ContentTime = content_date, content_time
        ds.ImageType = ["DERIVED", "PRIMARY", "OTHER"]
        ds.DerivationDescription = "reconstructed from undersampled k-space by mrirecon"
        ds.ImageComments = comment
        ds.BurnedInAnnotation = "NO"
        # Image plane
        ds.PixelSpacing = [_ds(v) for v in geometry.pixel_spacing]
        ds.ImageOrientationPatient = [_ds(v) for v in geometry.orientation]
        ds.ImagePositionPatient = [_ds(v) for v in positions[k]]
        ds.SliceThickness = _ds(geometry.slice_thickness)
        ds.SpacingBetweenSlices = _ds(geometry.spacing_between_slices)
        ds.SliceLocation = _ds(float(np.dot(positions[k], normal)))
        # MR image
        ds.ScanningSequence = acquisition.scanning_sequence
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = acquisition.mr_acquisition_type
        ds.RepetitionTime = _ds(acquisition.repetition_time_ms) if acquisition.repetition_time_ms else ""
        ds.EchoTime = _ds(acquisition.echo_time_ms) if acquisition.echo_time_ms else ""
        ds.EchoTrainLength = acquisition.echo_train_length if acquisition.echo_train_length else ""
        if "IR" in ds.ScanningSequence:
            ds.InversionTime = _ds(acquisition.inversion_time_ms) if acquisition.inversion_time_ms else ""
        if acquisition.flip_angle_deg:
            ds.FlipAngle = _ds(acquisition.flip_angle_deg)
        if acquisition.field_strength_t:
            ds.MagneticFieldStrength = _ds(acquisition.field_strength_t)
        # VOI LUT and value mapping
        ds.WindowCenter = _ds(centre)
        ds.WindowWidth = _ds(width)
        ds.RealWorldValueMappingSequence = [rwvm]
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
        block.add_new(SLOPE_ELEMENT, "FD", float(slope))
        block.add_new(INTERCEPT_ELEMENT, "FD", float(intercept))
        # Image pixel
        set_pixel_data(ds, stored[k], "MONOCHROME2", _BITS, generate_instance_uid=False)
        out.append(ds)
    return out


def write_series(volume: np.ndarray, out_dir: str | Path, **options) -> list[Path]:
    """Write ``volume`` ``[S, H, W]`` as single-frame MR images ``IM00001.dcm``... into ``out_dir``
    (``options``: those of :func:`build_slices`) -> the written paths in slice order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, ds in enumerate(build_slices(volume, **options)):
        path = out / f"IM{k + 1:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced(volume: np.ndarray, out_path: str | Path, **options) -> Path:
    """Write ``volume`` as one multi-frame Legacy Converted Enhanced MR object (highdicom) whose frames
    are the images :func:`write_series` would write with the same ``options``."""
    import highdicom as hd

    slices = build_slices(volume, **options)
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        legacy_datasets=slices,
        series_instance_uid=slices[0].SeriesInstanceUID,
        series_number=1,
        sop_instance_uid=_uid(slices[0].SeriesInstanceUID, "enhanced"),
        instance_number=1,
    )
    # The converted single-frame sources are never stored, so do not reference them as a series.
    if "ReferencedSeriesSequence" in enhanced:
        del enhanced.ReferencedSeriesSequence
    enhanced.Laterality = ""  # type 2C: unknown (highdicom drops the empty value)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    enhanced.save_as(out, enforce_file_format=True)
    return out
