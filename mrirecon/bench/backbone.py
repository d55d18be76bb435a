"""The backbone alone: ``inputs_embeds [B,T,D] -> last_hidden_state [B,T,D]``, random weights, inference mode."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from ..codecs.backbones import resolve_backbone_config as resolve_config
from ..nirvana import NirvanaConfig, NirvanaModel
from .report import emit, finish, new_row, recorded_errors
from .speed import optimize_for_inference
from .timing import param_bytes, peak_gib, reset_peak, tensor_bytes, time_fn, wrap

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}


def backbone_flops(cfg: NirvanaConfig, batch: int, tokens: int) -> float:
    """Forward FLOPs: 2 x dense weights x tokens, plus causal attention, gated-delta and Trigger terms."""
    D, L, A = cfg.hidden_size, cfg.num_hidden_layers, cfg.num_hidden_layers - cfg.num_prelude_layers
    c, r, dk = cfg.concept_dim, cfg.logit_dim, cfg.head_dim
    dense = L * (5 * D * D + 2 * cfg.num_heads * D + 3 * D * cfg.mlp_size)
    dense += A * (3 * c * D + 3 * 2 * D * (D // 16) + 2 * D * (D // 8) + (2 * D + 2 * c) * (D // 8) + D * D // 8)
    per_token = 2 * dense + L * 2 * 2 * cfg.num_heads * dk * dk * 2 + A * 2 * 4 * c * c * r
    attention = A * 2 * 2 * D * tokens * (tokens + 1) / 2  # QK^T and PV, causal half
    return batch * (tokens * per_token + attention)


def bench_backbone(args: argparse.Namespace, batches: list[int]) -> list[dict[str, Any]]:
    """One row per (mode, batch). FLOPs analytic (:func:`backbone_flops`); bytes: the parameters read once
    plus the input and output activations."""
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    cfg = resolve_config(args.config)
    torch.manual_seed(0)
    with torch.device(device):
        model = NirvanaModel(cfg)
    model.reset_parameters(0)
    model = model.to(dtype).eval().requires_grad_(False)
    model.backend = args.backend
    rows = []
    for mode in args.modes:
        for batch in batches:
            x = torch.randn(batch, args.tokens, cfg.hidden_size, device=device, dtype=dtype)
            row = new_row(
                "backbone",
                "nirvana",
                device,
                config=args.config,
                mode=mode,
                precision=args.dtype,
                dtype=args.dtype,
                batch=batch,
                shape=f"embeds {list(x.shape)}",
                repeats=args.repeats,
                tokens=args.tokens,
                backend=args.backend,
                trigger=args.trigger,
                flops=backbone_flops(cfg, batch, args.tokens),
                bytes=param_bytes(model) + 2 * tensor_bytes(x),
            )
            reset_peak(device)
            with recorded_errors(row), torch.inference_mode():
                if mode == "fast":
                    optimize_for_inference(model)
                fn = wrap(lambda e: model(inputs_embeds=e, trigger=args.trigger).last_hidden_state, mode, (x,))
                sec = time_fn(lambda x=x, fn=fn: fn(x), device, args.repeats, args.warmup)
                finish(row, sec, batch, batch * args.tokens, "tokens/s")
                row["backend"] = model.backend  # the fast path may have switched to fla
                row["tokens_per_s"] = row["throughput"]
            row["peak_mem_gib"] = peak_gib(device)
            rows.append(emit(row))
            del x
    return rows
