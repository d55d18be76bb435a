"""What a DICOM series is written with: its patient geometry, its MR acquisition attributes and the
patient/study identity, read from an ISMRMRD XML header when there is one.

Geometry (:class:`Geometry`): from the ISMRMRD header when there is one (``reconSpace`` field of view /
matrix size gives the pixel spacing, its z field of view the slice thickness, falling back to
``encodedSpace``); otherwise the documented default: 1 mm x 1 mm pixels, 5 mm contiguous slices, axial
orientation, volume centred on the scanner origin.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "DEFAULT_GEOMETRY",
    "PATIENT_ATTRIBUTES",
    "Acquisition",
    "Geometry",
    "acquisition_from_ismrmrd",
    "geometry_from_h5",
    "geometry_from_ismrmrd",
    "identity_from_h5",
    "identity_from_ismrmrd",
]

# HDF5 attribute -> DICOM keyword of the patient identity an HDF5 volume may carry (with --keep-identity)
PATIENT_ATTRIBUTES = {
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
}


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


def geometry_from_h5(header_xml: str | None, attrs: dict) -> Geometry:
    """Geometry from the attributes of an HDF5 volume (``dicom-to-h5`` output, ISMRMRD raw geometry) when
    present, else from the ISMRMRD header or the default; malformed attributes are ignored."""
    geometry = geometry_from_ismrmrd(header_xml)
    if "pixel_spacing" not in attrs:
        return geometry
    try:
        ps = np.asarray(attrs["pixel_spacing"], dtype=np.float64).ravel()
        orientation = np.asarray(attrs.get("image_orientation_patient", geometry.orientation), dtype=np.float64)
        origin = attrs.get("image_position_patient")
        return Geometry(
            pixel_spacing=(float(ps[0]), float(ps[1])),
            slice_thickness=float(attrs.get("slice_thickness", geometry.slice_thickness)),
            slice_spacing=float(attrs["slice_spacing"]) if "slice_spacing" in attrs else None,
            orientation=tuple(float(v) for v in orientation.ravel()[:6]),  # type: ignore[arg-type]
            origin=None
            if origin is None
            else tuple(float(v) for v in np.asarray(origin, dtype=np.float64).reshape(-1, 3)[0]),  # type: ignore[arg-type]
        )
    except (ValueError, TypeError, IndexError, KeyError):
        return geometry


def identity_from_h5(header_xml: str | None, attrs: dict) -> dict[str, str]:
    """:func:`identity_from_ismrmrd`, overridden by the ``patient_*`` attributes of an HDF5 volume."""
    ident = identity_from_ismrmrd(header_xml)
    for attr, keyword in PATIENT_ATTRIBUTES.items():
        if attrs.get(attr) not in (None, ""):
            ident[keyword] = str(attrs[attr])
    return ident
