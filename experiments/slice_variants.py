"""Build, check and time the image-side speed variants of a whole-slice reconstruction in one GPU call
(issue 9's notes: experiments/backbone_speed_notes.md).

    python experiments/slice_variants.py --models varnet ours --batch 8 1 --variants graph unets blocks-cl --out DIR

Each variant starts from a fresh copy of the eager model (ours: the 1.3B recipe, random weights; VarNet:
fastMRI's full size), runs bf16-mixed on the bench's random 16-coil 320x320 k-space, is checked against the
eager model on the same inputs (relative L2 error of the image) and timed as a CUDA graph (CUDA-event
medians). ``--profile`` writes the top GPU kernels of a variant (compiled, not graphed) at the first batch.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from mrirecon.bench.recon import build_ours, build_varnet, make_inputs
from mrirecon.bench.speed import cuda_graphed, optimize_for_inference
from mrirecon.bench.timing import fp32_precision, time_fn, with_autocast
from mrirecon.io.markdown import markdown_table

VARIANTS = {  # name: optimize_for_inference arguments (None: the model as built)
    "graph": None,
    "unets": {"whole_blocks": False, "channels_last": False, "channel_multiple": 1},
    "unets-cl": {"whole_blocks": False, "channels_last": True, "channel_multiple": 1},
    "blocks": {"whole_blocks": True, "channels_last": False, "channel_multiple": 1},
    "blocks-cl": {"whole_blocks": True, "channels_last": True, "channel_multiple": 1},
    "blocks-cl-pad8": {"whole_blocks": True, "channels_last": True, "channel_multiple": 8},
    "blocks-pad8": {"whole_blocks": True, "channels_last": False, "channel_multiple": 8},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["varnet", "ours"], choices=["varnet", "ours"])
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 1])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--profile", nargs="*", default=[], help="variants to profile at the first batch")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("."))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda")
    bench_args = argparse.Namespace(
        codec=None, config="1.3B", backbone_dtype=None, backend="torch", precision="bf16-mixed"
    )
    rows = []
    for model in args.models:
        t0 = time.time()
        base = (build_ours if model == "ours" else build_varnet)(bench_args, device).eval()
        print(f"built {model} in {time.time() - t0:.1f} s", flush=True)
        inputs = {b: make_inputs(b, 16, (320, 320), 4, "equispaced_fraction", device) for b in args.batch}
        with torch.inference_mode(), fp32_precision("bf16-mixed"):
            refs = {b: base(k, m, nlf).float() for b, (k, m, nlf) in inputs.items()}
        for name in args.variants:
            torch.compiler.reset()
            net = copy.deepcopy(base)
            if VARIANTS[name] is not None:
                optimize_for_inference(net, **VARIANTS[name])
            for b, (k, m, nlf) in inputs.items():
                fn = with_autocast(lambda k, m, net=net, nlf=nlf: net(k, m, nlf), "bf16-mixed", device)
                row = {"model": model, "variant": name, "batch": b}
                try:
                    with torch.inference_mode(), fp32_precision("bf16-mixed"):
                        t1 = time.time()
                        graphed = cuda_graphed(fn, k, m)
                        out = graphed(k, m).float()
                        row["setup_s"] = time.time() - t1
                        row["rel_err_vs_eager"] = ((out - refs[b]).norm() / refs[b].norm()).item()
                        torch.cuda.reset_peak_memory_stats()
                        sec = time_fn(lambda g=graphed, k=k, m=m: g(k, m), device, repeats=args.repeats)
                    row.update(ms=sec * 1e3, ms_per_slice=sec * 1e3 / b)
                    row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
                    if name in args.profile and b == args.batch[0]:
                        profile(fn, k, m, args.out / f"profile_{model}_{name}_b{b}.txt")
                except Exception as e:  # one failing variant must not hide the others
                    row["error"] = f"{type(e).__name__}: {e}"[:300]
                print("row", json.dumps(row), flush=True)
                rows.append(row)
            del net
            torch.cuda.empty_cache()
        del base
        torch.cuda.empty_cache()
    with (args.out / "slice_variants.jsonl").open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}")
    header = ["model", "variant", "batch", "ms", "ms/slice", "rel err vs eager", "setup s", "peak GiB"]
    cells = [
        [r["model"], r["variant"], r["batch"], r["error"][:80]]
        if "error" in r
        else [r["model"], r["variant"], r["batch"], f"{r['ms']:.2f}", f"{r['ms_per_slice']:.2f}"]
        + [f"{r['rel_err_vs_eager']:.1e}", f"{r['setup_s']:.0f}", f"{r['peak_gib']:.2f}"]
        for r in rows
    ]
    print("\n".join(markdown_table(header, cells)))


def profile(fn, k, m, path: Path) -> None:
    """Top GPU kernels of one un-graphed call (after the graph's warm-up compiled it)."""
    from torch.profiler import ProfilerActivity

    with (
        torch.inference_mode(),
        fp32_precision("bf16-mixed"),
        torch.profiler.profile(activities=[ProfilerActivity.CUDA]) as prof,
    ):
        fn(k, m)
        torch.cuda.synchronize()
    path.write_text(prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=90))


if __name__ == "__main__":
    main()
