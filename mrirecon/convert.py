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
temporary name (:mod:`mrirecon.io.batch`) and renamed; temporaries of killed runs are removed. Every
failure is one line ``FAILED <file>: <problem>`` (traceback with ``--verbose``); the batch goes on,
and the exit code is 1 when anything failed, 2 for usage errors (no input, output folder inside the
input or not writable). HDF5 inputs pass the input gate (:mod:`mrirecon.data.validate`). The
conversions themselves live in :mod:`mrirecon.io.conversions`; this module builds the batch and runs
it (:func:`mrirecon.io.batch.run_batch`).

Identity (DICOM PS3.15 basic profile, :mod:`mrirecon.io.deid`): ``h5-to-dicom`` replaces patient
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mrirecon.cli.options import parse_options
from mrirecon.io import batch, conversions, deid
from mrirecon.io.outputs import output_path, public_name

__all__ = ["main"]


def _h5_tasks(args: argparse.Namespace, fn: Callable[..., Any], fmt: str, options: dict[str, Any]) -> list[batch.Task]:
    """One task per HDF5 file under ``args.input``; outputs named by :func:`public_name` (input names
    often hold the patient's name)."""
    root, out = Path(args.input), Path(args.output)
    tasks = []
    for src in batch.find_h5_inputs(root):
        dst = output_path(out, public_name(src, batch.relative_name(root, src), args.keep_identity), fmt)
        tasks.append(
            batch.Task(str(src), dst, fn, (str(src), str(dst)), {"keep_identity": args.keep_identity, **options})
        )
    return tasks


def _series_tasks(args: argparse.Namespace, summary: batch.Summary) -> list[batch.Task]:
    """One task per DICOM series under ``args.input``; files that are not DICOM images fail at once."""
    from mrirecon.io.dicom import scan_folder

    root, out = Path(args.input), Path(args.output)
    groups, problems = scan_folder(root)
    for path, why in problems:
        summary.fail(f"FAILED {path}: {why}")
    parents = {uid: Path(os.path.commonpath([str(p.parent) for p in files])) for uid, files in groups.items()}
    per_dir = {parent: list(parents.values()).count(parent) for parent in parents.values()}
    tasks = []
    for uid, files in sorted(groups.items()):
        if not args.keep_identity:  # folder names of DICOM exports often hold the patient's name
            dst = out / f"{deid.pseudonym('output', uid)}.h5"
        else:  # a folder holding one series -> <folder>.h5, else <folder>/<uid>.h5
            rel = Path(".") if root.is_file() else parents[uid].relative_to(root)
            one = rel != Path(".") and per_dir[parents[uid]] == 1
            dst = out / rel.parent / f"{rel.name}.h5" if one else out / rel / f"{uid}.h5"
        name = f"{parents[uid]} (series {uid})"
        files_arg = [str(p) for p in files]
        tasks.append(
            batch.Task(
                name, dst, conversions.dicom_series_to_h5, (files_arg, str(dst)), {"keep_identity": args.keep_identity}
            )
        )
    return tasks


def _recon_options(items: Sequence[str]) -> dict[str, Any]:
    """``--recon-option`` values as YAML scalars (``none`` stays text: a backbone name); ``-`` in a key is ``_``."""
    import yaml

    options = parse_options(items, "--recon-option", lambda text: yaml.safe_load(text) if text else None)
    return {key.replace("-", "_"): value for key, value in options.items()}


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
    p.add_argument(
        "--dataset", default=None, help=f"dataset to export (default: first of {conversions.RECONSTRUCTION_KEYS})"
    )
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
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    problem = batch.prepare_output(args.input, args.output)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    summary = batch.Summary()
    if args.command == "ismrmrd-to-h5":
        tasks = _h5_tasks(args, conversions.ismrmrd_to_h5_file, "h5", {})
    elif args.command == "h5-to-dicom":
        options = {"enhanced": args.enhanced, "dataset": args.dataset, "fmt": args.format}
        tasks = _h5_tasks(args, conversions.h5_to_dicom_file, args.format, options)
    elif args.command == "kspace-to-dicom":
        try:
            options = {"options": _recon_options(args.recon_option), "enhanced": args.enhanced, "fmt": args.format}
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.workers <= 1:  # in-process: import the model once, before the first file
            options["reconstruct"] = conversions.model_reconstruct()
        tasks = _h5_tasks(args, conversions.kspace_to_image_file, args.format, options)
    else:
        tasks = _series_tasks(args, summary)
    if not tasks and not summary.failed:
        print(f"error: {args.input}: no input files found", file=sys.stderr)
        return 2
    batch.run_batch(
        tasks,
        label=args.command,
        workers=args.workers,
        overwrite=args.overwrite,
        verbose=args.verbose,
        summary=summary,
    )
    print(summary.line("converted"))
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
