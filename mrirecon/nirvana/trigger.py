"""The Task-Aware Memory Trigger: a weight bank shared by all layers and per-token fast coefficients.

Each token carries four coefficient vectors p = (alpha, gamma, kappa, delta), each [.., r], that mix
the bank into a fast residual map on the concept space (c channels):

    f(x) = g * LN(x W + b) + e + x,   W = sum_l U[:,:,l] alpha_l,  g = G gamma,  b = Bb kappa,  e = Dd delta

In each layer from the third on, one closed-form gradient step on 1/2 ||f(c_k) - c_v||^2 updates p
(the LayerNorm backward treats mean and std as constants, as the reference does), and the prediction
h = f'(c_q) steers the mixer. Per-token 64x64 fast matrices are never built: the bank is contracted
with the input first ([.., c, r]).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

LN_EPS = 1e-6


class TriggerCoefficients(NamedTuple):
    """Fast coefficients, each [B, T, r] (``token``), [B, 1, r] (``scan``) or [1, 1, r] (initial)."""

    alpha: Tensor  # mixes the fast linear map
    gamma: Tensor  # mixes the fast LayerNorm gain
    kappa: Tensor  # mixes the fast linear bias
    delta: Tensor  # mixes the fast LayerNorm bias

    def __add__(self, other: object) -> TriggerCoefficients:  # type: ignore[override]
        if not isinstance(other, Tensor):
            return NotImplemented
        # other: [4, r] or [B, 4, r] offsets
        if other.dim() == 2:
            other = other[None]
        return TriggerCoefficients(*(p + other[:, None, i].to(p.dtype) for i, p in enumerate(self)))


class _FastState(NamedTuple):
    x_bank: Tensor  # [B,T,c,r] input contracted with the linear bank
    gain: Tensor  # [B,T,c]
    z_hat: Tensor  # [B,T,c] normalised pre-activation
    sigma: Tensor  # [B,T,1]
    out: Tensor  # f(x) [B,T,c]


class TriggerBank(nn.Module):
    """The shared bank (official module name ``rnn_router``) and the Learn / Predict steps."""

    def __init__(self, concept_dim: int = 64, logit_dim: int = 32) -> None:
        super().__init__()
        c, r = concept_dim, logit_dim
        self.weight_linear = nn.Parameter(torch.empty(c, c, r))  # U[i, o, l]
        self.weight_ln = nn.Parameter(torch.empty(c, r))  # G[o, l]
        self.bias_linear = nn.Parameter(torch.empty(c, r))  # Bb[o, l]
        self.bias_ln = nn.Parameter(torch.empty(c, r))  # Dd[o, l]

    @torch.no_grad()
    def reset_parameters(self, std: float, generator: torch.Generator | None = None) -> None:
        """The reference init, with the bias_ln bank set to zero (the reference leaves it uninitialised)."""
        r = self.weight_ln.shape[1]
        self.weight_linear.copy_(torch.randn(self.weight_linear.shape, generator=generator) * std)
        self.weight_ln.fill_(1.0 / r)
        self.bias_linear.copy_(torch.randn(self.bias_linear.shape, generator=generator) * std / r)
        self.bias_ln.zero_()

    def initial(self, dtype: torch.dtype, device: torch.device) -> TriggerCoefficients:
        """All-ones coefficients [1, 1, r] (broadcast over batch and tokens)."""
        ones = torch.ones(1, 1, self.weight_ln.shape[1], dtype=dtype, device=device)
        return TriggerCoefficients(ones, ones, ones, ones)

    def _fast(self, x: Tensor, p: TriggerCoefficients) -> _FastState:
        c, _, r = self.weight_linear.shape
        U = self.weight_linear.to(x.dtype)
        xU = (x @ U.reshape(c, c * r)).unflatten(-1, (c, r))  # [B,T,c,r]
        # Per-token contractions as multiply + sum: batched 64x32 matrix-vector products run as tiny GEMMs.
        z = (xU * p.alpha.unsqueeze(-2)).sum(-1) + p.kappa @ self.bias_linear.to(x.dtype).T
        var, mean = torch.var_mean(z, dim=-1, unbiased=False, keepdim=True)
        sigma = torch.sqrt(var + LN_EPS)
        z_hat = (z - mean) / sigma
        gain = p.gamma @ self.weight_ln.to(x.dtype).T
        out = gain * z_hat + p.delta @ self.bias_ln.to(x.dtype).T + x
        return _FastState(xU, gain, z_hat, sigma, out)

    def learn(
        self, k: Tensor, v: Tensor, p: TriggerCoefficients, lr: float, share_over_tokens: bool = False
    ) -> TriggerCoefficients:
        """One gradient step of 1/2 ||f(k) - v||^2 on the coefficients.

        k, v: [B,T,c]. With ``share_over_tokens`` the gradient is averaged over T and applied to one
        coefficient set per sequence ([B,1,r]); otherwise each token gets its own step ([B,T,r]).
        """
        dt = k.dtype
        fs = self._fast(k, p)
        err = fs.out - v  # [B,T,c]
        g_z = fs.gain * err / fs.sigma  # approximate dL/dz
        grads = (
            (fs.x_bank * g_z.unsqueeze(-1)).sum(-2),  # alpha
            (err * fs.z_hat) @ self.weight_ln.to(dt),  # gamma
            g_z @ self.bias_linear.to(dt),  # kappa
            err @ self.bias_ln.to(dt),  # delta
        )
        if share_over_tokens:
            grads = tuple(g.mean(dim=1, keepdim=True) for g in grads)
        return TriggerCoefficients(*(pi - lr * gi for pi, gi in zip(p, grads, strict=True)))

    def predict(self, q: Tensor, p: TriggerCoefficients) -> Tensor:
        """h = f(q) with the fast weights of p. q: [B,T,c] -> [B,T,c]."""
        return self._fast(q, p).out
