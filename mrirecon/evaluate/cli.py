"""``python -m mrirecon.evaluate`` / ``mrirecon evaluate``: the command line (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..progress import Progress
from .methods import UsageError, parse_method
from .report import header_line, print_tables, write_outputs
from .run import describe_machine, evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mrirecon.evaluate", description=sys.modules[__package__].__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data", required=True, type=Path, help="folder of fully sampled or test-format files")
    parser.add_argument("--truth", type=Path, default=None, help="ground-truth folder for test-format files")
    parser.add_argument("--accelerations", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--mask-type", default="equispaced_fraction", help="for fully sampled files")
    parser.add_argument(
        "--method",
        action="append",
        required=True,
        metavar="NAME[=DIR[:k=v,...]]",
        help="zero-filled, sense, l1-wavelet, bart (options: s0=sense:crop=0,lamda=0.01) or NAME=CODEC_DIR with "
        "optional init-arg overrides (ours-off=DIR:trigger=off); repeat for each method",
    )
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="processes for classical")
    parser.add_argument("--device", default=None, help="cpu or cuda for learned methods (default: cuda if available)")
    parser.add_argument("--max-volumes", type=int, default=None, help="files per acceleration (name order)")
    parser.add_argument("--max-slices-per-volume", type=int, default=None, help="the central K slices")
    parser.add_argument("--batch-size", type=int, default=4, help="slices per forward pass (learned methods)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/evaluation"),
        help="output folder: summary.md, summary.csv, per_volume.csv (and tuned.json with --tune-on)",
    )
    parser.add_argument(
        "--tune-on",
        type=Path,
        default=None,
        metavar="VALDIR",
        help="first choose λ / ESPIRiT crop of the sense, l1-wavelet and bart methods per acceleration on this "
        "validation folder (grid search) and write them to --tuned",
    )
    parser.add_argument(
        "--tuned",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSON of validation-chosen λ / crop (read; written by --tune-on, default OUT/tuned.json)",
    )
    parser.add_argument("--tune-max-volumes", type=int, default=None, help="validation files per acceleration")
    parser.add_argument("--tune-max-slices", type=int, default=None, help="central validation slices per file")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file; --out names a folder (it was a file prefix before)", file=sys.stderr)
        return 2

    def report(msg: str) -> None:
        print(f"SKIPPED {msg}", file=sys.stderr)

    try:
        tuned = _tuned_for(args, report)
        summary = evaluate(
            args.data,
            args.method,
            args.accelerations,
            truth=args.truth,
            mask_type=args.mask_type,
            workers=args.workers,
            device=args.device,
            max_volumes=args.max_volumes,
            max_slices_per_volume=args.max_slices_per_volume,
            batch_size=args.batch_size,
            on_error=report,
            tuned=tuned,
            progress=Progress("evaluate"),
        )
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    errors = summary.attrs["errors"]
    if summary.empty:
        print(f"error: nothing evaluated in {args.data} ({len(errors)} files skipped)", file=sys.stderr)
        return 1 if errors else 2
    device = args.device or ("cuda" if _cuda() else "cpu")
    header = header_line(summary, args.data, args.truth, describe_machine(device))
    print_tables(summary, header)
    for note in summary.attrs["notes"]:
        print(f"note: {note}", file=sys.stderr)
    paths = write_outputs(summary, args.out, header, args.mask_type)
    print("wrote " + ", ".join(map(str, paths)))
    return 1 if errors else 0


def _tuned_for(args: argparse.Namespace, report: Callable[[str], None]) -> dict[str, Any] | None:
    """Run ``--tune-on`` (writing ``--tuned``) or read ``--tuned``; None when neither is given."""
    from .tuning import TUNABLE, check_not_validation, load_tuned, save_tuned, tune

    if args.tune_on is None:
        return load_tuned(args.tuned) if args.tuned is not None else None
    if not args.tune_on.is_dir():
        raise UsageError(f"{args.tune_on}: not a folder")
    bases = sorted({s.base for s in map(parse_method, args.method) if s.base in TUNABLE}, key=TUNABLE.index)
    if not bases:
        raise UsageError("--tune-on: none of the methods is tunable (sense, l1-wavelet, bart)")
    check_not_validation({"validation": str(args.tune_on)}, args.data)
    record = tune(
        args.tune_on,
        bases,
        args.accelerations,
        mask_type=args.mask_type,
        workers=args.workers,
        max_volumes=args.tune_max_volumes,
        max_slices_per_volume=args.tune_max_slices,
        on_error=report,
    )
    path = save_tuned(record, args.tuned or args.out / "tuned.json")
    print(f"tuned on {args.tune_on}: {json.dumps(record['chosen'])} -> {path}")
    return record


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
