"""Whole-slice benches of ours (``ReconModel``: encoder + backbone + decoder) against E2E-VarNet on the same
random inputs: ``slice`` (inference), ``train`` (one optimiser step) and ``tta`` (test-time adaptation of a
volume through :class:`mrirecon.api.Reconstructor`)."""

from __future__ import annotations

import argparse
import gc
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from ..adapt.tta import TTAConfig
from ..api import Reconstructor, margin_noise_samples
from ..baselines.learned import VarNetBaseline
from ..codecs import ReconModel
from ..codecs.checkpoint import load_codec, read_card
from ..codecs.decoder import FloatNormUnet
from ..physics import crop_readout
from ..physics.masks import STANDARD_PAIRS, make_mask_func, sample_mask
from ..training.module import ReconModule
from .report import emit, finish, new_row, recorded_errors
from .speed import optimize_for_inference
from .timing import (
    autocast,
    count_flops,
    fp32_precision,
    param_bytes,
    peak_gib,
    reset_peak,
    tensor_bytes,
    time_fn,
    with_autocast,
    wrap,
)

RECIPES = {"tiny": "tiny.yaml", "1.3B": "nirvana-1.3B.yaml"}
CODECS = Path(__file__).resolve().parents[2] / "codecs"
# E2E-VarNet at fastMRI's full size (Sriram et al. 2020).
VARNET = {"num_cascades": 12, "pools": 4, "chans": 18, "sens_pools": 4, "sens_chans": 8}


def init_args(args: argparse.Namespace) -> dict[str, Any]:
    """ReconModel init args: the codec card's (``--codec``) or the recipe's (``--config`` tiny, 1.3B or a YAML
    path), with ``--backbone-dtype`` applied."""
    if args.codec:
        init = dict(read_card(args.codec)["net"].get("init_args", {}))
    else:
        recipe = yaml.safe_load((CODECS / RECIPES[args.config] if args.config in RECIPES else Path(args.config)).open())
        init = dict(recipe["model"]["net"]["init_args"])
    if args.backbone_dtype:
        init["backbone_dtype"] = args.backbone_dtype
    init.setdefault("backbone_dtype", "float32")
    init.setdefault("backbone_config", "tiny")
    return init


def build_ours(args: argparse.Namespace, device: torch.device) -> nn.Module:
    """The codecs around the frozen backbone: a codec folder's trained weights, or the recipe's random init."""
    init = init_args(args)
    if args.codec:
        net, _ = load_codec(args.codec, device=device, backbone_dtype=init["backbone_dtype"])
    else:
        torch.manual_seed(0)
        net = ReconModel(**init)  # built on the CPU: the backbone's seeded init draws from a CPU generator
    if net.backbone.body is not None:
        net.backbone.body.backend = args.backend
    return net.to(device)


def build_varnet(args: argparse.Namespace, device: torch.device) -> nn.Module:
    """fastmri's VarNet at full size, random weights. Under bf16-mixed its cascades' U-Nets return float32, as
    ours do (FloatNormUnet), so that fastmri's FFT helpers get float32; otherwise it is the stock model."""
    torch.manual_seed(0)
    net = VarNetBaseline(**VARNET)
    if args.precision == "bf16-mixed":
        for block in net.varnet.cascades:
            block.model = FloatNormUnet(VARNET["chans"], VARNET["pools"])
    return net.to(device)


def make_inputs(
    batch: int, coils: int, size: tuple[int, int], acceleration: int, mask_type: str, device: torch.device
) -> tuple[Tensor, Tensor, int]:
    """Seeded random inputs -> (masked k-space [B,C,H,W,2] float32, complex Gaussian on the sampled columns;
    mask [B,1,1,W,1] bool; number of low frequencies). The mask is fastMRI's (project helpers), centre
    fraction from the standard (acceleration, fraction) pairs."""
    H, W = size
    cols, nlf = sample_mask(make_mask_func(mask_type, [acceleration], [STANDARD_PAIRS.get(acceleration, 0.08)]), W, 0)
    mask = torch.from_numpy(cols).view(1, 1, 1, W, 1).repeat(batch, 1, 1, 1, 1)
    kspace = torch.randn(batch, coils, H, W, 2, generator=torch.Generator().manual_seed(0)) * mask
    return kspace.to(device), mask.to(device), nlf


def per_model(rows_of: Callable[..., list[dict]], args: argparse.Namespace) -> list[dict]:
    """``rows_of(name, net, args, device)`` for ours, then VarNet: one model on the device at a time, so that
    each row's peak memory is its own model's."""
    device = torch.device(args.device)
    rows = []
    for name, build in (("ours", build_ours), ("varnet", build_varnet)):
        rows += rows_of(name, build(args, device), args, device)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def _row(bench: str, name: str, net: nn.Module, args: argparse.Namespace, device: torch.device, **kw: Any) -> dict:
    backbone = getattr(net, "backbone", None)
    weight = next(iter(backbone.parameters()), None) if backbone is not None else None
    return new_row(
        bench,
        name,
        device,
        config=(f"codec:{Path(args.codec).name}" if args.codec else args.config) if name == "ours" else "fastmri-full",
        precision=args.precision,
        dtype=str(weight.dtype).removeprefix("torch.") if weight is not None else "float32",
        coils=args.coils,
        size=list(args.size),
        acceleration=args.acceleration,
        backend=args.backend if name == "ours" else None,
        **kw,
    )


@dataclass
class Case:
    """One batch size of a bench: its inputs, the step factory ``make_step(mode, inputs)`` and the bytes moved
    besides the parameters."""

    batch: int
    make_step: Callable[[str, tuple[Tensor, ...]], Callable[..., Tensor]]
    inputs: tuple[Tensor, ...]
    extra_bytes: int


def _time_rows(
    bench: str, name: str, net: nn.Module, args: argparse.Namespace, device: torch.device, cases: list[Case]
) -> list[dict]:
    """One row per (mode, batch), every batch of a mode before the next mode: ``fast`` changes the model in
    place, so it comes last. FLOPs are counted first on un-timed eager steps."""
    with fp32_precision(args.precision):
        flops = [count_flops(lambda c=c: c.make_step("eager", c.inputs)(*c.inputs)) for c in cases]
    rows = []
    for mode in args.modes:
        for case, case_flops in zip(cases, flops, strict=True):
            row = _row(bench, name, net, args, device, mode=mode, batch=case.batch, repeats=args.repeats)
            row.update(flops=case_flops, shape=f"kspace {list(case.inputs[0].shape)}")
            row["bytes"] = param_bytes(net) + case.extra_bytes
            reset_peak(device)
            with recorded_errors(row), fp32_precision(args.precision):
                if mode == "fast":
                    optimize_for_inference(net)
                step = case.make_step(mode, case.inputs)
                sec = time_fn(lambda s=step, c=case: s(*c.inputs), device, args.repeats, args.warmup)
                finish(row, sec, case.batch, case.batch, "slices/s")
            row["peak_mem_gib"] = peak_gib(device)
            rows.append(emit(row))
    return rows


def bench_slice(args: argparse.Namespace) -> list[dict]:
    """``net(masked_kspace [B,C,H,W,2], mask [B,1,1,W,1]) -> image [B,H,W]`` in inference mode. Bytes: every
    parameter read once plus the k-space, mask and image."""
    return per_model(_slice_rows, args)


def _slice_rows(name: str, net: nn.Module, args: argparse.Namespace, device: torch.device) -> list[dict]:
    net.eval()
    cases = []
    for batch in args.batch:
        k, m, nlf = make_inputs(batch, args.coils, tuple(args.size), args.acceleration, args.mask_type, device)
        rows = getattr(args, "target_height", None) or args.size[0]  # the readout cut as the product does
        call = lambda k, m, nlf=nlf, rows=rows: _as_the_product(net, k, m, nlf, rows)  # noqa: E731
        fn = with_autocast(call, args.precision, device)

        def make_step(mode: str, inputs: tuple[Tensor, ...], fn=fn) -> Callable[..., Tensor]:
            wrapped = wrap(fn, mode, inputs)
            return lambda *a: _inference(wrapped, *a)

        image_bytes = batch * args.size[0] * args.size[1] * 4
        cases.append(Case(batch, make_step, (k, m), tensor_bytes(k, m) + image_bytes))
    with torch.inference_mode():  # graph capture and static buffers in inference mode too
        return _time_rows("slice", name, net, args, device, cases)


def _as_the_product(net: nn.Module, kspace: Tensor, mask: Tensor, nlf: int, rows: int) -> Tensor:
    """The network as :meth:`~mrirecon.api.Reconstructor.reconstruct_kspace` calls it: the readout cut to ``rows``
    and, for a floor or solve that reads its noise off the rows that cut removes, their noise."""
    samples = margin_noise_samples(net, kspace, rows)  # None where the cut removes no rows
    extra = {"noise_samples": samples} if samples is not None else {}
    return net(crop_readout(kspace, rows), mask, nlf, **extra)


def _inference(fn: Callable[..., Tensor], *args: Tensor) -> Tensor:
    with torch.inference_mode():
        return fn(*args)


def bench_train(args: argparse.Namespace) -> list[dict]:
    """One optimiser step as the training recipes take it: forward, ReconModule's loss (1 - SSIM + 0.1 L1)
    against a random target, backward, gradient clipping at 1.0, AdamW on the trainable parameters only (the
    codecs; all of VarNet). ``compile`` compiles forward + loss; ``graph`` captures the whole step (AdamW
    with ``capturable=True``). Bytes: every parameter read once, plus 10 passes over the trainable ones
    (gradient written; clipping reads and scales it; AdamW reads parameter, gradient and two moments and
    writes three), plus k-space, mask, target and image."""
    return per_model(_train_rows, args)


def _train_rows(name: str, net: nn.Module, args: argparse.Namespace, device: torch.device) -> list[dict]:
    net.train()  # the frozen backbone stays in eval mode
    params = [p for p in net.parameters() if p.requires_grad]
    loss_of = ReconModule(net, l1_weight=0.1).to(device).loss
    cases = []
    for batch in args.batch:
        k, m, nlf = make_inputs(batch, args.coils, tuple(args.size), args.acceleration, args.mask_type, device)
        target = torch.rand(batch, *args.size, generator=torch.Generator().manual_seed(1)).to(device)  # [B,H,W]
        maxval = target.flatten(1).amax(1)

        def forward_loss(k: Tensor, m: Tensor, target: Tensor, maxval: Tensor, nlf: int = nlf) -> Tensor:
            return loss_of(net(k, m, nlf), SimpleNamespace(target=target, max_value=maxval))

        def make_step(mode: str, inputs: tuple[Tensor, ...], fwd=forward_loss) -> Callable[..., Tensor]:
            fwd = with_autocast(fwd, args.precision, device)
            if mode == "compile":
                fwd = wrap(fwd, "compile", ())
            opt = torch.optim.AdamW(params, lr=1e-4, capturable=mode in ("graph", "fast"))

            def step(*a: Tensor) -> Tensor:
                opt.zero_grad(set_to_none=False)  # gradients stay in place (static under a graph)
                loss = fwd(*a)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                return loss.detach()

            return step if mode == "compile" else wrap(step, mode, inputs)

        inputs = (k, m, target, maxval)
        image_bytes = tensor_bytes(target)
        extra = tensor_bytes(*inputs) + image_bytes + 10 * param_bytes(net, trainable_only=True)
        cases.append(Case(batch, make_step, inputs, extra))
    return _time_rows("train", name, net, args, device, cases)


def bench_tta(args: argparse.Namespace) -> list[dict]:
    """Seconds per volume of ``--tta-slices`` slices through ``Reconstructor.reconstruct_kspace`` with
    ``--tta-steps`` adaptation steps of each ``--tta-params`` adapter set (patience = steps, so every step
    runs) and a reconstruction batch of ``--batch``; host-to-device copies included; the readout is cut to
    ``--target-height`` first when given. Ours only (the adapters are our codecs')."""
    device = torch.device(args.device)
    net = build_ours(args, device)
    k, m, nlf = make_inputs(args.tta_slices, args.coils, tuple(args.size), args.acceleration, args.mask_type, "cpu")
    kspace, cols = torch.view_as_complex(k).numpy(), m[0, 0, 0, :, 0].numpy()
    rows = []
    for params, batch in itertools.product(getattr(args, "tta_params", ["cascades"]), args.batch):
        tta = TTAConfig(steps=args.tta_steps, patience=args.tta_steps, params=params)
        rec = Reconstructor(net, device=device, tta=tta)
        row = _row("tta", "ours", net, args, device, mode="eager", batch=batch, repeats=args.tta_repeats)
        row.update(shape=f"kspace {list(kspace.shape)} complex", tta_steps=args.tta_steps, slices=args.tta_slices)
        row.update(tta_params=params)
        reset_peak(device)
        with recorded_errors(row), fp32_precision(args.precision):

            def run(batch: int = batch, rec: Reconstructor = rec) -> None:
                with autocast(args.precision, device):
                    rec.reconstruct_kspace(kspace, cols, nlf, batch_size=batch, crop_height=args.target_height)

            sec = time_fn(run, device, args.tta_repeats, warmup=1)
            finish(row, sec, args.tta_slices, args.tta_slices, "slices/s")
            row["steps_run"] = rec.last_tta_report.steps_run if rec.last_tta_report else 0
        row["peak_mem_gib"] = peak_gib(device)
        rows.append(emit(row))
    return rows
