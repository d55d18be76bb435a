"""Per-scan test-time adaptation: fit small adapters on the scan's own k-space, every weight frozen.

The measured lines of the scan are split (:func:`mrirecon.adapt.selfsup.split_lines`) into an input set that
keeps the calibration centre, a loss set and an early-stopping set. A few Adam steps fit per-scan
adapters so that the reconstruction from the input lines predicts the loss lines. The adapters are
separate tensors added to the network's weights through :func:`torch.func.functional_call`, so no
trained weight is ever written; they are returned to the caller and dropped after the scan.

Adapter sets (``TTAConfig.params``, joined with ``+``):

- ``trigger``: offsets to the Trigger's coefficients of every Trigger layer (Nirvana backbones);
- ``heads``: each refinement cascade's data-consistency weight and last 1x1 convolution (a per-channel
  scale and shift of its U-Net's output) and the decoder head's last convolution;
- ``sens``: the last layer of the coil-sensitivity network;
- ``lora``: rank-``rank`` updates of every 3x3 convolution in the refinement cascades;
- ``cascades``: every weight of the refinement cascades (full test-time training of the decoder's
  refinement; the default: it gained most on target-physics validation volumes, results/tta_gap).

Guardrail: the adapters with the lowest error on the early-stopping lines are kept; if no step lowers it
below the unadapted network's, the scan is reconstructed unadapted (``TTAReport.used`` is False).
All slices share one adaptation (slices are drawn at random per step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from .selfsup import as_mask, heldout_error, split_lines

ADAPTER_SETS = ("trigger", "heads", "sens", "lora", "cascades")
WEIGHT_SETS = ("heads", "sens", "lora", "cascades")


@dataclass
class TTAConfig:
    """steps: optimiser steps (0 = off); params: adapter sets joined with ``+`` (see the module doc);
    lr: Adam step size of the Trigger offsets; weight_lr: of the weight adapters; rank: of ``lora``;
    holdout / stop: fractions of the measured non-centre lines in the loss and early-stopping sets;
    input_weight: weight of the input-line term (0 by default: with it, adaptation lost more SSIM on validation
    volumes, results/tta_select); slices_per_step: slices per step (a seeded random subset
    of the volume); patience: steps without improvement before stopping; seed: line split, slice draws
    and adapter initialisation."""

    steps: int = 10
    params: str = "cascades"
    lr: float = 0.05
    weight_lr: float = 3e-5
    rank: int = 2
    holdout: float = 0.2
    stop: float = 0.1
    input_weight: float = 0.0
    slices_per_step: int = 2
    patience: int = 4
    seed: int = 0

    def sets(self) -> tuple[str, ...]:
        names = tuple(s for s in str(self.params).split("+") if s)
        unknown = set(names) - set(ADAPTER_SETS)
        if unknown or not names:
            raise ValueError(f"TTA params {self.params!r}: choose '+'-joined sets from {', '.join(ADAPTER_SETS)}")
        return names


@dataclass
class TTAReport:
    stop_error_before: float  # early-stopping-line error of the unadapted network
    stop_error_after: float  # the same with the kept adapters (= before when unused)
    loss_error_first: float  # held-out (loss-set) error at the first step
    loss_error_last: float
    best_step: int  # 0: no step helped
    steps_run: int
    used: bool = False  # False: the guardrail returned the unadapted reconstruction
    params: str = ""
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def _last_conv(module: nn.Module) -> nn.Conv2d:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"no convolution in {type(module).__name__}")
    return convs[-1]


def _names(net: nn.Module, modules: list[nn.Module], recurse: bool = True) -> list[str]:
    wanted = {id(p) for m in modules for p in m.parameters(recurse=recurse)}
    return [name for name, p in net.named_parameters() if id(p) in wanted]


def adapted_weights(net: nn.Module, sets: tuple[str, ...]) -> dict[str, list[str]]:
    """The parameter names each weight-adapter set touches (``lora``: the 3x3 convolutions' weights)."""
    decoder, encoder = getattr(net, "decoder", None), getattr(net, "encoder", None)
    if decoder is None or not hasattr(decoder, "cascades") or encoder is None:
        raise ValueError(
            f"test-time adaptation of {'+'.join(sets)} needs our codecs (encoder + decoder cascades); "
            f"{type(net).__name__} has none"
        )
    cascades = list(decoder.cascades)
    chosen: dict[str, list[str]] = {}
    if "heads" in sets:
        mods = [_last_conv(c) for c in cascades] + [decoder.head[-1]]
        chosen["heads"] = _names(net, mods) + _names(net, cascades, recurse=False)  # + dc_weight
    if "sens" in sets:
        chosen["sens"] = _names(net, [_last_conv(encoder.sens_net)])
    if "lora" in sets:
        convs = [m for c in cascades for m in c.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        chosen["lora"] = [n for n in _names(net, convs) if n.endswith("weight")]
    if "cascades" in sets:
        chosen["cascades"] = _names(net, cascades)
    return chosen


class Adapter(nn.Module):
    """Per-scan adapter tensors for ``net``; ``adapter(net, *args, **kw)`` runs ``net`` with them."""

    def __init__(self, net: nn.Module, cfg: TTAConfig) -> None:
        super().__init__()
        sets = cfg.sets()
        self.offsets: nn.Parameter | None = None
        if "trigger" in sets:
            backbone = getattr(net, "backbone", None)
            layers = backbone.num_trigger_layers if backbone is not None else 0
            if layers == 0:
                raise ValueError(
                    "test-time adaptation of the Trigger needs a backbone with Trigger layers (nirvana); backbone "
                    f"{getattr(backbone, 'name', None)!r} has none (choose other TTA params, e.g. 'cascades')"
                )
            self.offsets = nn.Parameter(torch.zeros(layers, 4, backbone.logit_dim))
        weights = adapted_weights(net, tuple(s for s in sets if s in WEIGHT_SETS))
        params = dict(net.named_parameters())
        gen = torch.Generator().manual_seed(cfg.seed)
        self.names: dict[str, str] = {}  # module-safe key -> parameter name
        self.delta, self.lora_a, self.lora_b = nn.ParameterDict(), nn.ParameterDict(), nn.ParameterDict()
        for set_name, names in weights.items():
            for name in names:
                key = name.replace(".", "__")
                if key in self.names:
                    continue
                self.names[key] = name
                w = params[name]
                if set_name == "lora":
                    fan_in = w[0].numel()
                    a = torch.randn(cfg.rank, fan_in, generator=gen) / fan_in**0.5
                    self.lora_a[key] = nn.Parameter(a.to(w))
                    self.lora_b[key] = nn.Parameter(torch.zeros(w.shape[0], cfg.rank, dtype=w.dtype, device=w.device))
                else:
                    self.delta[key] = nn.Parameter(torch.zeros_like(w))
        groups = [
            {"params": [self.offsets] if self.offsets is not None else [], "lr": cfg.lr},
            {"params": [*self.delta.values(), *self.lora_a.values(), *self.lora_b.values()], "lr": cfg.weight_lr},
        ]
        self.lr_groups = [g for g in groups if g["params"]]

    def overrides(self, net: nn.Module) -> dict[str, Tensor]:
        params = dict(net.named_parameters())
        out = {}
        for key, name in self.names.items():
            w = params[name]
            if key in self.delta:
                out[name] = w + self.delta[key]
            else:
                out[name] = w + (self.lora_b[key] @ self.lora_a[key]).view_as(w)
        return out

    def forward(self, net: nn.Module, *args: Any, **kwargs: Any) -> Tensor:
        if self.offsets is not None:
            kwargs["trigger_offsets"] = self.offsets
        if not self.names:
            return net(*args, **kwargs)
        return functional_call(net, self.overrides(net), args, kwargs, strict=False)


def scan_split(mask: np.ndarray, num_low_frequencies: int, cfg: TTAConfig) -> tuple[np.ndarray, ...]:
    """mask bool [W] -> (input, loss, stop) bool [W], seeded by ``cfg.seed``; the centre stays in the input."""
    gen = torch.Generator().manual_seed(cfg.seed)
    sets = split_lines(
        torch.from_numpy(np.asarray(mask, bool))[None], num_low_frequencies, (cfg.holdout, cfg.stop), gen
    )
    return tuple(s[0].numpy() for s in sets)


def adapt(
    net: nn.Module,
    kspace: Tensor,
    mask: np.ndarray,
    num_low_frequencies: int,
    cfg: TTAConfig,
    on_step: Callable[[str, int, int], None] | None = None,
) -> tuple[Adapter | None, TTAReport]:
    """Fit per-scan adapters on one volume.

    kspace: measured k-space [S,C,H,W,2] on the network's device (unsampled columns zero); mask: bool [W].
    ``on_step("adaptation step", step, cfg.steps)`` after every step. Returns (the adapter to reconstruct
    with, or None when the guardrail keeps the unadapted network; report)."""
    t0 = time.perf_counter()
    adapter = Adapter(net, cfg).to(kspace.device)
    device, S = kspace.device, kspace.shape[0]
    inp, loss_lines, stop_lines = (
        torch.from_numpy(m)[None].to(device) for m in scan_split(mask, num_low_frequencies, cfg)
    )
    rng = np.random.default_rng(cfg.seed + 1)
    stop_slices = np.sort(rng.choice(S, size=min(S, cfg.slices_per_step), replace=False))
    opt = torch.optim.Adam(adapter.lr_groups)
    trained = list(adapter.parameters())

    def predict(run: Callable[..., Tensor], slices: np.ndarray, lines: Tensor) -> Tensor:
        m = as_mask(lines).expand(len(slices), 1, 1, -1, 1)
        return run(kspace[slices] * m, m, num_low_frequencies, return_kspace=True)

    def stop_error(run: Callable[..., Tensor]) -> float:
        with torch.no_grad():
            pred = predict(run, stop_slices, inp | loss_lines)
            return float(heldout_error(pred, kspace[stop_slices], stop_lines.expand(len(stop_slices), -1)).mean())

    def adapted(*args: Any, **kw: Any) -> Tensor:
        return adapter(net, *args, **kw)

    before = best = stop_error(net)
    best_state, best_step, history = None, 0, []
    for step in range(1, cfg.steps + 1):
        slices = np.sort(rng.choice(S, size=min(S, cfg.slices_per_step), replace=False))
        pred = predict(adapted, slices, inp)
        n = len(slices)
        held = heldout_error(pred, kspace[slices], loss_lines.expand(n, -1)).mean()
        loss = held
        if cfg.input_weight:  # off by default; no k-space pass over the input lines then
            loss = loss + cfg.input_weight * heldout_error(pred, kspace[slices], inp.expand(n, -1)).mean()
        grads = torch.autograd.grad(loss, trained)  # only the adapters: no weight gets a gradient
        for p, g in zip(trained, grads, strict=True):
            p.grad = g
        opt.step()
        current = stop_error(adapted)
        history.append({"step": step, "loss_error": float(held.detach()), "stop_error": current})
        if on_step is not None:
            on_step("adaptation step", step, cfg.steps)
        if current < best:
            best, best_step = current, step
            best_state = {k: v.detach().clone() for k, v in adapter.state_dict().items()}
        elif step - best_step >= cfg.patience:
            break
    if best_state is not None:
        adapter.load_state_dict(best_state)
    adapter.requires_grad_(False)
    report = TTAReport(
        stop_error_before=before,
        stop_error_after=best,
        loss_error_first=history[0]["loss_error"] if history else float("nan"),
        loss_error_last=history[-1]["loss_error"] if history else float("nan"),
        best_step=best_step,
        steps_run=len(history),
        used=best_state is not None,
        params="+".join(cfg.sets()),
        seconds=time.perf_counter() - t0,
        history=history,
    )
    return (adapter if report.used else None), report
