"""A SENSE reconstruction pulled toward a prior image: the Tikhonov-regularised least squares

    x = argmin_x ||A x - y||^2 + w ||x - p||^2,   i.e.   (A^H A + w I) x = A^H y + w p,

solved by conjugate gradients (A = M F S, :mod:`.consistency`). The penalty may instead weigh each k-space
frequency, sum_k w(k) |F (x - p)(k)|^2, as a Wiener filter does. Batched: every sample has its own step sizes, and
a fixed number of iterations with no host synchronisation, so it runs under autograd and CUDA graphs alike.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .consistency import adjoint_op, forward_op
from .fft import fft2c, ifft2c

__all__ = ["sense_toward_prior"]


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Real inner product per sample of real-view complex tensors [B, ...] -> [B, 1, 1, 1, 1]."""
    return (a * b).flatten(1).sum(1).view(-1, 1, 1, 1, 1)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den, 0 where den is 0 (a sample already solved exactly, or one with no data)."""
    safe = den != 0
    return torch.where(safe, num / torch.where(safe, den, torch.ones_like(den)), torch.zeros_like(num))


def sense_toward_prior(
    measured: Tensor,
    sens: Tensor,
    mask: Tensor,
    prior: Tensor,
    weight: Tensor | float,
    iterations: int,
    kspace_weight: bool = False,
) -> Tensor:
    """measured [B,C,H,W,2] (zero off the mask), sens [B,C,H,W,2], mask bool broadcastable to measured, prior
    [B,1,H,W,2], weight w > 0 (scalar or broadcastable to [B,1,1,1,1]; with ``kspace_weight``, w(k) broadcastable
    to [B,1,H,W,1], the penalty's weight per k-space frequency) -> x [B,1,H,W,2], starting from the prior."""

    def penalty(x: Tensor) -> Tensor:
        return ifft2c(weight * fft2c(x)) if kspace_weight else weight * x

    def normal(x: Tensor) -> Tensor:
        return adjoint_op(forward_op(x, sens, mask), sens, mask) + penalty(x)

    x = prior
    r = adjoint_op(measured, sens, mask) + penalty(prior) - normal(x)
    p, rr = r, _dot(r, r)
    for _ in range(iterations):
        q = normal(p)
        alpha = _ratio(rr, _dot(p, q))
        x = x + alpha * p
        r = r - alpha * q
        rr_next = _dot(r, r)
        p = r + _ratio(rr_next, rr) * p
        rr = rr_next
    return x
