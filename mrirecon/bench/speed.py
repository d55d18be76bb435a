"""GPU speed helpers of the benchmarks (and the experiments' variants): CUDA-graph capture of a static-shape call
and the compiled fast path of a model."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

WARMUP_RUNS = 3  # eager calls before capture (autotuning, lazy initialisation)


def cuda_graphed(fn: Callable[..., Tensor], *example_args: Tensor) -> Callable[..., Tensor]:
    """Capture ``fn(*example_args)`` (CUDA tensors, fixed shapes) into a CUDA graph.

    The returned callable copies its arguments into the captured input buffers, replays the graph and
    returns the captured output tensor, which the next call overwrites (clone it to keep it). One
    replay launches every kernel of the call at once, which removes the per-kernel launch cost that
    dominates small batches. ``fn`` must not synchronise with the host (no ``.item()``, no shape-
    dependent Python control flow on tensor values); warm-up runs (autotuning, lazy init) happen before
    capture on a side stream, as CUDA graphs require.
    """
    for i, a in enumerate(example_args):
        if not isinstance(a, Tensor) or a.device.type != "cuda":
            raise ValueError(f"cuda_graphed: argument {i} must be a CUDA tensor, got {type(a).__name__}")
    static_in = [a.clone() for a in example_args]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP_RUNS):
            fn(*static_in)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = fn(*static_in)

    def replay(*args: Tensor) -> Tensor:
        if len(args) != len(static_in):
            raise ValueError(f"cuda_graphed: captured with {len(static_in)} arguments, called with {len(args)}")
        for i, (dst, src) in enumerate(zip(static_in, args, strict=True)):
            if src.shape != dst.shape or src.dtype != dst.dtype:
                raise ValueError(
                    f"cuda_graphed: argument {i} is {tuple(src.shape)} {src.dtype}, "
                    f"captured as {tuple(dst.shape)} {dst.dtype}"
                )
            dst.copy_(src)
        graph.replay()
        return static_out

    replay.graph = graph  # keeps the graph (and its memory pool) alive with the callable
    return replay


def optimize_for_inference(
    model: nn.Module, whole_blocks: bool = True, channels_last: bool = True, channel_multiple: int = 8
) -> nn.Module:
    """In place, once: the fast path for a static-shape GPU call (then capture it with :func:`cuda_graphed`).

    - Every Nirvana backbone gets fused input projections, regional ``torch.compile`` of its blocks and, when
      it is bf16/fp16 and fla-core is installed, fla's gated-delta-rule kernel.
    - The image-side modules are compiled as whole units (``whole_blocks``): our encoder and decoder, and
      E2E-VarNet's sensitivity network and each cascade. Data consistency, the coil expand/reduce products
      and the U-Net's normalisation then fuse into few kernels around the FFTs. With ``whole_blocks=False``
      only the fastmri ``NormUnet``s are compiled (FFTs and data consistency stay eager).
    - ``channels_last``: fastmri's U-Net convolutions keep NHWC weights and activations (cuDNN's fast layout
      for bf16 convolutions with few channels).
    - ``channel_multiple``: in eval mode the U-Nets run with every convolution's channels zero-padded to this
      multiple (the same function; cuDNN's tensor-core kernels want multiples of 8, fastmri's U-Nets have
      2, 18 and 36 channels). 1 turns it off.

    Weights are unchanged (the fused copy is outside the state dict; memory format is not a value change).
    """
    from fastmri.models.unet import Unet
    from fastmri.models.varnet import NormUnet

    from ..codecs.decoder import ImageDecoder
    from ..codecs.encoder import KSpaceEncoder
    from ..codecs.graph_safe import CascadeBlock, CentreSensitivityModel, pad_unet_channels
    from ..nirvana import NirvanaModel, fla_available

    if getattr(model, "_optimized_for_inference", False):
        return model
    # One compiled graph per input shape and module type; several models or batch sizes in one process would
    # exceed dynamo's default of 8 and silently fall back to eager code.
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    units = (KSpaceEncoder, ImageDecoder, CentreSensitivityModel, CascadeBlock) if whole_blocks else ()
    units += (NormUnet,)
    for module in model.modules():
        if isinstance(module, NirvanaModel):
            module.fuse_projections().compile_blocks()
            low_precision = next(module.parameters()).dtype in (torch.bfloat16, torch.float16)
            if low_precision and module.backend == "torch" and fla_available():
                module.backend = "fla"  # fla's kernel computes in bf16: only for a bf16/fp16 backbone
        elif channels_last and isinstance(module, Unet):
            module.to(memory_format=torch.channels_last)
    pad_unet_channels(model, channel_multiple)
    _compile_outermost(model, units)
    model._optimized_for_inference = True
    return model


def _compile_outermost(module: nn.Module, units: tuple[type, ...]) -> None:
    """``torch.compile`` each outermost submodule of a type in ``units`` (nested ones are traced inside it)."""
    for child in module.children():
        if isinstance(child, units):
            child.compile()
        else:
            _compile_outermost(child, units)
