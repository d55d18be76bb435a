"""Build, check and time the backbone's speed variants in one GPU call
(issue 9's notes: experiments/backbone_speed_notes.md).

    python experiments/fast_variants.py --batch 1 32 --variants eager-torch graph-fla ... --out DIR

Each variant runs the official 1.3B config (random weights, bf16, 402 tokens, inference mode) and is
checked against the float32 eager model on the same inputs (relative L2 error of the last hidden state);
times are CUDA-event medians after warm-up. ``--profile`` writes the top GPU kernels of a variant.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mrirecon.bench import backbone_flops, matmul_ceiling, resolve_config, time_fn
from mrirecon.bench.speed import cuda_graphed
from mrirecon.io.markdown import markdown_table
from mrirecon.nirvana import NirvanaModel

VARIANTS = {  # name: (backend, fuse, compile, graph)
    "eager-torch": ("torch", False, False, False),
    "eager-fla": ("fla", False, False, False),
    "graph-torch": ("torch", False, False, True),
    "graph-fla": ("fla", False, False, True),
    "graph-fuse-fla": ("fla", True, False, True),
    "compile-fuse-fla": ("fla", True, True, False),
    "graph-compile-fuse-fla": ("fla", True, True, True),
    "graph-compile-fuse-torch": ("torch", True, True, True),
    "graph-autotune-fuse-fla": ("fla", True, "max-autotune-no-cudagraphs", True),
}


def build(cfg, dtype, seed=0):
    with torch.device("cuda"):
        model = NirvanaModel(cfg)
    model.reset_parameters(seed)
    return model.to(dtype).eval().requires_grad_(False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="1.3B")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--tokens", type=int, default=402)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--profile", nargs="*", default=[], help="variants (no graph) to profile at each batch")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("."))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = resolve_config(args.config)
    torch.backends.cuda.matmul.allow_tf32 = False
    t0 = time.time()
    ref = build(cfg, torch.float32)
    print(f"built reference in {time.time() - t0:.1f} s", flush=True)
    ceiling = matmul_ceiling(torch.device("cuda"))
    inputs = {b: torch.randn(b, args.tokens, cfg.hidden_size, device="cuda") for b in args.batch}
    with torch.inference_mode():
        refs = {b: ref(inputs_embeds=x).last_hidden_state for b, x in inputs.items()}
    del ref
    torch.cuda.empty_cache()
    rows = []
    for name in args.variants:
        backend, fuse, compile_, graph = VARIANTS[name]
        model = build(cfg, torch.bfloat16)
        model.backend = backend
        if fuse:
            model.fuse_projections()
        if compile_:
            model.compile_blocks(**({"mode": compile_} if isinstance(compile_, str) else {}))
        for b, x32 in inputs.items():
            x = x32.to(torch.bfloat16)
            try:
                t1 = time.time()

                def fwd(x, model=model):
                    with torch.inference_mode():
                        return model(inputs_embeds=x).last_hidden_state

                fn = cuda_graphed(fwd, x) if graph else fwd
                out = fn(x).float()
                setup = time.time() - t1
                err = ((out - refs[b]).norm() / refs[b].norm()).item()
                torch.cuda.reset_peak_memory_stats()
                sec = time_fn(lambda fn=fn, x=x: fn(x), torch.device("cuda"), repeats=args.repeats)
                row = {
                    "variant": name,
                    "batch": b,
                    "tokens": args.tokens,
                    "ms": sec * 1e3,
                    "tflops": backbone_flops(cfg, b, args.tokens) / sec / 1e12,
                    "ceiling": ceiling,
                    "rel_err_vs_fp32": err,
                    "setup_s": setup,
                    "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                }
            except Exception as e:  # one failing variant must not hide the others
                row = {"variant": name, "batch": b, "error": f"{type(e).__name__}: {e}"[:300]}
            print(json.dumps(row), flush=True)
            rows.append(row)
            if name in args.profile and not graph:
                from torch.profiler import ProfilerActivity, profile

                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    fn(x)
                    torch.cuda.synchronize()
                table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=40)
                (args.out / f"profile_{name}_b{b}.txt").write_text(table)
        del model
        torch.cuda.empty_cache()
    (args.out / "fast_variants.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"\nmatmul ceiling {ceiling:.0f} TFLOP/s, {torch.cuda.get_device_name()}, torch {torch.__version__}")
    header = ["variant", "batch", "ms", "TFLOP/s", "% ceiling", "rel err vs fp32", "setup s", "peak GiB"]
    cells = [
        [r["variant"], r["batch"], r["error"][:80]]
        if "error" in r
        else [
            r["variant"],
            r["batch"],
            f"{r['ms']:.2f}",
            f"{r['tflops']:.0f}",
            f"{100 * r['tflops'] / r['ceiling']:.0f}",
        ]
        + [f"{r['rel_err_vs_fp32']:.2e}", f"{r['setup_s']:.1f}", f"{r['peak_gib']:.2f}"]
        for r in rows
    ]
    print("\n".join(markdown_table(header, cells)))


if __name__ == "__main__":
    main()
