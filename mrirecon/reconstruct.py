"""Reconstruct fastMRI k-space files into fastMRI submission files.

    python -m mrirecon.reconstruct --input FILE_OR_DIR --output DIR [--checkpoint DIR]

Reads fastMRI train/val files (a mask is drawn, fixed by the file name), test-format files (their own
mask is used) and ISMRMRD raw data (told apart by content; fully sampled scans get a drawn mask,
undersampled ones keep their acquired lines); writes ``DIR/<relative path>.h5`` (mirroring the input
tree) with ``reconstruction`` float32 [S,h,w] cropped to the target size, or with ``--format
dicom|nifti`` a DICOM series folder ``DIR/<relative path>/`` or ``DIR/<relative path>.nii.gz``. Every
input passes the input gate (:mod:`mrirecon.data.validate`). A bad file is reported in one ``FAILED``
line (traceback only with ``--verbose``) and the batch goes on; the exit code is 1 if any file failed,
2 for usage errors (no input, an output folder inside the input folder or not writable). Progress: bars on
a terminal; otherwise one line per slice (``reconstructing scan.h5: slice 3/16, 4.1 s``) and per file. Identifying
fields of the ISMRMRD header are removed from the outputs of every format unless ``--keep-identity``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .codecs.checkpoint import DEFAULT_CHECKPOINT
from .io import OUTPUT_FORMATS, batch, read_volume
from .io.conversions import kspace_to_image_file
from .io.deid import strip_ismrmrd_identity
from .io.outputs import carried_attrs, output_path, public_name
from .progress import Progress, ProgressCallback

_RECONSTRUCTORS: dict[tuple, Any] = {}


def _reconstructor(checkpoint: str | os.PathLike, device: str | None, overrides: dict[str, Any]):
    from .api import Reconstructor

    key = (str(checkpoint), device, tuple(sorted(overrides.items())))
    if key not in _RECONSTRUCTORS:
        _RECONSTRUCTORS[key] = Reconstructor.from_checkpoint(checkpoint, device=device, **overrides)
    return _RECONSTRUCTORS[key]


def reconstruct_volume_file(
    path: str | os.PathLike,
    checkpoint: str | os.PathLike = DEFAULT_CHECKPOINT,
    device: str | None = None,
    mask_type: str = "equispaced_fraction",
    acceleration: int = 4,
    center_fraction: float | None = None,
    trigger: str | None = None,
    tta_steps: int = 0,
    final_solve: bool = True,
    noise_floor: bool = True,
    keep_identity: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, str | None, dict[str, Any]]:
    """Reconstruct one file -> (volume float32 [S,h,w], ISMRMRD header or None, attributes).

    The network is loaded once per process and reused. Raises ValueError when the output is not finite.
    Without ``keep_identity`` the header loses its identifying fields and ``patient_id`` is not copied.
    ``progress(stage, done, total)`` is told of every slice and test-time adaptation step. ``final_solve=False``
    skips the codec's final solve (the network alone), ``noise_floor=False`` its noise floor."""
    rec = _reconstructor(checkpoint, device, _overrides(trigger, final_solve, noise_floor))
    volume = read_volume(path)
    result = rec.reconstruct_volume(
        volume,
        mask_type=mask_type,
        acceleration=acceleration,
        center_fraction=center_fraction,
        tta_steps=tta_steps,
        progress=progress,
        batch_size=1 if str(getattr(rec, "device", "cpu")) == "cpu" else 4,  # on a CPU: progress per slice
    )
    attrs = {
        "acceleration": result.acceleration,
        "num_low_frequency": result.num_low_frequencies,
        "model": rec.description,
        "seconds": result.seconds,
        "tta_steps": tta_steps,
        "final_solve": int(final_solve),
        "noise_floor": int(noise_floor),
    }
    if not np.isfinite(result.recon).all():
        raise ValueError(f"{path}: the reconstruction holds NaN or Inf values")
    attrs.update(carried_attrs(volume.attrs, keep_identity))
    header = volume.header_xml if keep_identity else strip_ismrmrd_identity(volume.header_xml)
    return result.recon, header, attrs


def _overrides(trigger: str | None, final_solve: bool, noise_floor: bool = True) -> dict[str, Any]:
    """The codec's init args that the command line changes."""
    overrides: dict[str, Any] = {"trigger": trigger} if trigger else {}
    if not final_solve:
        overrides["final_solve_iterations"] = 0
    if not noise_floor:
        overrides["noise_floor"] = 0.0
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mrirecon.reconstruct", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="a fastMRI or ISMRMRD .h5 file, or a folder")
    parser.add_argument("--output", required=True, type=Path, help="output folder for reconstruction files")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, type=Path, help="codec folder (card.json)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--mask-type", default="equispaced_fraction", help="for fully sampled inputs")
    parser.add_argument("--acceleration", default=4, type=int, help="for fully sampled inputs")
    parser.add_argument("--center-fraction", default=None, type=float, help="default: 0.08 at 4x, 0.04 at 8x")
    parser.add_argument("--trigger", default=None, choices=["token", "off", "scan"], help="override the Trigger mode")
    parser.add_argument("--tta-steps", default=0, type=int, help="per-scan test-time adaptation steps (0 = off)")
    parser.add_argument(
        "--no-final-solve", action="store_true", help="skip the codec's final ESPIRiT solve: the network alone, faster"
    )
    parser.add_argument(
        "--no-noise-floor", action="store_true", help="leave the background below the scan's noise floor as it is"
    )
    parser.add_argument("--format", default="h5", choices=OUTPUT_FORMATS, help="output: fastMRI HDF5, DICOM or NIfTI")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--keep-identity", action="store_true", help="keep patient/study fields of the header")
    parser.add_argument("--verbose", action="store_true", help="print a traceback for each failed file")
    args = parser.parse_args(argv)

    problem = batch.prepare_output(args.input, args.output)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    inputs = batch.find_h5_inputs(args.input)
    if not inputs:
        print(f"error: {args.input}: no .h5 files found", file=sys.stderr)
        return 2
    try:  # load the network once, before any file, so a bad checkpoint stops here
        _reconstructor(
            args.checkpoint, args.device, _overrides(args.trigger, not args.no_final_solve, not args.no_noise_floor)
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: cannot load the checkpoint: {err}", file=sys.stderr)
        return 2
    settings = {
        "checkpoint": args.checkpoint,
        "device": args.device,
        "mask_type": args.mask_type,
        "acceleration": args.acceleration,
        "center_fraction": args.center_fraction,
        "trigger": args.trigger,
        "tta_steps": args.tta_steps,
        "final_solve": not args.no_final_solve,
        "noise_floor": not args.no_noise_floor,
    }
    tasks = []
    for path in inputs:
        name = batch.relative_name(args.input, path)
        if args.format != "h5":  # fastMRI submissions need the input names; other exports get pseudonyms
            name = public_name(path, name, args.keep_identity)
        out = output_path(args.output, name, args.format)
        tasks.append(
            batch.Task(str(path), out, _reconstruct_file, (path, out, args.format, settings, args.keep_identity))
        )
    summary = batch.run_batch(tasks, label="reconstruct", overwrite=args.overwrite, verbose=args.verbose, stage="file")
    print(summary.line("reconstructed"))
    return summary.exit_code


def _reconstruct_file(src: Path, dst: Path, fmt: str, settings: dict[str, Any], keep_identity: bool) -> None:
    """One input of the batch, with per-slice progress (``reconstructing scan.h5: slice 3/16``)."""
    with Progress(f"reconstructing {src.name}") as slices:
        options = {**settings, "progress": slices}
        kspace_to_image_file(
            src, dst, options=options, reconstruct=reconstruct_volume_file, keep_identity=keep_identity, fmt=fmt
        )


if __name__ == "__main__":
    sys.exit(main())
