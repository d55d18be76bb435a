"""Benchmarks (not tests): ``python -m mrirecon.bench backbone --config 1.3B --batch 1 32 --tokens 402``.

Times with CUDA events (or a host clock on CPU) after warm-up and reports medians over repeats,
tokens/s, achieved TFLOP/s against a measured bf16 matmul ceiling, and peak memory. Results are
appended as JSON lines and printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .nirvana import NirvanaConfig, NirvanaModel

BACKBONES = Path(__file__).resolve().parents[1] / "backbone"
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}


def cpu_name() -> str:
    """The CPU model and core count, e.g. 'Intel(R) Xeon(R) Processor x2'."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0] if names else platform.processor() or platform.machine()} x{os.cpu_count()}"


def resolve_config(name: str) -> NirvanaConfig:
    """``tiny``, ``1.3B`` or a path to a config.json."""
    aliases = {"tiny": BACKBONES / "tiny" / "config.json", "1.3B": BACKBONES / "nirvana-1.3B" / "config.json"}
    return NirvanaConfig.from_json_file(aliases.get(name, name))


def time_fn(fn: Callable[[], object], device: torch.device, repeats: int = 20, warmup: int = 3) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def backbone_flops(cfg: NirvanaConfig, batch: int, tokens: int) -> float:
    """Forward FLOPs: 2 x dense weights x tokens, plus causal attention, gated-delta and Trigger terms."""
    D, L, A = cfg.hidden_size, cfg.num_hidden_layers, cfg.num_hidden_layers - cfg.num_prelude_layers
    c, r, dk = cfg.concept_dim, cfg.logit_dim, cfg.head_dim
    dense = L * (5 * D * D + 2 * cfg.num_heads * D + 3 * D * cfg.mlp_size)
    dense += A * (3 * c * D + 3 * 2 * D * (D // 16) + 2 * D * (D // 8) + (2 * D + 2 * c) * (D // 8) + D * D // 8)
    per_token = 2 * dense + L * 2 * 2 * cfg.num_heads * dk * dk * 2 + A * 2 * 4 * c * c * r
    attention = A * 2 * 2 * D * tokens * (tokens + 1) / 2  # QK^T and PV, causal half
    return batch * (tokens * per_token + attention)


def matmul_ceiling(device: torch.device, n: int = 8192) -> float:
    """Measured bf16 TFLOP/s of an n^3 matrix product on random data."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    return 2 * n**3 / time_fn(lambda: a @ b, device, repeats=10) / 1e12


def bench_backbone(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    cfg = resolve_config(args.config)
    torch.manual_seed(0)
    with torch.device(device):
        model = NirvanaModel(cfg)
    model.reset_parameters(0)
    model = model.to(dtype).eval().requires_grad_(False)
    model.backend = args.backend
    ceiling = matmul_ceiling(device) if device.type == "cuda" else float("nan")
    rows = []
    for batch in args.batch:
        x = torch.randn(batch, args.tokens, cfg.hidden_size, device=device, dtype=dtype)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

        def run(x=x):
            with torch.inference_mode():
                return model(inputs_embeds=x, trigger=args.trigger).last_hidden_state

        sec = time_fn(run, device, repeats=args.repeats)
        flops = backbone_flops(cfg, batch, args.tokens)
        rows.append(
            {
                "bench": "backbone",
                "config": args.config,
                "batch": batch,
                "tokens": args.tokens,
                "dtype": args.dtype,
                "backend": args.backend,
                "trigger": args.trigger,
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
                "ms": sec * 1e3,
                "tokens_per_s": batch * args.tokens / sec,
                "tflops": flops / sec / 1e12,
                "matmul_ceiling_tflops": ceiling,
                "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
                "torch": torch.__version__,
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    keys = [
        "config",
        "batch",
        "tokens",
        "dtype",
        "backend",
        "device",
        "ms",
        "tokens_per_s",
        "tflops",
        "matmul_ceiling_tflops",
        "peak_mem_gib",
    ]
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mrirecon.bench", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    bb = sub.add_parser("backbone", help="time the backbone forward pass")
    bb.add_argument("--config", default="tiny", help="tiny, 1.3B or a config.json path")
    bb.add_argument("--batch", type=int, nargs="+", default=[1])
    bb.add_argument("--tokens", type=int, default=402)
    bb.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: bf16 on CUDA, fp32 on CPU")
    bb.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    bb.add_argument("--backend", default="torch", choices=["torch", "recurrent", "fla"])
    bb.add_argument("--trigger", default="token", choices=["token", "off", "scan"])
    bb.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, help="append results as JSON lines to this file")
    args = parser.parse_args(argv)
    if args.dtype is None:
        args.dtype = "bf16" if args.device.startswith("cuda") else "fp32"
    rows = bench_backbone(args)
    if args.json:
        with args.json.open("a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
