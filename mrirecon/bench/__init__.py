"""Benchmarks (not tests), one process for all of them: ``python -m mrirecon.bench {backbone,slice,train,tta,all}``.

- ``backbone``: the frozen backbone alone, ``inputs_embeds [B,T,D] -> hidden [B,T,D]``, tokens/s.
- ``slice``: a whole reconstruction, ``ReconModel(masked_kspace [B,C,H,W,2], mask [B,1,1,W,1]) -> [B,H,W]``,
  and E2E-VarNet (fastmri, full size, random weights) on the same random k-space; ratio ours / VarNet.
- ``train``: one optimiser step (forward, SSIM + L1 loss, backward, AdamW on the codecs), both models.
- ``tta``: test-time adaptation + reconstruction of one volume through ``mrirecon.api.Reconstructor``.
- ``all``: the four with shared options.

Times are medians over ``--repeats`` calls after ``--warmup`` calls (CUDA events on a GPU, the host clock on the
CPU). ``--compile`` / ``--graph`` add rows timed through ``torch.compile`` / ``mrirecon.bench.speed.cuda_graphed``.
Every row names the device and torch version and has ms, per-slice ms, throughput, achieved TFLOP/s and GB/s,
the measured bf16 matmul and copy ceilings and the peak memory; ``--json`` appends the rows as JSON lines,
``--markdown`` writes the table (also printed).
"""

from .backbone import backbone_flops, bench_backbone, resolve_config
from .cli import main, run
from .recon import bench_slice, bench_train, bench_tta, make_inputs
from .report import ROW_KEYS, markdown
from .timing import copy_ceiling, cpu_name, matmul_ceiling, time_fn

__all__ = [
    "ROW_KEYS",
    "backbone_flops",
    "bench_backbone",
    "bench_slice",
    "bench_train",
    "bench_tta",
    "copy_ceiling",
    "cpu_name",
    "main",
    "make_inputs",
    "markdown",
    "matmul_ceiling",
    "resolve_config",
    "run",
    "time_fn",
]
