"""Self-supervision from a scan's own k-space: split its measured lines, predict the held-out ones.

The measured phase-encode lines are split (as ZS-SSL does) into an input set, which always keeps the
calibration centre, and one or more held-out sets. A network that sees only the input lines is scored by
how well its k-space predicts the held-out lines. Training uses it as an auxiliary loss
(:class:`mrirecon.training.module.ReconModule`, ``ssl_weight``) and test-time adaptation as its objective
(:mod:`mrirecon.adapt.tta`), so that the two measure the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mrirecon.physics import centre_lines


def split_lines(
    mask: Tensor,
    num_low_frequencies: Tensor | int,
    fractions: Sequence[float],
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """mask bool [B,W] -> [input, held_1, ..., held_k], each bool [B,W]: disjoint, their union is ``mask``.

    held_i receives round(fractions[i] * n) of the n measured non-centre lines of each row (at least one
    while any are left), drawn at random; the centre lines always stay in the input."""
    B, W = mask.shape
    nlf = torch.as_tensor(num_low_frequencies, device=mask.device).reshape(-1).expand(B)
    free = mask & ~centre_lines(W, nlf)
    # a seeded generator draws on the CPU (same split on every device); otherwise draw where the mask is
    scores = torch.rand(B, W, generator=generator, device="cpu" if generator else mask.device).to(mask.device)
    scores = torch.where(free, scores, torch.full_like(scores, 2.0))
    rank = scores.argsort(dim=1).argsort(dim=1)  # position of each column among the row's free lines
    n_free = free.sum(dim=1, keepdim=True)
    held, start = [], torch.zeros_like(n_free)
    for f in fractions:
        count = torch.clamp((f * n_free).round().long(), min=1)
        count = torch.minimum(count, n_free - start).clamp_min(0)
        held.append(free & (rank >= start) & (rank < start + count))
        start = start + count
    taken = torch.stack(held).any(dim=0) if held else torch.zeros_like(mask)
    return [mask & ~taken, *held]


def heldout_error(pred: Tensor, measured: Tensor, lines: Tensor) -> Tensor:
    """Relative L1 error of predicted coil k-space on the given lines, per sample.

    pred, measured [B,C,H,W,2]; lines bool [B,W] -> [B]."""
    sel = lines.view(lines.shape[0], 1, 1, -1, 1).to(pred.dtype)
    num = ((pred - measured) * sel).abs().flatten(1).sum(1)
    den = (measured * sel).abs().flatten(1).sum(1).clamp_min(1e-20)
    return num / den


def as_mask(lines: Tensor) -> Tensor:
    """bool [B,W] -> the networks' mask layout bool [B,1,1,W,1]."""
    return lines.view(lines.shape[0], 1, 1, -1, 1)
