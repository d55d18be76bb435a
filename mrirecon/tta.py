"""Per-scan test-time adaptation of the Trigger (self-supervised, on the scan's own k-space).

The measured phase-encode lines of a scan are split, as ZS-SSL does, into an input set (always holding
the calibration centre), a loss set and an early-stopping set. A few Adam steps fit small scan-level
offsets to the Trigger's coefficients (one offset set per Trigger layer, or one shared) so that the
reconstruction from the input lines predicts the loss lines (plus a small term on the input lines).
The offsets with the lowest error on the early-stopping lines are kept (never worse than no adaptation
on those lines); the final reconstruction uses every measured line. No weight of the backbone or the
codecs changes: gradients are taken with respect to the offsets only, and the offsets are returned to
the caller, not stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn


@dataclass
class TTAConfig:
    """steps: optimiser steps (0 = off); lr: Adam step size; holdout / stop: fractions of the measured
    non-centre lines in the loss and early-stopping sets; input_weight: weight of the input-line term;
    shared: one offset set for all Trigger layers; slices_per_step: slices per step (a seeded random
    subset of the volume); patience: steps without improvement before stopping; seed: the line split and
    slice draws."""

    steps: int = 10
    lr: float = 0.05
    holdout: float = 0.2
    stop: float = 0.1
    input_weight: float = 0.1
    shared: bool = False
    slices_per_step: int = 2
    patience: int = 4
    seed: int = 0


@dataclass
class TTAReport:
    stop_error_before: float
    stop_error_after: float
    loss_error_first: float  # held-out (loss-set) error at the first step
    loss_error_last: float
    best_step: int
    steps_run: int
    history: list[dict[str, float]] = field(default_factory=list)


def split_lines(mask: np.ndarray, num_low_frequencies: int, cfg: TTAConfig) -> tuple[np.ndarray, ...]:
    """mask bool [W] -> (input, loss, stop) bool [W] masks; the centre lines always stay in the input."""
    W = mask.size
    centre = np.zeros(W, dtype=bool)
    lo = (W - num_low_frequencies + 1) // 2
    centre[lo : lo + num_low_frequencies] = True
    candidates = np.flatnonzero(mask & ~centre)
    rng = np.random.default_rng(cfg.seed)
    rng.shuffle(candidates)
    n_loss = max(1, int(round(cfg.holdout * candidates.size)))
    n_stop = max(1, int(round(cfg.stop * candidates.size)))
    loss, stop = np.zeros(W, bool), np.zeros(W, bool)
    loss[candidates[:n_loss]] = True
    stop[candidates[n_loss : n_loss + n_stop]] = True
    return mask & ~loss & ~stop, loss, stop


def _as_mask(columns: np.ndarray, device: torch.device) -> Tensor:
    return torch.from_numpy(columns).view(1, 1, 1, -1, 1).to(device)


def _relative_error(pred: Tensor, ref: Tensor, lines: Tensor) -> Tensor:
    return ((pred - ref) * lines).abs().sum() / (ref * lines).abs().sum().clamp_min(1e-20)


def adapt(
    net: nn.Module,
    kspace: Tensor,
    mask: np.ndarray,
    num_low_frequencies: int,
    cfg: TTAConfig,
    on_step: Callable[[str, int, int], None] | None = None,
) -> tuple[Tensor, TTAReport]:
    """Fit scan-level Trigger offsets on one volume.

    kspace: measured k-space [S,C,H,W,2] on the network's device (unsampled columns zero);
    mask: bool [W]; ``on_step("adaptation step", step, cfg.steps)`` after every step.
    Returns (offsets [num_trigger_layers, 4, r] for ``net(..., trigger_offsets=)``, report).
    """
    backbone = getattr(net, "backbone", None)
    layers = backbone.num_trigger_layers if backbone is not None else 0
    if layers == 0:
        name = getattr(backbone, "name", None)
        raise ValueError(
            f"test-time adaptation needs a backbone with Trigger layers (nirvana); backbone {name!r} has none"
        )
    device = kspace.device
    mask = np.asarray(mask, dtype=bool)
    inp, loss_lines, stop_lines = split_lines(mask, num_low_frequencies, cfg)
    m_in, m_loss, m_stop = (_as_mask(x, device) for x in (inp, loss_lines, stop_lines))
    m_in_loss = _as_mask(inp | loss_lines, device)
    S = kspace.shape[0]
    rng = np.random.default_rng(cfg.seed + 1)
    stop_slices = np.sort(rng.choice(S, size=min(S, cfg.slices_per_step), replace=False))
    param = torch.zeros(1 if cfg.shared else layers, 4, backbone.logit_dim, device=device, requires_grad=True)
    opt = torch.optim.Adam([param], lr=cfg.lr)

    def predict(slices: np.ndarray, lines: Tensor, offsets: Tensor) -> Tensor:
        k = kspace[slices]
        m = lines.expand(len(slices), 1, 1, -1, 1)
        return net(k * m, m, num_low_frequencies, trigger_offsets=offsets, return_kspace=True)

    def stop_error(offsets: Tensor) -> float:
        with torch.no_grad():
            pred = predict(stop_slices, m_in_loss, offsets)
            return float(_relative_error(pred, kspace[stop_slices], m_stop))

    best_offsets = param.detach().expand(layers, -1, -1).clone()
    before = best = stop_error(best_offsets)
    best_step, history = 0, []
    for step in range(1, cfg.steps + 1):
        slices = np.sort(rng.choice(S, size=min(S, cfg.slices_per_step), replace=False))
        offsets = param.expand(layers, -1, -1)
        pred = predict(slices, m_in, offsets)
        held = _relative_error(pred, kspace[slices], m_loss)
        loss = held + cfg.input_weight * _relative_error(pred, kspace[slices], m_in)
        (grad,) = torch.autograd.grad(loss, param)  # only the offsets: no weight gets a gradient
        param.grad = grad
        opt.step()
        current = stop_error(param.detach().expand(layers, -1, -1))
        history.append({"step": step, "loss_error": float(held.detach()), "stop_error": current})
        if on_step is not None:
            on_step("adaptation step", step, cfg.steps)
        if current < best:
            best, best_step = current, step
            best_offsets = param.detach().expand(layers, -1, -1).clone()
        elif step - best_step >= cfg.patience:
            break
    report = TTAReport(
        stop_error_before=before,
        stop_error_after=best,
        loss_error_first=history[0]["loss_error"] if history else float("nan"),
        loss_error_last=history[-1]["loss_error"] if history else float("nan"),
        best_step=best_step,
        steps_run=len(history),
        history=history,
    )
    return best_offsets, report
