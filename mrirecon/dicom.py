"""DICOM export and import of magnitude image volumes.

Writing: a float volume ``[S, H, W]`` becomes one single-frame **MR Image Storage** series
(Explicit VR Little Endian, 16-bit unsigned, MONOCHROME2), or one Legacy Converted Enhanced MR
object (via highdicom).

Scaling (one per series): ``value = stored * slope + intercept`` with ``intercept = min(0, vmin)``
and ``slope = (vmax - intercept) / 65535``, so the whole range is kept (no clipping) and the
error is at most ``slope / 2``. The MR Image IOD has no Modality LUT, so the pair is stored

- in the standard Real World Value Mapping Sequence (0040,9096) of each image,
- in the private block ``"MRIRECON 1.0"`` of group 0x0011 (elements xx10 slope, xx11 intercept,
  both FD), and
- as text in ImageComments.

Window centre/width are computed from percentiles of the stored values of the whole series.

Geometry (:class:`Geometry`): from the ISMRMRD header when there is one (``reconSpace`` field of
view / matrix size gives the pixel spacing, its z field of view the slice thickness, falling back
to ``encodedSpace``); otherwise the documented default: 1 mm x 1 mm pixels, 5 mm contiguous slices,
axial orientation, volume centred on the scanner origin.

Reading: :func:`read_series` groups files by SeriesInstanceUID, checks that a series is
consistent (size, orientation, spacing, positions) and sorts slices along the slice normal.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import set_pixel_data
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from mrirecon import deid

__all__ = [
    "DEFAULT_GEOMETRY",
    "PRIVATE_CREATOR",
    "Acquisition",
    "DicomInputError",
    "Geometry",
    "Series",
    "acquisition_from_ismrmrd",
    "geometry_from_ismrmrd",
    "identity_from_ismrmrd",
    "load_series",
    "pseudonym",
    "quantise",
    "read_series",
    "scan_folder",
    "write_enhanced",
    "write_series",
]

PRIVATE_CREATOR = "MRIRECON 1.0"
DEIDENTIFIED_DESCRIPTION = "mrirecon reconstruction"  # replaces free-text descriptions when pseudonymising
PRIVATE_GROUP = 0x0011
_SLOPE_ELEM = 0x10
_INTERCEPT_ELEM = 0x11
_STORED_MAX = 65535
_BITS = 16
_ENHANCED_MR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
}


class DicomInputError(ValueError):
    """A DICOM input that cannot be converted (the message says why)."""


# --------------------------------------------------------------------------------------------
# Geometry and acquisition parameters


@dataclass(frozen=True)
class Geometry:
    """Patient-space geometry of a volume ``[S, H, W]`` (all lengths in mm).

    ``pixel_spacing`` is in DICOM order (between rows, between columns). ``origin`` is the centre
    of the first (top-left) pixel of the first slice; ``None`` centres the volume on (0, 0, 0).
    ``slice_spacing`` is the centre-to-centre distance; ``None`` means ``slice_thickness``.
    """

    pixel_spacing: tuple[float, float] = (1.0, 1.0)
    slice_thickness: float = 5.0
    slice_spacing: float | None = None
    orientation: tuple[float, float, float, float, float, float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    origin: tuple[float, float, float] | None = None

    @property
    def spacing_between_slices(self) -> float:
        """Centre-to-centre slice distance in mm."""
        return float(self.slice_spacing if self.slice_spacing is not None else self.slice_thickness)

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal (row direction x column direction)."""
        o = np.asarray(self.orientation, dtype=np.float64)
        n = np.cross(o[:3], o[3:])
        return n / np.linalg.norm(n)

    def positions(self, shape: Sequence[int]) -> np.ndarray:
        """ImagePositionPatient of every slice of a volume of ``shape`` ``[S, H, W]``: ``[S, 3]``."""
        s, h, w = (int(v) for v in shape)
        o = np.asarray(self.orientation, dtype=np.float64)
        row_dir, col_dir = o[:3], o[3:]
        dr, dc = self.pixel_spacing
        step = self.spacing_between_slices * self.normal
        if self.origin is None:
            first = -((w - 1) / 2 * dc * row_dir + (h - 1) / 2 * dr * col_dir + (s - 1) / 2 * step)
        else:
            first = np.asarray(self.origin, dtype=np.float64)
        return first[None, :] + np.arange(s)[:, None] * step[None, :]


DEFAULT_GEOMETRY = Geometry()


@dataclass(frozen=True)
class Acquisition:
    """MR acquisition attributes written into the MR Image module (``None`` = unknown, left empty)."""

    manufacturer: str = "mrirecon"
    model: str | None = None
    field_strength_t: float | None = None
    repetition_time_ms: float | None = None
    echo_time_ms: float | None = None
    inversion_time_ms: float | None = None
    flip_angle_deg: float | None = None
    echo_train_length: int | None = None
    sequence_type: str | None = None
    mr_acquisition_type: str = "2D"
    patient_position: str = "HFS"
    protocol_name: str | None = None

    @property
    def scanning_sequence(self) -> list[str]:
        """ScanningSequence values derived from the ISMRMRD ``sequence_type`` (RM when unknown)."""
        seq = (self.sequence_type or "").lower()
        out = []
        if "spinecho" in seq.replace(" ", "").replace("_", "") or seq in {"se", "tse", "fse"}:
            out.append("SE")
        if "gradient" in seq or "flash" in seq or seq in {"gre", "gr"}:
            out.append("GR")
        if "epi" in seq or "echoplanar" in seq:
            out.append("EP")
        if "inversion" in seq or self.inversion_time_ms:
            out.append("IR")
        return out or ["RM"]


def _strip_ns(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_text(root: ET.Element, path: Sequence[str]) -> str | None:
    """Text of the first element reached by the nested tag ``path`` (namespace-agnostic), or None."""
    nodes = [root]
    for name in path:
        nxt = []
        for node in nodes:
            nxt.extend(el for el in node.iter() if el is not node and _strip_ns(el.tag) == name)
        if not nxt:
            return None
        nodes = nxt
    text = nodes[0].text
    return text.strip() if text and text.strip() else None


def _xml_float(root: ET.Element, path: Sequence[str]) -> float | None:
    text = _xml_text(root, path)
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _parse_header(header_xml: str | bytes | None) -> ET.Element | None:
    if header_xml is None:
        return None
    if isinstance(header_xml, bytes | np.bytes_):
        header_xml = bytes(header_xml).decode("utf-8", errors="replace")
    try:
        return ET.fromstring(str(header_xml).strip())
    except ET.ParseError:
        return None


def geometry_from_ismrmrd(header_xml: str | bytes | None, default: Geometry = DEFAULT_GEOMETRY) -> Geometry:
    """Geometry from an ISMRMRD XML header (fields missing or unparsable fall back to ``default``).

    Pixel spacing = ``reconSpace`` fieldOfView_mm / matrixSize (x: columns, y: rows); slice
    thickness = reconSpace fieldOfView_mm z (encodedSpace when reconSpace has none). Orientation
    and position are not in the XML header (they live in the acquisitions), so they stay default.
    """
    root = _parse_header(header_xml)
    if root is None:
        return default
    dr, dc = default.pixel_spacing
    thickness = default.slice_thickness
    for space in ("reconSpace", "encodedSpace"):
        fx = _xml_float(root, ["encoding", space, "fieldOfView_mm", "x"])
        fy = _xml_float(root, ["encoding", space, "fieldOfView_mm", "y"])
        mx = _xml_float(root, ["encoding", space, "matrixSize", "x"])
        my = _xml_float(root, ["encoding", space, "matrixSize", "y"])
        if fx and fy and mx and my and fx > 0 and fy > 0 and mx > 0 and my > 0:
            dr, dc = fy / my, fx / mx
            break
    for space in ("reconSpace", "encodedSpace"):
        fz = _xml_float(root, ["encoding", space, "fieldOfView_mm", "z"])
        if fz and fz > 0:
            thickness = fz
            break
    return replace(default, pixel_spacing=(float(dr), float(dc)), slice_thickness=float(thickness))


def acquisition_from_ismrmrd(header_xml: str | bytes | None) -> Acquisition:
    """Sequence and system parameters from an ISMRMRD XML header (unknown ones stay None)."""
    root = _parse_header(header_xml)
    if root is None:
        return Acquisition()
    etl = _xml_float(root, ["encoding", "echoTrainLength"])
    mz = _xml_float(root, ["encoding", "encodedSpace", "matrixSize", "z"])
    return Acquisition(
        manufacturer=_xml_text(root, ["acquisitionSystemInformation", "systemVendor"]) or "mrirecon",
        model=_xml_text(root, ["acquisitionSystemInformation", "systemModel"]),
        field_strength_t=_xml_float(root, ["acquisitionSystemInformation", "systemFieldStrength_T"]),
        repetition_time_ms=_xml_float(root, ["sequenceParameters", "TR"]),
        echo_time_ms=_xml_float(root, ["sequenceParameters", "TE"]),
        inversion_time_ms=_xml_float(root, ["sequenceParameters", "TI"]),
        flip_angle_deg=_xml_float(root, ["sequenceParameters", "flipAngle_deg"]),
        echo_train_length=int(etl) if etl else None,
        sequence_type=_xml_text(root, ["sequenceParameters", "sequence_type"]),
        mr_acquisition_type="3D" if mz and mz > 1 else "2D",
        patient_position=_xml_text(root, ["measurementInformation", "patientPosition"]) or "HFS",
        protocol_name=_xml_text(root, ["measurementInformation", "protocolName"]),
    )


def identity_from_ismrmrd(header_xml: str | bytes | None) -> dict[str, str]:
    """Patient/study identity found in an ISMRMRD header (keys: DICOM keywords; only those present)."""
    root = _parse_header(header_xml)
    if root is None:
        return {}
    mapping = {
        "PatientName": ["subjectInformation", "patientName"],
        "PatientID": ["subjectInformation", "patientID"],
        "PatientBirthDate": ["subjectInformation", "patientBirthdate"],
        "PatientSex": ["subjectInformation", "patientGender"],
        "StudyDate": ["studyInformation", "studyDate"],
        "StudyTime": ["studyInformation", "studyTime"],
        "StudyID": ["studyInformation", "studyID"],
        "AccessionNumber": ["studyInformation", "accessionNumber"],
        "StudyInstanceUID": ["studyInformation", "studyInstanceUID"],
        "StudyDescription": ["studyInformation", "studyDescription"],
        "FrameOfReferenceUID": ["measurementInformation", "frameOfReferenceUID"],
    }
    out = {}
    for key, path in mapping.items():
        value = _xml_text(root, path)
        if value:
            out[key] = value
    if "PatientBirthDate" in out:
        out["PatientBirthDate"] = out["PatientBirthDate"].replace("-", "")[:8]
    if "StudyDate" in out:
        out["StudyDate"] = out["StudyDate"].replace("-", "")[:8]
    if "StudyTime" in out:
        out["StudyTime"] = out["StudyTime"].replace(":", "").split(".")[0][:6]
    if out.get("PatientSex"):
        out["PatientSex"] = {"M": "M", "F": "F", "O": "O"}.get(out["PatientSex"][:1].upper(), "O")
    return out


def pseudonym(*key: str | bytes) -> str:
    """A stable pseudonym (``ANON-`` + 16 hex digits): HMAC of ``key`` (e.g. a PatientID) under the
    installation secret (:mod:`mrirecon.deid`), so it cannot be reversed by hashing guesses."""
    return deid.pseudonym(*(k.decode("utf-8", "replace") if isinstance(k, bytes) else k for k in key))


# --------------------------------------------------------------------------------------------
# Writing


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


@dataclass
class _SeriesIds:
    study_uid: str
    series_uid: str
    frame_uid: str


def _build_slices(
    volume: np.ndarray,
    *,
    geometry: Geometry,
    acquisition: Acquisition,
    series_description: str,
    patient_name: str | None,
    patient_id: str | None,
    pseudonymise: bool,
    pseudonym_key: str | None,
    uid_key: str | None,
    identity: dict[str, str] | None,
    study_uid: str | None,
    series_uid: str | None,
    frame_of_reference_uid: str | None,
    series_number: int,
) -> list[Dataset]:
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
        name = patient_name if patient_name is not None else ident.get("PatientName", "")
        pid = patient_id if patient_id is not None else ident.get("PatientID", "")
    ids = _SeriesIds(
        study_uid=study_uid
        or (ident.get("StudyInstanceUID") if not pseudonymise else None)
        or _uid(ukey, digest, "study"),
        series_uid=series_uid or _uid(ukey, digest, series_description, "series"),
        frame_uid=frame_of_reference_uid
        or (ident.get("FrameOfReferenceUID") if not pseudonymise else None)
        or _uid(ukey, digest, "frame"),
    )
    now = _dt.datetime.now()
    content_date, content_time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    positions = geometry.positions(vol.shape)
    normal = geometry.normal
    rwvm = _rwvm_item(slope, intercept)
    comment = f"mrirecon: value = stored * {slope!r} + {intercept!r}"

    out = []
    for k in range(vol.shape[0]):
        ds = Dataset()
        sop_uid = _uid(ids.series_uid, k, "instance")
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
        ds.StudyInstanceUID = ids.study_uid
        ds.StudyDate = ident.get("StudyDate", "")
        ds.StudyTime = ident.get("StudyTime", "")
        ds.ReferringPhysicianName = ""
        ds.StudyID = ident.get("StudyID", "") or digest[:8].upper()
        ds.AccessionNumber = ident.get("AccessionNumber", "")
        if ident.get("StudyDescription"):
            ds.StudyDescription = ident["StudyDescription"]
        # General series
        ds.Modality = "MR"
        ds.SeriesInstanceUID = ids.series_uid
        ds.SeriesNumber = series_number
        ds.SeriesDescription = (DEIDENTIFIED_DESCRIPTION if pseudonymise else series_description)[:64]
        ds.PatientPosition = acquisition.patient_position
        ds.Laterality = ""
        if acquisition.protocol_name and not pseudonymise:  # free text: often holds names
            ds.ProtocolName = acquisition.protocol_name[:64]
        # Frame of reference
        ds.FrameOfReferenceUID = ids.frame_uid
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
        block.add_new(_SLOPE_ELEM, "FD", float(slope))
        block.add_new(_INTERCEPT_ELEM, "FD", float(intercept))
        # Image pixel
        set_pixel_data(ds, stored[k], "MONOCHROME2", _BITS, generate_instance_uid=False)
        out.append(ds)
    return out


def write_series(
    volume: np.ndarray,
    out_dir: str | Path,
    *,
    geometry: Geometry = DEFAULT_GEOMETRY,
    acquisition: Acquisition | None = None,
    series_description: str = "mrirecon reconstruction",
    patient_name: str | None = None,
    patient_id: str | None = None,
    pseudonymise: bool = True,
    pseudonym_key: str | None = None,
    uid_key: str | None = None,
    identity: dict[str, str] | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_number: int = 1,
) -> list[Path]:
    """Write ``volume`` ``[S, H, W]`` as single-frame MR images ``IM00001.dcm``... into ``out_dir``.

    With ``pseudonymise`` (default) patient name and ID are ``pseudonym(pseudonym_key)`` (the
    volume's hash when no key is given), birth date, sex and study date are left empty, and
    ``identity``/``patient_*`` are ignored. UIDs not given are derived deterministically from
    ``uid_key`` (default: the pseudonym key) and the data. Returns the written paths in slice order.
    """
    slices = _build_slices(
        volume,
        geometry=geometry,
        acquisition=acquisition or Acquisition(),
        series_description=series_description,
        patient_name=patient_name,
        patient_id=patient_id,
        pseudonymise=pseudonymise,
        pseudonym_key=pseudonym_key,
        uid_key=uid_key,
        identity=identity,
        study_uid=study_uid,
        series_uid=series_uid,
        frame_of_reference_uid=frame_of_reference_uid,
        series_number=series_number,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, ds in enumerate(slices):
        path = out / f"IM{k + 1:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced(
    volume: np.ndarray,
    out_path: str | Path,
    *,
    geometry: Geometry = DEFAULT_GEOMETRY,
    acquisition: Acquisition | None = None,
    series_description: str = "mrirecon reconstruction",
    patient_name: str | None = None,
    patient_id: str | None = None,
    pseudonymise: bool = True,
    pseudonym_key: str | None = None,
    uid_key: str | None = None,
    identity: dict[str, str] | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_number: int = 1,
) -> Path:
    """Write ``volume`` as one multi-frame Legacy Converted Enhanced MR object (highdicom).

    The arguments mean what they mean in :func:`write_series`; the frames are the single-frame
    images that :func:`write_series` would have written.
    """
    import highdicom as hd

    slices = _build_slices(
        volume,
        geometry=geometry,
        acquisition=acquisition or Acquisition(),
        series_description=series_description,
        patient_name=patient_name,
        patient_id=patient_id,
        pseudonymise=pseudonymise,
        pseudonym_key=pseudonym_key,
        uid_key=uid_key,
        identity=identity,
        study_uid=study_uid,
        series_uid=series_uid,
        frame_of_reference_uid=frame_of_reference_uid,
        series_number=series_number,
    )
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        legacy_datasets=slices,
        series_instance_uid=slices[0].SeriesInstanceUID,
        series_number=series_number,
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


# --------------------------------------------------------------------------------------------
# Reading


@dataclass
class Series:
    """One DICOM series as a float volume ``[S, H, W]`` in slice order, with its geometry."""

    series_uid: str
    files: list[Path]
    volume: np.ndarray
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    slice_spacing: float | None
    orientation: tuple[float, ...] | None
    positions: np.ndarray | None  # [S, 3]
    slope: np.ndarray  # [S]
    intercept: np.ndarray  # [S]
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    series_description: str = ""
    sop_class_uid: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def geometry(self) -> Geometry | None:
        """The series' :class:`Geometry` (None when the files carry no image plane attributes)."""
        if self.pixel_spacing is None or self.orientation is None or self.positions is None:
            return None
        return Geometry(
            pixel_spacing=self.pixel_spacing,
            slice_thickness=self.slice_thickness or self.slice_spacing or 1.0,
            slice_spacing=self.slice_spacing,
            orientation=tuple(self.orientation),  # type: ignore[arg-type]
            origin=tuple(float(v) for v in self.positions[0]),  # type: ignore[arg-type]
        )


def _value_mapping(ds: Dataset) -> tuple[float, float]:
    """(slope, intercept) of ``ds``: private block, then Real World Value Mapping, then Rescale."""
    try:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
        return float(block[_SLOPE_ELEM].value), float(block[_INTERCEPT_ELEM].value)
    except (KeyError, ValueError, TypeError):
        pass
    seq = ds.get("RealWorldValueMappingSequence")
    if seq:
        item = seq[0]
        if "RealWorldValueSlope" in item:
            return float(item.RealWorldValueSlope), float(item.get("RealWorldValueIntercept", 0.0))
    if "RescaleSlope" in ds:
        return float(ds.RescaleSlope), float(ds.get("RescaleIntercept", 0.0) or 0.0)
    return 1.0, 0.0


def scan_folder(folder: str | Path) -> tuple[dict[str, list[Path]], list[tuple[Path, str]]]:
    """Find DICOM images under ``folder`` (recursively) and group them by SeriesInstanceUID.

    Returns ``(groups, problems)``: ``problems`` lists files that are not readable DICOM images,
    each with a one-line reason. Hidden files and folders (names starting with ".", e.g. unfinished
    temporary outputs) and DICOMDIR are ignored. ``folder`` may also be a single file.
    """
    groups: dict[str, list[Path]] = {}
    problems: list[tuple[Path, str]] = []
    root = Path(folder)
    candidates = [root] if root.is_file() else sorted(root.rglob("*"))
    for path in candidates:
        rel = path.relative_to(root).parts if path != root else (path.name,)
        if not path.is_file() or any(p.startswith(".") for p in rel) or path.name.upper() == "DICOMDIR":
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises several types for garbage input
            problems.append((path, f"not a DICOM file ({type(exc).__name__}: {exc})"))
            continue
        if "Rows" not in ds or "SeriesInstanceUID" not in ds:
            problems.append((path, "DICOM file without an image or without SeriesInstanceUID"))
            continue
        groups.setdefault(str(ds.SeriesInstanceUID), []).append(path)
    return groups, problems


def _describe_counts(counter: Counter) -> str:
    return ", ".join(f"{k} ({n} file{'s' if n != 1 else ''})" for k, n in counter.most_common())


def _load_multiframe(path: Path, ds: Dataset) -> Series:
    frames = np.asarray(ds.pixel_array)
    if frames.ndim == 2:
        frames = frames[None]
    nf = frames.shape[0]
    shared = ds.get("SharedFunctionalGroupsSequence", [Dataset()])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", [])

    def group(i: int, name: str) -> Dataset | None:
        for source in ((per_frame[i] if i < len(per_frame) else Dataset()), shared):
            if name in source and len(source[name].value):
                return source[name].value[0]
        return None

    pos, slopes, intercepts = [], [], []
    for i in range(nf):
        pp = group(i, "PlanePositionSequence")
        pos.append([float(v) for v in pp.ImagePositionPatient] if pp is not None else None)
        slope, intercept = 1.0, 0.0
        rw = group(i, "RealWorldValueMappingSequence")
        pvt = group(i, "PixelValueTransformationSequence")
        if rw is not None and "RealWorldValueSlope" in rw:
            slope, intercept = float(rw.RealWorldValueSlope), float(rw.get("RealWorldValueIntercept", 0.0))
        elif pvt is not None and "RescaleSlope" in pvt:
            slope, intercept = float(pvt.RescaleSlope), float(pvt.get("RescaleIntercept", 0.0))
        slopes.append(slope)
        intercepts.append(intercept)
    po = group(0, "PlaneOrientationSequence")
    pm = group(0, "PixelMeasuresSequence")
    orientation = tuple(float(v) for v in po.ImageOrientationPatient) if po is not None else None
    spacing = tuple(float(v) for v in pm.PixelSpacing) if pm is not None and "PixelSpacing" in pm else None
    thickness = float(pm.SliceThickness) if pm is not None and pm.get("SliceThickness") else None
    positions = np.asarray(pos, dtype=np.float64) if all(p is not None for p in pos) else None
    return _assemble(
        uid=str(ds.SeriesInstanceUID),
        files=[path],
        frames=list(frames),
        slopes=slopes,
        intercepts=intercepts,
        orientation=orientation,
        spacing=spacing,  # type: ignore[arg-type]
        thickness=thickness,
        positions=positions,
        instance_numbers=list(range(1, nf + 1)),
        first=ds,
    )


def _assemble(
    *,
    uid: str,
    files: list[Path],
    frames: list[np.ndarray],
    slopes: list[float],
    intercepts: list[float],
    orientation: tuple[float, ...] | None,
    spacing: tuple[float, float] | None,
    thickness: float | None,
    positions: np.ndarray | None,
    instance_numbers: list[int],
    first: Dataset,
) -> Series:
    n = len(frames)
    if positions is not None and orientation is not None:
        o = np.asarray(orientation)
        normal = np.cross(o[:3], o[3:])
        normal /= np.linalg.norm(normal)
        dist = positions @ normal
        order = np.argsort(dist, kind="stable")
        sorted_dist = dist[order]
        gaps = np.diff(sorted_dist)
        if n > 1 and np.any(gaps < 1e-3):
            raise DicomInputError(
                f"series {uid}: several images share one slice position (multi-echo or repeated slices?)"
            )
        if n > 2 and (gaps.max() - gaps.min()) > max(1e-2, 0.01 * float(np.median(gaps))):
            raise DicomInputError(
                f"series {uid}: uneven slice spacing ({gaps.min():.4g} to {gaps.max():.4g} mm; missing slices?)"
            )
        slice_spacing = float(np.median(gaps)) if n > 1 else None
    else:
        order = np.argsort(np.asarray(instance_numbers), kind="stable")
        slice_spacing = None
    vol = np.stack([frames[i].astype(np.float64) * slopes[i] + intercepts[i] for i in order]).astype(np.float32)
    return Series(
        series_uid=uid,
        files=[files[i] for i in order] if len(files) == n else files,
        volume=vol,
        pixel_spacing=spacing,
        slice_thickness=thickness,
        slice_spacing=slice_spacing,
        orientation=orientation,
        positions=positions[order] if positions is not None and orientation is not None else None,
        slope=np.asarray(slopes, dtype=np.float64)[order],
        intercept=np.asarray(intercepts, dtype=np.float64)[order],
        study_uid=str(first.get("StudyInstanceUID", "")),
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
        series_description=str(first.get("SeriesDescription", "")),
        sop_class_uid=str(first.get("SOPClassUID", "")),
        attributes={
            k: str(first.get(k, ""))
            for k in ("Modality", "Manufacturer", "SeriesNumber", "PatientPosition", "ImageComments")
        },
    )


def _check_declared_size(paths: list[Path], datasets: list[Dataset]) -> None:
    """Refuse images whose declared size is above the input caps (:class:`mrirecon.data.Limits`) before any
    pixel data is decoded (compressed pixel data can declare far more than it stores). A frame is counted
    as float64 (how it is assembled), the volume as float32 (how it is written)."""
    from mrirecon.data.validate import Limits

    limits = Limits.from_env()
    total = 0
    for p, ds in zip(paths, datasets):
        try:
            pixels = int(ds.get("Rows", 0)) * int(ds.get("Columns", 0)) * int(ds.get("SamplesPerPixel", 1) or 1)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError) as exc:
            raise DicomInputError(f"{p}: unreadable image size attributes ({exc})") from exc
        if pixels * 8 > limits.max_slice_bytes:
            raise DicomInputError(
                f"{p}: a {ds.get('Rows')}x{ds.get('Columns')} image is above the per-slice limit of "
                f"{limits.max_slice_bytes} bytes (MRIRECON_MAX_SLICE_BYTES)"
            )
        total += pixels * frames * 4
    if total > limits.max_volume_bytes:
        raise DicomInputError(
            f"series declares {total} bytes of images, above the per-volume limit of "
            f"{limits.max_volume_bytes} bytes (MRIRECON_MAX_VOLUME_BYTES)"
        )


def load_series(files: Iterable[str | Path]) -> Series:
    """Read the files of one series, check they are consistent and sort them along the slice normal.

    Raises :class:`DicomInputError` naming the problem: mixed series UIDs, mixed image sizes, mixed
    orientation or pixel spacing, colour images, partial geometry, duplicate or unevenly spaced slices.
    """
    paths = [Path(p) for p in files]
    if not paths:
        raise DicomInputError("empty series")
    datasets = []
    for p in paths:
        try:
            datasets.append(pydicom.dcmread(p))
        except Exception as exc:
            raise DicomInputError(f"{p}: not a readable DICOM file ({exc})") from exc
    _check_declared_size(paths, datasets)
    uids = Counter(str(ds.get("SeriesInstanceUID", "")) for ds in datasets)
    if len(uids) != 1:
        raise DicomInputError(f"mixed series: {_describe_counts(uids)}")
    uid = next(iter(uids))
    multi = [
        ds for ds in datasets if int(ds.get("NumberOfFrames", 1) or 1) > 1 or ds.SOPClassUID in _ENHANCED_MR_CLASSES
    ]
    if multi:
        if len(datasets) != 1:
            raise DicomInputError(f"series {uid}: mixes a multi-frame object with other files")
        return _load_multiframe(paths[0], datasets[0])
    sizes = Counter(f"{ds.Rows}x{ds.Columns}" for ds in datasets)
    if len(sizes) != 1:
        raise DicomInputError(f"series {uid}: mixed image sizes {_describe_counts(sizes)}")
    if any(int(ds.get("SamplesPerPixel", 1)) != 1 for ds in datasets):
        raise DicomInputError(f"series {uid}: colour images are not supported (SamplesPerPixel != 1)")
    has_plane = ["ImagePositionPatient" in ds and "ImageOrientationPatient" in ds for ds in datasets]
    if any(has_plane) and not all(has_plane):
        raise DicomInputError(f"series {uid}: only some images carry ImagePositionPatient/ImageOrientationPatient")
    orientation = spacing = None
    positions = None
    if all(has_plane):
        orients = [np.asarray(ds.ImageOrientationPatient, dtype=np.float64) for ds in datasets]
        if any(np.abs(o - orients[0]).max() > 1e-4 for o in orients):
            raise DicomInputError(f"series {uid}: mixed image orientations")
        orientation = tuple(float(v) for v in orients[0])
        positions = np.asarray([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    if all("PixelSpacing" in ds for ds in datasets):
        sp = np.asarray([[float(v) for v in ds.PixelSpacing] for ds in datasets])
        if np.abs(sp - sp[0]).max() > 1e-4:
            raise DicomInputError(f"series {uid}: mixed pixel spacings")
        spacing = (float(sp[0, 0]), float(sp[0, 1]))
    thickness = float(datasets[0].SliceThickness) if datasets[0].get("SliceThickness") else None
    frames, slopes, intercepts = [], [], []
    for p, ds in zip(paths, datasets):
        try:
            frames.append(np.asarray(ds.pixel_array))
        except Exception as exc:
            raise DicomInputError(f"{p}: cannot decode pixel data ({exc})") from exc
        s, i = _value_mapping(ds)
        slopes.append(s)
        intercepts.append(i)
    return _assemble(
        uid=uid,
        files=paths,
        frames=frames,
        slopes=slopes,
        intercepts=intercepts,
        orientation=orientation,
        spacing=spacing,
        thickness=thickness,
        positions=positions,
        instance_numbers=[int(ds.get("InstanceNumber", 0) or 0) for ds in datasets],
        first=datasets[0],
    )


def read_series(folder: str | Path) -> list[Series]:
    """All series under ``folder`` (recursively), each validated and sorted by geometry.

    Raises :class:`DicomInputError` for the first unreadable file or inconsistent series.
    """
    groups, problems = scan_folder(folder)
    if problems:
        path, why = problems[0]
        raise DicomInputError(f"{path}: {why}")
    return [load_series(files) for _, files in sorted(groups.items())]
