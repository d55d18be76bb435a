"""The command line: ``python -m mrirecon.bench {backbone,slice,train,tta,all} [options]``."""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

from ..io.files import write_text_atomically
from .backbone import DTYPES, bench_backbone
from .recon import RECIPES, bench_slice, bench_train, bench_tta, init_args
from .report import add_ratios, markdown, write_json
from .timing import PRECISIONS

EXAMPLES = """examples:
  python -m mrirecon.bench backbone --config 1.3B --batch 1 32 --tokens 402 --graph
  python -m mrirecon.bench slice --config 1.3B --batch 8 --coils 16 --size 320 320 --compile
  python -m mrirecon.bench all --config tiny --batch 1 --coils 4 --size 64 64 --json bench.jsonl
"""


def _common(cuda: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--repeats", type=int, default=20, help="timed calls; the median is reported")
    p.add_argument("--warmup", type=int, default=3, help="un-timed calls first")
    p.add_argument("--compile", action="store_true", help="also time torch.compile(fn)")
    p.add_argument("--graph", action="store_true", help="also time mrirecon.bench.speed.cuda_graphed(fn) (CUDA)")
    p.add_argument(
        "--fast", action="store_true", help="also time the fast path: speed.optimize_for_inference, then a graph"
    )
    p.add_argument("--backend", default="torch", choices=["torch", "recurrent", "fla"], help="backbone kernels")
    p.add_argument("--json", type=Path, default=argparse.SUPPRESS, help="append results as JSON lines")
    p.add_argument("--markdown", type=Path, default=argparse.SUPPRESS, help="write the Markdown table")
    return p


def _backbone(all_: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    if not all_:  # under ``all`` these come from the codec recipe
        p.add_argument("--config", default="tiny", help="tiny, 1.3B or a config.json path")
        p.add_argument("--batch", type=int, nargs="+", default=[1])
        p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: bf16 on CUDA, fp32 on CPU")
    else:
        p.add_argument("--backbone-batch", type=int, nargs="+", default=[1], help="batches of the backbone rows")
    p.add_argument("--tokens", type=int, default=402, help="sequence length of the backbone rows")
    p.add_argument("--trigger", default="token", choices=["token", "off", "scan"])
    return p


def _recon(cuda: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--config", default="1.3B" if cuda else "tiny", help=f"codec recipe: {', '.join(RECIPES)} or a YAML path"
    )
    p.add_argument("--codec", help="a codec folder (card.json + codec.safetensors) instead of the recipe's init")
    p.add_argument("--backbone-dtype", choices=["float32", "bfloat16"], help="default: the recipe's or card's")
    p.add_argument("--precision", choices=PRECISIONS, default="bf16-mixed" if cuda else "32")
    p.add_argument("--batch", type=int, nargs="+", default=[1])
    p.add_argument("--coils", type=int, default=16)
    p.add_argument("--size", type=int, nargs=2, default=[320, 320], metavar=("H", "W"))
    p.add_argument(
        "--target-height",
        type=int,
        help="slice: the target's rows; the fully sampled readout is cut to them first, as reconstruct does "
        "(e.g. 320 for fastMRI brain's 640x320 k-space)",
    )
    p.add_argument("--acceleration", type=int, default=4)
    p.add_argument("--mask-type", default="equispaced_fraction")
    return p


def _tta() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--tta-steps", type=int, default=10)
    p.add_argument("--tta-slices", type=int, default=16, help="slices of the volume")
    p.add_argument("--tta-repeats", type=int, default=3)
    p.add_argument("--tta-params", nargs="+", default=["cascades"], help="adapter sets, one row each")
    return p


def parser() -> argparse.ArgumentParser:
    cuda = torch.cuda.is_available()
    top = argparse.ArgumentParser(
        prog="python -m mrirecon.bench",
        description=sys.modules[__package__].__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--json", type=Path, help="append results as JSON lines to this file")
    top.add_argument("--markdown", type=Path, help="write the Markdown table to this file")
    sub = top.add_subparsers(dest="what", required=True)
    common, recon, tta = _common(cuda), _recon(cuda), _tta()
    sub.add_parser("backbone", parents=[common, _backbone(False)], help="the backbone forward pass")
    sub.add_parser("slice", parents=[common, recon], help="one slice batch, ours vs E2E-VarNet")
    sub.add_parser("train", parents=[common, recon], help="one training step, ours vs E2E-VarNet")
    sub.add_parser("tta", parents=[common, recon, tta], help="test-time adaptation of one volume")
    sub.add_parser("all", parents=[common, recon, tta, _backbone(True)], help="backbone + slice + train + tta")
    return top


def run(args: argparse.Namespace) -> list[dict]:
    """The rows of the asked benches, in one process."""
    args.modes = ["eager"] + ["compile"] * args.compile + ["graph"] * args.graph + ["fast"] * args.fast
    if args.what == "backbone":
        args.dtype = args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")
        return bench_backbone(args, args.batch)
    rows = []
    if args.what == "all":
        init = init_args(args)
        bb = copy.copy(args)
        bb.config = init["backbone_config"]
        bb.dtype = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[init["backbone_dtype"]]
        rows += bench_backbone(bb, args.backbone_batch)
    if args.what in ("slice", "all"):
        rows += bench_slice(args)
    if args.what in ("train", "all"):
        rows += bench_train(args)
    if args.what in ("tta", "all"):
        rows += bench_tta(args)
    add_ratios(rows)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    p = parser()
    args = p.parse_args(argv)
    if (args.graph or args.fast) and not args.device.startswith("cuda"):
        p.error("--graph needs a CUDA device")
    rows = run(args)
    if args.json:
        write_json(rows, args.json)
    table = markdown(rows)
    if args.markdown:
        write_text_atomically(args.markdown, table + "\n")
    print(table)
    return rows
