"""Clocks, measured ceilings, precision settings and the compile / CUDA-graph wrappers of the benchmarks."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

PRECISIONS = ("32", "tf32", "bf16-mixed")
MODES = ("eager", "compile", "graph", "fast")


def cpu_name() -> str:
    """The CPU model and core count, e.g. 'Intel(R) Xeon(R) Processor x2'."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0] if names else platform.processor() or platform.machine()} x{os.cpu_count()}"


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def time_fn(fn: Callable[[], object], device: torch.device, repeats: int = 20, warmup: int = 3) -> float:
    """Median seconds per call after ``warmup`` calls: CUDA events on a GPU, the host clock on the CPU."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


@cache
def matmul_ceiling(device: torch.device, n: int = 8192) -> float | None:
    """Measured bf16 TFLOP/s of an n^3 matrix product on random data (None on the CPU: not measured)."""
    if device.type != "cuda":
        return None
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    return 2 * n**3 / time_fn(lambda: a @ b, device, repeats=10) / 1e12


@cache
def copy_ceiling(device: torch.device) -> float:
    """Measured device-to-device copy GB/s (bytes read + written) of a 2 GiB (GPU) or 64 MiB (CPU) float32 tensor."""
    numel = 2**29 if device.type == "cuda" else 2**24
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    sec = time_fn(lambda: dst.copy_(src), device, repeats=10 if device.type == "cuda" else 5)
    return 2 * numel * 4 / sec / 1e9


@contextlib.contextmanager
def fp32_precision(mode: str) -> Iterator[None]:
    """Global float32 matmul and convolution precision for a row: TF32 under ``tf32``, IEEE float32 otherwise
    (set around compilation and capture too, outside the traced code)."""
    if mode not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {mode!r}")
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision
    matmul.fp32_precision = conv.fp32_precision = "tf32" if mode == "tf32" else "ieee"
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


def autocast(mode: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast under ``bf16-mixed`` (the codecs' U-Nets hand float32 to the FFTs, see FloatNormUnet)."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if mode == "bf16-mixed" else contextlib.nullcontext()


def with_autocast(fn: Callable[..., Any], mode: str, device: torch.device) -> Callable[..., Any]:
    """``fn`` under :func:`autocast`, inside the callable so that compile and graph capture see it."""

    def run(*args: Tensor) -> Any:
        with autocast(mode, device):
            return fn(*args)

    return run


def wrap(fn: Callable[..., Tensor], mode: str, example_args: tuple[Tensor, ...]) -> Callable[..., Tensor]:
    """The timed callable for a mode: ``eager`` (fn itself), ``compile`` (``torch.compile(fn)``) or ``graph``
    (``speed.cuda_graphed(fn, *example_args)``: captured once on static CUDA inputs, replayed) or ``fast``
    (a graph of a model prepared by ``speed.optimize_for_inference``). ``eager`` and ``graph`` run
    eager code even where the model holds compiled modules."""
    if mode == "eager":
        return force_eager(fn)
    if mode == "compile":
        torch.compiler.reset()  # a fresh cache per row: no recompilation with dynamic shapes across batches
        return torch.compile(fn, dynamic=False)
    if mode in ("graph", "fast"):  # fast: the model went through speed.optimize_for_inference first
        from .speed import cuda_graphed  # imported only when asked for

        return cuda_graphed(fn if mode == "fast" else force_eager(fn), *example_args)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def force_eager(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with every ``torch.compile`` inside it ignored (run as plain eager code, caches untouched)."""

    def run(*args: Tensor) -> Any:
        with torch.compiler.set_stance("force_eager"):
            return fn(*args)

    return run


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one (un-timed) call as torch.utils.flop_counter counts them: matmuls, convolutions and
    attention, forward and backward; FFTs and elementwise work are not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    # Eager: dynamo would fail on a compiled module under the counting mode and fall back to eager code for
    # good, for every model sharing that module's code.
    with torch.compiler.set_stance("force_eager"), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def tensor_bytes(*tensors: Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def param_bytes(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return tensor_bytes(*(p for p in module.parameters() if p.requires_grad or not trainable_only))
