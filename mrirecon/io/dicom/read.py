"""Reading DICOM series into float volumes ``[S, H, W]`` with their patient geometry (highdicom).

:func:`scan_folder` groups the images under a folder by SeriesInstanceUID; :func:`load_series` checks
one series (declared sizes against :class:`~mrirecon.data.Limits` before any pixel is decoded, one
image size, one orientation, one pixel spacing, grey-level images, all or no plane positions) and hands
it to highdicom, which sorts the slices, refuses irregular spacing, applies each image's Real World
Value Mapping (else its Modality LUT / rescale) and gives the :class:`highdicom.Volume`. Slices are
ordered along the normal ``row direction x column direction`` (highdicom's left-handed order).
A series without plane positions is stacked in InstanceNumber order and carries no geometry.
Every refusal is an :class:`~mrirecon.io.InputError` naming the file or the series folder.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from mrirecon.io.dicom.header import Geometry
from mrirecon.io.errors import InputError

__all__ = ["Series", "load_series", "read_series", "scan_folder"]

_ENHANCED_MR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
}


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
    modality: str = ""

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


def read_series(folder: str | Path) -> list[Series]:
    """All series under ``folder`` (recursively), each checked and sorted by geometry.

    Raises :class:`~mrirecon.io.InputError` for the first unreadable file or inconsistent series.
    """
    groups, problems = scan_folder(folder)
    if problems:
        raise InputError(*problems[0])
    return [load_series(files) for _, files in sorted(groups.items())]


def load_series(files: Iterable[str | Path]) -> Series:
    """Read the files of one series, check them and assemble the volume (see the module docstring).

    Raises :class:`~mrirecon.io.InputError` naming the problem: mixed series UIDs, mixed image sizes,
    orientations or pixel spacings, colour images, partial geometry, duplicate or unevenly spaced slices.
    """
    paths = [Path(p) for p in files]
    if not paths:
        raise ValueError("load_series needs at least one file")
    where = Path(os.path.commonpath([str(p.parent) for p in paths]))  # what a series problem names
    datasets = []
    for p in paths:
        try:
            datasets.append(pydicom.dcmread(p))
        except Exception as exc:  # pydicom raises several types for garbage input
            raise InputError(p, f"not a readable DICOM file ({exc})") from None
    _check_declared_size(where, paths, datasets)
    uids = Counter(str(ds.get("SeriesInstanceUID", "")) for ds in datasets)
    if len(uids) != 1:
        raise InputError(where, f"mixed series: {_describe_counts(uids)}")
    uid = next(iter(uids))
    if any(int(ds.get("NumberOfFrames", 1) or 1) > 1 or ds.SOPClassUID in _ENHANCED_MR_CLASSES for ds in datasets):
        if len(datasets) != 1:
            raise InputError(where, f"series {uid}: mixes a multi-frame object with other files")
        return _multiframe(paths[0], datasets[0])
    has_plane = _check_consistent(where, uid, datasets)
    if not has_plane:
        return _stacked(paths, datasets)
    import highdicom as hd

    try:
        volume = hd.get_volume_from_series(datasets, dtype=np.float64)
    except Exception as exc:  # highdicom and the pixel decoders raise several types
        raise InputError(where, f"series {uid}: {_spacing_problem(datasets) or exc}") from None
    return _from_volume(volume, paths, datasets)


def _multiframe(path: Path, ds: Dataset) -> Series:
    """An Enhanced or Legacy Converted Enhanced MR object -> its volume (highdicom)."""
    import highdicom as hd

    try:
        volume = hd.Image.from_dataset(ds, copy=False).get_volume(dtype=np.float64)
    except Exception as exc:  # highdicom and the pixel decoders raise several types
        raise InputError(path, f"multi-frame image is not one regularly spaced volume ({exc})") from None
    return _from_volume(volume, [path], [ds])


def _from_volume(volume, paths: list[Path], datasets: list[Dataset]) -> Series:
    """A :class:`Series` from highdicom's volume; ``datasets`` are the single-frame images (any order)
    or the one multi-frame object."""
    import highdicom as hd

    volume = volume.ensure_handedness(hd.AxisHandedness.LEFT_HANDED, flip_axis=0)
    n = volume.spatial_shape[0]
    _, down_rows, along_rows = volume.unit_vectors()
    positions = volume.map_indices_to_reference(np.stack([np.arange(n), np.zeros(n), np.zeros(n)], axis=1))
    first = datasets[0]
    if len(datasets) == n > 1:  # single-frame images: their slice index in the volume
        at = np.asarray([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
        order = np.argsort(volume.map_reference_to_indices(at)[:, 0], kind="stable")
    else:
        order = np.arange(len(datasets))
    mapping = [_value_mapping(ds) for ds in datasets]
    if len(datasets) != n:
        mapping = mapping * n
    slope, intercept = (np.asarray([mapping[i][j] for i in order], dtype=np.float64) for j in (0, 1))
    thickness = _thickness(first)
    return _series(
        first,
        files=[paths[i] for i in order] if len(paths) == n else paths,
        volume=np.asarray(volume.array, dtype=np.float32),
        pixel_spacing=tuple(float(v) for v in volume.pixel_spacing),
        slice_thickness=thickness,
        slice_spacing=float(volume.spacing_between_slices) if n > 1 else None,
        orientation=tuple(float(v) for v in np.concatenate([along_rows, down_rows])),
        positions=np.asarray(positions, dtype=np.float64),
        slope=slope,
        intercept=intercept,
    )


def _stacked(paths: list[Path], datasets: list[Dataset]) -> Series:
    """A series without plane positions: frames (value mapping applied by highdicom) in InstanceNumber order."""
    import highdicom as hd

    order = np.argsort([int(ds.get("InstanceNumber", 0) or 0) for ds in datasets], kind="stable")
    frames = []
    for i in order:
        try:
            frames.append(hd.Image.from_dataset(datasets[i], copy=False).get_frame(1, dtype=np.float64))
        except Exception as exc:  # decoders raise several types for broken pixel data
            raise InputError(paths[i], f"cannot decode pixel data ({exc})") from None
    spacing = datasets[0].get("PixelSpacing")
    mapping = [_value_mapping(datasets[i]) for i in order]
    return _series(
        datasets[0],
        files=[paths[i] for i in order],
        volume=np.stack(frames).astype(np.float32),
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
        slice_thickness=_thickness(datasets[0]),
        slice_spacing=None,
        orientation=None,
        positions=None,
        slope=np.asarray([m[0] for m in mapping]),
        intercept=np.asarray([m[1] for m in mapping]),
    )


def _series(first: Dataset, **fields) -> Series:
    return Series(
        series_uid=str(first.get("SeriesInstanceUID", "")),
        study_uid=str(first.get("StudyInstanceUID", "")),
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
        series_description=str(first.get("SeriesDescription", "")),
        sop_class_uid=str(first.get("SOPClassUID", "")),
        modality=str(first.get("Modality", "")),
        **fields,
    )


def _thickness(ds: Dataset) -> float | None:
    """SliceThickness of a single-frame image or of a multi-frame object's pixel measures."""
    if ds.get("SliceThickness"):
        return float(ds.SliceThickness)
    for group in ds.get("SharedFunctionalGroupsSequence", []):
        for measures in group.get("PixelMeasuresSequence", []):
            if measures.get("SliceThickness"):
                return float(measures.SliceThickness)
    return None


def _value_mapping(ds: Dataset) -> tuple[float, float]:
    """The (slope, intercept) highdicom applies to ``ds`` (its first frame): Real World Value Mapping,
    else Rescale; read for the record (``scale_slope`` attributes), not to compute values."""
    groups = [ds]
    for name in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        if ds.get(name):
            groups.append(ds[name][0])
    for group in groups:
        for item in group.get("RealWorldValueMappingSequence", [])[:1]:
            if "RealWorldValueSlope" in item:
                return float(item.RealWorldValueSlope), float(item.get("RealWorldValueIntercept", 0.0))
    for group in groups:
        for item in [group, *group.get("PixelValueTransformationSequence", [])[:1]]:
            if "RescaleSlope" in item:
                return float(item.RescaleSlope), float(item.get("RescaleIntercept", 0.0) or 0.0)
    return 1.0, 0.0


def _describe_counts(counter: Counter) -> str:
    return ", ".join(f"{k} ({n} file{'s' if n != 1 else ''})" for k, n in counter.most_common())


def _check_consistent(where: Path, uid: str, datasets: list[Dataset]) -> bool:
    """Refuse what highdicom would refuse without saying why; -> whether the images carry plane positions."""
    sizes = Counter(f"{ds.Rows}x{ds.Columns}" for ds in datasets)
    if len(sizes) != 1:
        raise InputError(where, f"series {uid}: mixed image sizes {_describe_counts(sizes)}")
    if any(int(ds.get("SamplesPerPixel", 1)) != 1 for ds in datasets):
        raise InputError(where, f"series {uid}: colour images are not supported (SamplesPerPixel != 1)")
    has_plane = ["ImagePositionPatient" in ds and "ImageOrientationPatient" in ds for ds in datasets]
    if any(has_plane) and not all(has_plane):
        raise InputError(where, f"series {uid}: only some images carry ImagePositionPatient/ImageOrientationPatient")
    if all(has_plane):
        orients = np.asarray([[float(v) for v in ds.ImageOrientationPatient] for ds in datasets])
        if np.abs(orients - orients[0]).max() > 1e-4:
            raise InputError(where, f"series {uid}: mixed image orientations")
    if all("PixelSpacing" in ds for ds in datasets):
        spacing = np.asarray([[float(v) for v in ds.PixelSpacing] for ds in datasets])
        if np.abs(spacing - spacing[0]).max() > 1e-4:
            raise InputError(where, f"series {uid}: mixed pixel spacings")
    return all(has_plane)


def _spacing_problem(datasets: list[Dataset]) -> str | None:
    """Why slice positions do not make a regular volume (duplicates, gaps), for the user; None if they do."""
    o = np.asarray([float(v) for v in datasets[0].ImageOrientationPatient])
    normal = np.cross(o[:3], o[3:])
    gaps = np.diff(np.sort([np.dot([float(v) for v in ds.ImagePositionPatient], normal) for ds in datasets]))
    if len(gaps) and gaps.min() < 1e-3:
        return "several images share one slice position (multi-echo or repeated slices?)"
    if len(gaps) > 1 and gaps.max() - gaps.min() > max(1e-2, 0.01 * float(np.median(gaps))):
        return f"uneven slice spacing ({gaps.min():.4g} to {gaps.max():.4g} mm; missing slices?)"
    return None


def _check_declared_size(where: Path, paths: list[Path], datasets: list[Dataset]) -> None:
    """Refuse images whose declared size is above the input caps (:class:`mrirecon.data.Limits`) before any
    pixel data is decoded (compressed pixel data can declare far more than it stores). A frame is counted
    as float64 (how it is assembled), the volume as float32 (how it is kept)."""
    from mrirecon.io.hdf5 import Limits

    limits = Limits.from_env()
    total = 0
    for p, ds in zip(paths, datasets):
        try:
            pixels = int(ds.get("Rows", 0)) * int(ds.get("Columns", 0)) * int(ds.get("SamplesPerPixel", 1) or 1)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError) as exc:
            raise InputError(p, f"unreadable image size attributes ({exc})") from None
        if pixels * 8 > limits.max_slice_bytes:
            raise InputError(
                p,
                f"a {ds.get('Rows')}x{ds.get('Columns')} image is above the per-slice limit of "
                f"{limits.max_slice_bytes} bytes (MRIRECON_MAX_SLICE_BYTES)",
            )
        total += pixels * frames * 4
    if total > limits.max_volume_bytes:
        raise InputError(
            where,
            f"series declares {total} bytes of images, above the per-volume limit of "
            f"{limits.max_volume_bytes} bytes (MRIRECON_MAX_VOLUME_BYTES)",
        )
