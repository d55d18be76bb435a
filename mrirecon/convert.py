"""Batch conversion between fastMRI-style HDF5 reconstructions, DICOM, NIfTI and ISMRMRD raw data.

Usage::

    python -m mrirecon.convert h5-to-dicom IN OUT [--workers N] [--overwrite] [--keep-identity] [--enhanced]
                                                  [--format dicom|nifti]
    python -m mrirecon.convert dicom-to-h5 IN OUT [--workers N] [--overwrite] [--keep-identity]
    python -m mrirecon.convert kspace-to-dicom IN OUT [--recon-option KEY=VALUE ...] [same as h5-to-dicom]
                                                      [--format h5|dicom|nifti]
    python -m mrirecon.convert ismrmrd-to-h5 IN OUT [--workers N] [--overwrite] [--keep-identity]

``IN`` is a file or a folder (searched recursively); ``OUT`` must lie outside it. Output names:

- ``h5-to-dicom``: ``IN/a/b.h5`` -> folder ``OUT/ANON-<pseudonym of a/b.h5>/`` (``OUT/a/b/`` with
  ``--keep-identity``, since input names often hold the patient's name) with ``IM00001.dcm``...
  (single-frame MR Image Storage), or ``ENHANCED.dcm`` (one Legacy Converted Enhanced MR object)
  with ``--enhanced``.
- ``--format nifti``: ``OUT/ANON-<pseudonym>.nii.gz`` (``OUT/a/b.nii.gz`` with ``--keep-identity``)
  instead (nibabel; affine from the patient geometry, or voxel sizes on assumed axes when the input
  has no orientation, said in a note); ``--format h5`` (k-space input only): a fastMRI-style
  reconstruction file ``OUT/ANON-<pseudonym>.h5``.
- ``ismrmrd-to-h5``: ISMRMRD raw data ``IN/a/b.h5`` -> fastMRI-layout k-space file
  ``OUT/ANON-<pseudonym>.h5`` (``OUT/a/b.h5`` with ``--keep-identity``): ``kspace`` [S,C,H,W] with
  readout oversampling removed and coils prewhitened, the ISMRMRD header (identifying fields removed
  unless ``--keep-identity``), ``reconstruction_rss`` when fully sampled, else ``mask`` and the
  acceleration attributes.
- ``dicom-to-h5``: a series -> ``OUT/ANON-<pseudonym of its series>.h5``; with ``--keep-identity``
  a series whose files sit in ``IN/a/b/`` -> ``OUT/a/b.h5`` (when that folder holds one series;
  otherwise ``OUT/a/b/<SeriesInstanceUID>.h5``). The file holds ``reconstruction``
  (float32 ``[S, H, W]``, sorted along the slice normal) and the geometry and scale as attributes
  (``pixel_spacing``, ``slice_thickness``, ``slice_spacing``, ``image_orientation_patient``,
  ``image_position_patient`` ``[S, 3]``, ``scale_slope``, ``scale_intercept``, UIDs, ...). Fed back
  to ``h5-to-dicom`` these attributes take precedence over the ISMRMRD header.

Existing outputs are skipped unless ``--overwrite``; outputs are written under a short hidden
temporary name (:mod:`mrirecon.batch`) and renamed; temporaries of killed runs are removed. Every
failure is one line ``FAILED <file>: <problem>`` (traceback with ``--verbose``); the batch goes on,
and the exit code is 1 when anything failed, 2 for usage errors (no input, output folder inside the
input or not writable). HDF5 inputs pass the input gate (:mod:`mrirecon.data.validate`).

Identity (DICOM PS3.15 basic profile, :mod:`mrirecon.deid`): ``h5-to-dicom`` replaces patient
name/ID by a keyed pseudonym of the patient (the source's PatientID, else the input path), leaves
birth date, sex and study date empty, writes a fixed SeriesDescription, no ProtocolName and keyed
new UIDs; ``dicom-to-h5`` stores a keyed pseudonymous ``patient_id``, new UIDs and no description.
``--keep-identity`` keeps the source's identity (HDF5 attributes ``patient_id``, ``patient_name``,
``patient_birth_date``, ``patient_sex``, else the ISMRMRD ``subjectInformation``), descriptions and UIDs.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrirecon import batch, deid, dicom
from mrirecon.cli.options import parse_options
from mrirecon.data.validate import InvalidInputError
from mrirecon.data.volume import read_image
from mrirecon.io.files import write_atomically

__all__ = [
    "RECONSTRUCTION_KEYS",
    "H5InputError",
    "Summary",
    "dicom_series_to_h5",
    "geometry_from_h5",
    "h5_to_dicom_file",
    "ismrmrd_to_h5_file",
    "kspace_to_dicom_file",
    "main",
    "read_reconstruction_h5",
    "write_dicom_volume",
]

RECONSTRUCTION_KEYS = ("reconstruction", "reconstruction_rss", "reconstruction_esc")
H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
ENHANCED_NAME = "ENHANCED.dcm"


class H5InputError(ValueError):
    """An HDF5 input that cannot be converted (the message says why)."""


# --------------------------------------------------------------------------------------------
# HDF5 input


def _decode(value: Any) -> Any:
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO" and value.ndim == 0:
        return _decode(value[()])
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_reconstruction_h5(
    path: str | Path, dataset: str | None = None
) -> tuple[np.ndarray, str | None, dict[str, Any], str]:
    """Read and validate a reconstruction file: ``(volume float32 [S,H,W], header_xml, attrs, key)``.

    ``key`` is the dataset used: ``dataset`` when given, else the first of
    :data:`RECONSTRUCTION_KEYS` present. Raises :class:`H5InputError` with the problem: not HDF5,
    truncated/corrupt, missing dataset, wrong rank or dtype, empty, NaN/Inf values.
    """
    try:
        image = read_image(path, [dataset] if dataset else RECONSTRUCTION_KEYS, with_header=True)
    except InvalidInputError as exc:
        raise H5InputError(exc.problem) from None
    return image.volume, image.header_xml, {k: _decode(v) for k, v in image.attrs.items()}, image.key


def geometry_from_h5(header_xml: str | None, attrs: dict[str, Any]) -> dicom.Geometry:
    """Geometry from ``dicom-to-h5`` attributes when present, else from the ISMRMRD header/default."""
    geometry = dicom.geometry_from_ismrmrd(header_xml)
    try:
        if "pixel_spacing" in attrs:
            ps = np.asarray(attrs["pixel_spacing"], dtype=np.float64).ravel()
            geometry = dicom.Geometry(
                pixel_spacing=(float(ps[0]), float(ps[1])),
                slice_thickness=float(attrs.get("slice_thickness", geometry.slice_thickness)),
                slice_spacing=float(attrs["slice_spacing"]) if "slice_spacing" in attrs else None,
                orientation=tuple(  # type: ignore[arg-type]
                    float(v)
                    for v in np.asarray(
                        attrs.get("image_orientation_patient", geometry.orientation), dtype=np.float64
                    ).ravel()[:6]
                ),
                origin=tuple(  # type: ignore[arg-type]
                    float(v) for v in np.asarray(attrs["image_position_patient"], dtype=np.float64).reshape(-1, 3)[0]
                )
                if "image_position_patient" in attrs
                else None,
            )
    except (ValueError, TypeError, IndexError, KeyError):
        pass  # malformed attributes: keep the header/default geometry
    return geometry


def _identity_from_attrs(attrs: dict[str, Any], header_xml: str | None) -> dict[str, str]:
    ident = dicom.identity_from_ismrmrd(header_xml)
    for attr, keyword in (
        ("patient_id", "PatientID"),
        ("patient_name", "PatientName"),
        ("patient_birth_date", "PatientBirthDate"),
        ("patient_sex", "PatientSex"),
    ):
        if attrs.get(attr) not in (None, ""):
            ident[keyword] = str(attrs[attr])
    return ident


# --------------------------------------------------------------------------------------------
# Conversions of one item (run in worker processes)


def _volume_to_dicom(
    volume: np.ndarray,
    header_xml: str | None,
    attrs: dict[str, Any],
    dst: Path,
    *,
    source_name: str,
    description: str,
    keep_identity: bool,
    enhanced: bool,
) -> None:
    ident = _identity_from_attrs(attrs, header_xml)
    patient = ident.get("PatientID")
    kwargs: dict[str, Any] = {
        "geometry": geometry_from_h5(header_xml, attrs),
        "acquisition": dicom.acquisition_from_ismrmrd(header_xml),
        "series_description": description if keep_identity else dicom.DEIDENTIFIED_DESCRIPTION,
        "pseudonymise": not keep_identity,
        # one pseudonym per patient; without a PatientID, one per input file (never per file name)
        "pseudonym_key": f"patient:{patient}" if patient else f"file:{source_name}",
        "uid_key": source_name if keep_identity else deid.keyed_digest("source", source_name),
        "identity": ident if keep_identity else {},
    }
    if keep_identity:
        for attr, kw in (
            ("study_instance_uid", "study_uid"),
            ("frame_of_reference_uid", "frame_of_reference_uid"),
        ):
            if attrs.get(attr):
                kwargs[kw] = str(attrs[attr])

    def write(tmp: Path) -> None:
        if enhanced:
            dicom.write_enhanced(volume, tmp / ENHANCED_NAME, **kwargs)
        else:
            dicom.write_series(volume, tmp, **kwargs)

    write_atomically(dst, write)


def write_dicom_volume(
    volume: np.ndarray,
    header_xml: str | None,
    attrs: dict[str, Any],
    dst: Path,
    *,
    source_name: str,
    keep_identity: bool = False,
    enhanced: bool = False,
) -> None:
    """A reconstructed volume [S,H,W] as the DICOM series folder ``dst`` (replaced if it exists)."""
    _volume_to_dicom(
        np.asarray(volume, dtype=np.float32),
        header_xml,
        attrs,
        Path(dst),
        source_name=source_name,
        description="mrirecon reconstruction",
        keep_identity=keep_identity,
        enhanced=enhanced,
    )


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
    if fmt != "dicom":
        _write_other(dst, fmt, volume, header, attrs, src, keep_identity)
        return dst
    _volume_to_dicom(
        volume,
        header,
        attrs,
        dst,
        source_name=str(src.resolve()),
        description=str(attrs.get("series_description") or f"mrirecon {key}"),
        keep_identity=keep_identity,
        enhanced=enhanced,
    )
    return dst


ReconstructFn = Callable[..., tuple[np.ndarray, "str | None", dict]]


def _load_reconstruct() -> ReconstructFn:
    """The model's ``reconstruct_volume_file`` (imported lazily: it pulls in torch and the model)."""
    from mrirecon.reconstruct import reconstruct_volume_file

    return reconstruct_volume_file


def kspace_to_dicom_file(
    src: str | Path,
    dst: str | Path,
    *,
    options: dict[str, Any] | None = None,
    reconstruct: ReconstructFn | None = None,
    keep_identity: bool = False,
    enhanced: bool = False,
    fmt: str = "dicom",
) -> Path:
    """Reconstruct one k-space file with ``reconstruct(path, **options)`` and write DICOM to ``dst``
    (or HDF5 / NIfTI with ``fmt``).

    ``reconstruct`` defaults to ``mrirecon.reconstruct.reconstruct_volume_file``; it is called with
    ``keep_identity=True`` and must return ``(volume float [S,H,W], header_xml or None, attrs)``.
    """
    src, dst = Path(src), Path(dst)
    fn = reconstruct or _load_reconstruct()
    # the full header comes back so the patient gets their pseudonym; _volume_to_dicom de-identifies
    volume, header, attrs = fn(src, **{**(options or {}), "keep_identity": True})
    volume = np.asarray(volume)
    if volume.ndim != 3 or np.iscomplexobj(volume) or not np.all(np.isfinite(volume)):
        raise ValueError(f"reconstruction gave an unusable volume (shape {volume.shape}, dtype {volume.dtype})")
    if header is not None and not isinstance(header, str):
        header = _decode(header)
    if fmt != "dicom":
        _write_other(dst, fmt, volume.astype(np.float32), header, dict(attrs or {}), src, keep_identity)
        return dst
    _volume_to_dicom(
        volume.astype(np.float32),
        header if isinstance(header, str) else None,
        dict(attrs or {}),
        dst,
        source_name=str(src.resolve()),
        description="mrirecon reconstruction",
        keep_identity=keep_identity,
        enhanced=enhanced,
    )
    return dst


def _write_other(
    dst: Path, fmt: str, volume: np.ndarray, header: str | None, attrs: dict, src: Path, keep_identity: bool
) -> None:
    """HDF5 or NIfTI output (de-identified unless ``keep_identity``); the note about missing
    orientation goes to stderr."""
    from mrirecon.io import write_output

    note = write_output(dst, fmt, volume, header, attrs, source_name=str(src.resolve()), keep_identity=keep_identity)
    if note:
        print(f"note: {note}", file=sys.stderr)


def ismrmrd_to_h5_file(src: str | Path, dst: str | Path, *, keep_identity: bool = False) -> Path:
    """ISMRMRD raw data -> a fastMRI-layout k-space file ``dst`` (written atomically). Without
    ``keep_identity`` the header loses its identifying fields and the source name is not recorded."""
    from mrirecon.io.ismrmrd_raw import read_ismrmrd
    from mrirecon.io.outputs import public_attrs

    src, dst = Path(src), Path(dst)
    volume = read_ismrmrd(src)
    header = volume.header_xml if keep_identity else deid.strip_ismrmrd_identity(volume.header_xml)
    attrs = {"acquisition": "ISMRMRD", **volume.attrs}
    if keep_identity:
        attrs["source_file"] = src.name
    else:
        attrs = public_attrs(attrs)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as hf:
            hf.create_dataset("kspace", data=volume.kspace)
            if header is not None:
                hf.create_dataset("ismrmrd_header", data=header)
            if volume.target is not None:
                hf.create_dataset("reconstruction_rss", data=volume.target)
                hf.attrs["max"] = float(volume.target.max())
            if volume.mask is not None:
                hf.create_dataset("mask", data=volume.mask.astype(np.float32))
            for key, value in attrs.items():
                hf.attrs[key] = value

    write_atomically(dst, write)
    return dst


def _dicom_patient_key(ds: Any, series_uid: str) -> str:
    """What identifies the patient of a DICOM file (issuer + ID; the series when there is no ID)."""
    pid = str(ds.get("PatientID", "") or "")
    if not pid:
        return f"series:{series_uid}"
    return f"patient:{ds.get('IssuerOfPatientID', '') or ''}:{pid}"


def dicom_series_to_h5(files: Sequence[str | Path], dst: str | Path, *, keep_identity: bool = False) -> Path:
    """Convert the files of one DICOM series to the HDF5 file ``dst`` (replaced if it exists)."""
    import pydicom

    series = dicom.load_series(files)
    dst = Path(dst)
    first = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    if keep_identity:
        uids = (series.series_uid, series.study_uid, series.frame_of_reference_uid)
    else:  # basic profile: replace UIDs (keyed, so every series of a study still shares one study UID)
        uids = tuple(
            str(deid.keyed_uid(kind, uid)) if uid else ""
            for kind, uid in zip(
                ("series", "study", "frame"), (series.series_uid, series.study_uid, series.frame_of_reference_uid)
            )
        )

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("reconstruction", data=series.volume)
            a = f.attrs
            a["max"] = float(series.volume.max())
            a["geometry_source"] = "dicom" if series.geometry is not None else "none"
            if series.pixel_spacing is not None:
                a["pixel_spacing"] = np.asarray(series.pixel_spacing, dtype=np.float64)
            if series.slice_thickness is not None:
                a["slice_thickness"] = float(series.slice_thickness)
            if series.slice_spacing is not None:
                a["slice_spacing"] = float(series.slice_spacing)
            if series.orientation is not None:
                a["image_orientation_patient"] = np.asarray(series.orientation, dtype=np.float64)
            if series.positions is not None:
                a["image_position_patient"] = np.asarray(series.positions, dtype=np.float64)
            for name, values in (("scale_slope", series.slope), ("scale_intercept", series.intercept)):
                a[name] = float(values[0]) if np.all(values == values[0]) else np.asarray(values)
            a["series_instance_uid"], a["study_instance_uid"], a["frame_of_reference_uid"] = uids
            a["sop_class_uid"] = series.sop_class_uid
            a["modality"] = series.attributes.get("Modality", "")
            if keep_identity:
                a["series_description"] = series.series_description
                a["patient_id"] = str(first.get("PatientID", ""))
                a["patient_name"] = str(first.get("PatientName", ""))
                a["patient_birth_date"] = str(first.get("PatientBirthDate", ""))
                a["patient_sex"] = str(first.get("PatientSex", ""))
            else:
                a["patient_id"] = dicom.pseudonym(_dicom_patient_key(first, series.series_uid))

    write_atomically(dst, write)
    return dst


# --------------------------------------------------------------------------------------------
# Batch machinery


@dataclass
class Summary:
    """Counts of a batch run, and one line per failure."""

    converted: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        """``converted N, skipped N, failed N``."""
        return f"converted {self.converted}, skipped {self.skipped}, failed {self.failed}"


@dataclass
class _Task:
    name: str  # what FAILED lines name (a file or series)
    dst: Path
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict


def _run_one(fn: Callable[..., Any], args: tuple, kwargs: dict, verbose: bool = False) -> str | None:
    """Run a conversion; None on success, else a one-line problem (plus the traceback when ``verbose``)."""
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # a bad input must never stop the batch
        msg = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, InvalidInputError):  # the report line names the file already
            msg = " ".join(exc.problem.split())
        elif not isinstance(exc, H5InputError | dicom.DicomInputError):
            msg = f"{type(exc).__name__}: {msg}"
        if verbose:
            detail = getattr(exc, "detail", None)  # the library's own words (InvalidInputError)
            msg += (f"\n  ({detail})" if detail else "") + "\n" + "".join(traceback.format_exception(exc)).rstrip()
        return msg
    return None


def _report(summary: Summary, name: str, problem: str, bar: Any) -> None:
    summary.failed += 1
    line = f"FAILED {name}: {problem}"
    summary.failures.append(line)
    bar.write(line)


def _run_batch(
    tasks: list[_Task], *, workers: int, overwrite: bool, label: str, summary: Summary, verbose: bool = False
) -> Summary:
    from .progress import Progress

    todo = []
    for task in tasks:
        if task.dst.exists() and not overwrite:
            summary.skipped += 1
        else:
            todo.append(task)
    with Progress(label) as bar:  # a bar on a terminal, "<label>: item 3/10, 4.2 s" lines in a log
        if workers <= 1 or len(todo) <= 1:
            for done, task in enumerate(todo, 1):
                problem = _run_one(task.fn, task.args, task.kwargs, verbose)
                if problem is None:
                    summary.converted += 1
                else:
                    _report(summary, task.name, problem, bar)
                bar("item", done, len(todo))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_run_one, t.fn, t.args, t.kwargs, verbose): t for t in todo}
                for done, fut in enumerate(as_completed(futures), 1):
                    task = futures[fut]
                    try:
                        problem = fut.result()
                    except Exception as exc:  # e.g. a worker killed by the OS
                        problem = f"worker failed ({type(exc).__name__}: {exc})"
                    if problem is None:
                        summary.converted += 1
                    else:
                        _report(summary, task.name, problem, bar)
                    bar("item", done, len(todo))
    return summary


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _find_h5(root: Path, out: Path) -> list[Path]:
    """HDF5 files under ``root`` (not hidden, not inside the output folder ``out``)."""
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in H5_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and not _inside(p, out)
    )


def _dicom_dst(root: Path, out: Path, src: Path, fmt: str = "dicom", keep_identity: bool = True) -> Path:
    from mrirecon.io.outputs import output_path, public_name

    rel = Path(src.name) if root.is_file() else src.relative_to(root)
    return output_path(out, public_name(src, rel, keep_identity), fmt)  # input names often hold the patient's name


def _h5_tasks(args: argparse.Namespace, fn: Callable[..., Any], extra: dict) -> list[_Task]:
    root, out = Path(args.input), Path(args.output)
    if fn is ismrmrd_to_h5_file:
        fmt, options = "h5", {"keep_identity": args.keep_identity}
    else:
        fmt, options = args.format, {"keep_identity": args.keep_identity, "enhanced": args.enhanced}
        if fmt != "dicom":
            options["fmt"] = fmt
    tasks = []
    for src in _find_h5(root, out):
        dst = _dicom_dst(root, out, src, fmt, args.keep_identity)
        tasks.append(_Task(name=str(src), dst=dst, fn=fn, args=(str(src), str(dst)), kwargs={**options, **extra}))
    return tasks


def _series_dst(
    root: Path, out: Path, files: list[Path], uid: str, per_dir: dict[Path, int], keep_identity: bool = True
) -> Path:
    if not keep_identity:  # folder names of DICOM exports often hold the patient's name
        return out / f"{dicom.pseudonym('output', uid)}.h5"
    parent = Path(os.path.commonpath([str(p.parent) for p in files]))
    rel = Path(".") if root.is_file() else parent.relative_to(root)
    if rel != Path(".") and per_dir[parent] == 1:
        return out / rel.parent / f"{rel.name}.h5"
    return out / rel / f"{uid}.h5"


def _parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``--recon-option`` values as YAML scalars (``none`` stays text: a backbone name); ``-`` in a key is ``_``."""
    import yaml

    options = parse_options(items, "--recon-option", lambda text: yaml.safe_load(text) if text else None)
    return {key.replace("-", "_"): value for key, value in options.items()}


# --------------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    default_workers = max(1, min(4, os.cpu_count() or 1))
    parser = argparse.ArgumentParser(
        prog="python -m mrirecon.convert",
        description="Batch conversion between fastMRI-style HDF5 reconstructions, DICOM, NIfTI and ISMRMRD raw data.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(p: argparse.ArgumentParser, workers: int) -> None:
        p.add_argument("input", metavar="IN", help="input file or folder (searched recursively)")
        p.add_argument("output", metavar="OUT", help="output folder")
        p.add_argument("--workers", type=int, default=workers, help=f"parallel processes (default {workers})")
        p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
        p.add_argument("--keep-identity", action="store_true", help="keep patient identity (default: pseudonymise)")
        p.add_argument("--verbose", action="store_true", help="print a traceback for each failure")

    p = sub.add_parser(
        "h5-to-dicom",
        help="HDF5 reconstructions -> one DICOM MR series per volume",
        description="fastMRI-style reconstruction files -> one DICOM MR Image Storage series per volume.",
    )
    common(p, default_workers)
    p.add_argument("--enhanced", action="store_true", help="write one multi-frame Legacy Converted Enhanced MR")
    p.add_argument("--dataset", default=None, help=f"dataset to export (default: first of {RECONSTRUCTION_KEYS})")
    p.add_argument("--format", default="dicom", choices=("dicom", "nifti"), help="output format (default dicom)")

    p = sub.add_parser(
        "dicom-to-h5",
        help="DICOM series -> one HDF5 volume per series",
        description="A folder of DICOM series -> one HDF5 volume per series, sorted by geometry.",
    )
    common(p, default_workers)

    p = sub.add_parser(
        "kspace-to-dicom",
        help="reconstruct k-space files with the model and write DICOM",
        description="Reconstruct k-space files with the model (mrirecon.reconstruct) and write DICOM series.",
    )
    common(p, 1)
    p.add_argument("--enhanced", action="store_true", help="write one multi-frame Legacy Converted Enhanced MR")
    p.add_argument(
        "--recon-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option passed to the reconstruction (repeatable; VALUE is parsed as YAML)",
    )
    p.add_argument("--format", default="dicom", choices=("h5", "dicom", "nifti"), help="output format (default dicom)")

    p = sub.add_parser(
        "ismrmrd-to-h5",
        help="ISMRMRD raw data -> fastMRI-layout k-space files",
        description="ISMRMRD raw data -> fastMRI-layout k-space HDF5 (for training on your own scans).",
    )
    common(p, default_workers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 something failed, 2 usage error)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    root = Path(args.input)
    if not root.exists():
        print(f"error: input {root} does not exist", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    problem = batch.check_output_folder(root, args.output)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    batch.clean_stale_temporaries(args.output)
    summary = Summary()
    if args.command == "ismrmrd-to-h5":
        tasks = _h5_tasks(args, ismrmrd_to_h5_file, {})
    elif args.command == "h5-to-dicom":
        tasks = _h5_tasks(args, h5_to_dicom_file, {"dataset": args.dataset})
    elif args.command == "kspace-to-dicom":
        reconstruct = _load_reconstruct()
        try:
            options = _parse_options(args.recon_option)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        extra: dict[str, Any] = {"options": options}
        if args.workers <= 1:
            extra["reconstruct"] = reconstruct  # in-process: reuse what was imported
        tasks = _h5_tasks(args, kspace_to_dicom_file, extra)
    else:
        out = Path(args.output)
        groups, problems = dicom.scan_folder(root)
        for path, why in problems:
            summary.failed += 1
            line = f"FAILED {path}: {why}"
            summary.failures.append(line)
            print(line, file=sys.stderr)
        per_dir: dict[Path, int] = {}
        parents = {uid: Path(os.path.commonpath([str(p.parent) for p in files])) for uid, files in groups.items()}
        for parent in parents.values():
            per_dir[parent] = per_dir.get(parent, 0) + 1
        tasks = []
        for uid, files in sorted(groups.items()):
            dst = _series_dst(root, out, files, uid, per_dir, args.keep_identity)
            name = f"{parents[uid]} (series {uid})"
            tasks.append(
                _Task(
                    name,
                    dst,
                    dicom_series_to_h5,
                    ([str(p) for p in files], str(dst)),
                    {"keep_identity": args.keep_identity},
                )
            )
    if not tasks and not summary.failed:
        print(f"error: {root}: no input files found", file=sys.stderr)
        return 2
    _run_batch(
        tasks, workers=args.workers, overwrite=args.overwrite, label=args.command, summary=summary, verbose=args.verbose
    )
    print(summary.line())
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
