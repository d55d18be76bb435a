"""Result rows: the common keys, JSON lines, the Markdown table and its header line."""

from __future__ import annotations

import contextlib
import json
import math
import platform
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import torch

from ..io.markdown import markdown_table
from .timing import copy_ceiling, device_name, matmul_ceiling

# Every row has these keys (None where a value does not apply); benches add their own after them.
ROW_KEYS = (
    "bench",  # backbone | slice | train | tta
    "model",  # nirvana (the backbone alone) | ours (ReconModel) | varnet (E2E-VarNet)
    "config",  # backbone config (tiny, 1.3B) or the codec folder
    "mode",  # eager | compile | graph
    "precision",  # 32 | tf32 | bf16-mixed (backbone rows: the dtype)
    "dtype",  # parameter dtype of the backbone
    "batch",
    "shape",  # input shape, e.g. kspace [B,C,H,W,2] or embeds [B,T,D]
    "device",
    "torch",
    "ms",  # median milliseconds per call (tta: per volume)
    "ms_per_slice",  # ms / slices (backbone: per sequence)
    "throughput",
    "throughput_unit",  # tokens/s | slices/s
    "flops",  # per call: analytic (backbone) or torch.utils.flop_counter (slice, train)
    "tflops",  # achieved
    "bytes",  # the lower-bound traffic of one call (see each bench)
    "gbps",  # achieved
    "matmul_ceiling_tflops",  # measured bf16 matmul (CUDA only)
    "copy_ceiling_gbps",  # measured device-to-device copy, bytes read + written
    "peak_mem_gib",  # torch.cuda.max_memory_allocated, reset per row (CUDA only)
    "ratio_vs_varnet",  # ours ms / VarNet ms at the same bench, mode and batch (ours' rows only)
    "repeats",
    "error",  # None, or why this row has no time (out of memory, a capture failure, ...)
)


def new_row(bench: str, model: str, device: torch.device, **values: Any) -> dict[str, Any]:
    """A row with every common key, the device, software and the measured ceilings filled in."""
    row: dict[str, Any] = dict.fromkeys(ROW_KEYS)
    row.update(
        bench=bench,
        model=model,
        device=device_name(device),
        torch=torch.__version__,
        matmul_ceiling_tflops=matmul_ceiling(device),
        copy_ceiling_gbps=copy_ceiling(device),
    )
    row.update(values)
    return row


@contextlib.contextmanager
def recorded_errors(row: dict[str, Any]) -> Iterator[None]:
    """Record a failure (out of memory, a capture or compile error) in the row's ``error`` and go on: one
    failed row must not lose the rest of a long run."""
    try:
        yield
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {e}".strip().splitlines()[0]
        where = f"{row['bench']} {row['model']} {row['mode']} batch {row['batch']}"
        print(f"bench: {where} failed: {row['error']}", file=sys.stderr)


def finish(row: dict[str, Any], seconds: float, slices: int, units: float, unit: str) -> dict[str, Any]:
    """Fill in the times and rates of a row from the median ``seconds`` per call."""
    row.update(ms=seconds * 1e3, ms_per_slice=seconds * 1e3 / slices, throughput=units / seconds)
    row["throughput_unit"] = unit
    if row.get("flops"):
        row["tflops"] = row["flops"] / seconds / 1e12
    if row.get("bytes"):
        row["gbps"] = row["bytes"] / seconds / 1e9
    return row


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """ours ms / VarNet ms for every ours row that has a VarNet row of the same bench, mode and batch."""
    key = lambda r: (r["bench"], r["mode"], r["batch"])  # noqa: E731
    varnet = {key(r): r["ms"] for r in rows if r["model"] == "varnet" and r["ms"]}
    for r in rows:
        if r["model"] == "ours" and r["ms"] and key(r) in varnet:
            r["ratio_vs_varnet"] = r["ms"] / varnet[key(r)]


def emit(row: dict[str, Any]) -> dict[str, Any]:
    """Print a finished row at once (``row {...}``), so that a run stopped part-way still shows what it measured."""
    print("row " + json.dumps(row, default=str), flush=True)
    return row


def write_json(rows: list[dict[str, Any]], path: Path) -> None:
    """Append one JSON object per row (NaN written as null)."""
    clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
    with path.open("a") as f:
        for r in rows:
            f.write(json.dumps({k: clean(v) for k, v in r.items()}) + "\n")


def header(rows: list[dict[str, Any]]) -> str:
    """One line naming the machine, the software and the measured ceilings."""
    import fastmri

    r = rows[0] if rows else {}
    software = f"PyTorch {r.get('torch', torch.__version__)}"
    if r.get("torch", torch.__version__) == torch.__version__:  # measured here: name the rest of this stack
        cuda = f"CUDA {torch.version.cuda}, " if torch.version.cuda else ""
        software += f", {cuda}fastmri {fastmri.__version__}, Python {platform.python_version()}"
    ceilings = []
    if r.get("matmul_ceiling_tflops"):
        ceilings.append(f"bf16 matmul ceiling {r['matmul_ceiling_tflops']:.0f} TFLOP/s")
    if r.get("copy_ceiling_gbps"):
        ceilings.append(f"copy ceiling {r['copy_ceiling_gbps']:.0f} GB/s")
    return f"Machine: {r.get('device', '?')}; {software}; {date.today().isoformat()}" + (
        f"; {', '.join(ceilings)}" if ceilings else ""
    )


COLUMNS = {
    "bench": "bench",
    "model": "model",
    "config": "config",
    "mode": "mode",
    "precision": "precision",
    "batch": "batch",
    "shape": "shape",
    "ms": "ms",
    "ms_per_slice": "ms/slice",
    "throughput": "throughput",
    "throughput_unit": "unit",
    "tflops": "TFLOP/s",
    "gbps": "GB/s",
    "ratio_vs_varnet": "ours/VarNet",
    "peak_mem_gib": "peak GiB",
    "tta_params": "TTA params",
    "error": "error",
}


def markdown(rows: list[dict[str, Any]]) -> str:
    """The header line and one table row per result."""

    def fmt(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.3g}" if math.isfinite(v) else "nan"
        return str(v)[:80]

    table = markdown_table(list(COLUMNS.values()), ([fmt(r.get(k)) for k in COLUMNS] for r in rows))
    return "\n".join([header(rows), "", *table])
