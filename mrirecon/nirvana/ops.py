"""Pure-PyTorch kernels of the backbone (CPU and GPU): gated delta rule, short convolution, norms.

Shapes: B batch, T tokens, H heads, K key dim, V value dim, D channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK_SIZE = 64


def _compute_dtype(x: Tensor) -> torch.dtype:
    """float64 stays float64 (tests); everything else is computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def l2_normalize(x: Tensor, eps: float = 1e-6) -> Tensor:
    """x / sqrt(sum(x^2) + eps) over the last dim, computed in float32."""
    xf = x.to(_compute_dtype(x))
    return xf * torch.rsqrt(xf.pow(2).sum(-1, keepdim=True) + eps)


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """RMSNorm over the last dim with statistics in float32; result in x's dtype."""
    xf = x.to(_compute_dtype(x))
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (y * weight.to(xf.dtype)).to(x.dtype)


def gated_rms_norm(o: Tensor, gate: Tensor, weight: Tensor, eps: float) -> Tensor:
    """RMSNorm(o) * weight * silu(gate), all in float32; result in gate's dtype. o, gate: [..., K]."""
    ct = _compute_dtype(gate)
    of = o.to(ct)
    y = of * torch.rsqrt(of.pow(2).mean(-1, keepdim=True) + eps) * weight.to(ct)
    return (y * F.silu(gate.to(ct))).to(gate.dtype)


def short_conv(x: Tensor, weight: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Causal depthwise convolution + SiLU, as a sum of shifted copies in float32.

    x: [B,T,D]; weight: [D,1,W]; state: [B,D,W-1] the previous W-1 inputs (oldest first) or None (zeros).
    Returns (y [B,T,D] in x's dtype, new state [B,D,W-1]). Written as W shifted multiply-adds in the
    [B,T,D] layout rather than ``conv1d``, which needs channel-first copies and a slow depthwise kernel
    on GPUs; under ``torch.compile`` the whole function becomes one fused kernel.
    """
    T, width = x.shape[1], weight.shape[-1]
    if state is None:
        history = F.pad(x, (0, 0, width - 1, 0))  # [B, W-1+T, D]
    else:
        history = torch.cat([state.transpose(1, 2).to(x.dtype), x], dim=1)
    ct = _compute_dtype(x)
    w = weight[:, 0, :].to(ct)  # [D, W]
    y = history[:, :T].to(ct) * w[:, 0]
    for i in range(1, width):
        y = y + history[:, i : i + T].to(ct) * w[:, i]
    return F.silu(y).to(x.dtype), history[:, T:].transpose(1, 2)


def gated_delta_rule_recurrent(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Token-by-token gated delta rule (the test oracle).

    q, k: [B,T,H,K] (already L2-normalised); v: [B,T,H,V]; g: [B,T,H] log decay; beta: [B,T,H].
    State S [B,H,K,V]: S <- exp(g_t) S; S <- S + k_t (beta_t (v_t - S^T k_t))^T; o_t = S^T q_t / sqrt(K).
    Returns (o [B,T,H,V] in v's dtype, final state float32).
    """
    B, T, H, K = k.shape
    scale = K**-0.5
    out_dtype, ct = v.dtype, _compute_dtype(v)
    q, k, v, g, beta = (t.to(ct) for t in (q, k, v, g, beta))
    S = k.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state.to(ct).clone()
    out = []
    for t in range(T):
        S = S * g[:, t].exp()[..., None, None]
        u = beta[:, t, :, None] * (v[:, t] - torch.einsum("bhkv,bhk->bhv", S, k[:, t]))
        S = S + k[:, t, :, :, None] * u[:, :, None, :]
        out.append(torch.einsum("bhkv,bhk->bhv", S, q[:, t] * scale))
    return torch.stack(out, dim=1).to(out_dtype), S


def gated_delta_rule_chunked(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    beta: Tensor,
    initial_state: Tensor | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[Tensor, Tensor]:
    """Chunkwise-parallel gated delta rule, equal to :func:`gated_delta_rule_recurrent`.

    Inside a chunk with cumulative log decay G_r and start state S0, the updates u solve the
    unit-lower-triangular system (I + A) u = beta (v - e^{G} K S0) with
    A[r,s] = beta_r e^{G_r - G_s} k_r.k_s (s < r); outputs and the next state follow in closed form.
    The solve is done once for all chunks (u = u0 - W S0); only the cheap state pass is sequential.
    """
    B, T, H, K = k.shape
    Vd = v.shape[-1]
    C = chunk_size
    pad = (-T) % C
    out_dtype, ct = v.dtype, _compute_dtype(v)
    q, k, v, g, beta = (t.to(ct) for t in (q, k, v, g, beta))
    if pad:  # zero keys, values, gates and decays leave the state unchanged
        q, k, v = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (q, k, v))
        g, beta = (F.pad(t, (0, 0, 0, pad)) for t in (g, beta))
    N = (T + pad) // C
    # [B,H,N,C,*]
    q, k, v = (t.reshape(B, N, C, H, -1).permute(0, 3, 1, 2, 4) for t in (q, k, v))
    g, beta = (t.reshape(B, N, C, H).permute(0, 3, 1, 2) for t in (g, beta))
    q = q * K**-0.5
    G = g.cumsum(-1)  # [B,H,N,C]
    strict = torch.ones(C, C, dtype=torch.bool, device=k.device).tril(-1)
    incl = torch.ones(C, C, dtype=torch.bool, device=k.device).tril()
    diff = G[..., :, None] - G[..., None, :]  # G_r - G_s
    decay = torch.where(incl, diff, torch.full_like(diff, -torch.inf)).exp()  # 0 above the diagonal
    A = (k @ k.transpose(-1, -2)) * decay * beta[..., :, None]
    A = A.masked_fill(~strict, 0.0) + torch.eye(C, device=k.device)
    rhs = torch.cat([beta[..., None] * v, (beta * G.exp())[..., None] * k], dim=-1)
    sol = torch.linalg.solve_triangular(A, rhs, upper=False, unitriangular=True)
    u0, W = sol[..., :Vd], sol[..., Vd:]  # u = u0 - W S0
    attn = (q @ k.transpose(-1, -2)) * decay  # [B,H,N,C,C], includes the diagonal
    q_decayed = q * G.exp()[..., None]
    k_to_end = k * (G[..., -1:] - G).exp()[..., None]
    chunk_decay = G[..., -1].exp()  # [B,H,N]

    S = q.new_zeros(B, H, K, Vd) if initial_state is None else initial_state.to(ct)
    outs = []
    for n in range(N):
        u = u0[:, :, n] - W[:, :, n] @ S
        outs.append(q_decayed[:, :, n] @ S + attn[:, :, n] @ u)
        S = chunk_decay[:, :, n, None, None] * S + k_to_end[:, :, n].transpose(-1, -2) @ u
    o = torch.stack(outs, dim=2)  # [B,H,N,C,V]
    o = o.permute(0, 2, 3, 1, 4).reshape(B, N * C, H, Vd)[:, :T]
    return o.to(out_dtype), S


def fla_available() -> bool:
    """True when fla's Triton gated-delta-rule kernels can run here (CUDA present and fla importable)."""
    if not torch.cuda.is_available():
        return False
    try:
        import fla.ops.gated_delta_rule  # noqa: F401
    except Exception:
        return False
    return True


@torch.compiler.disable  # fla launches its own Triton kernels; torch.compile runs around them
def _fla_gated_delta_rule(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, initial_state: Tensor | None
) -> tuple[Tensor, Tensor]:
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule

    dtype = v.dtype if v.dtype != torch.float32 else torch.bfloat16
    o, S = chunk_gated_delta_rule(
        q.to(dtype),
        k.to(dtype),
        v.to(dtype),
        g.float(),
        beta.to(dtype),
        initial_state=None if initial_state is None else initial_state.float(),
        output_final_state=True,
    )
    return o.to(v.dtype), S


def gated_delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    beta: Tensor,
    initial_state: Tensor | None = None,
    backend: str = "torch",
) -> tuple[Tensor, Tensor]:
    """Dispatch the gated delta rule to an explicit backend.

    backend: ``torch`` (chunked pure PyTorch), ``recurrent`` (token loop) or ``fla`` (fla-core's
    chunked Triton kernel; CUDA only, non-float32 inputs). q, k must be L2-normalised already.
    """
    if backend == "torch":
        return gated_delta_rule_chunked(q, k, v, g, beta, initial_state)
    if backend == "recurrent":
        return gated_delta_rule_recurrent(q, k, v, g, beta, initial_state)
    if backend == "fla":
        return _fla_gated_delta_rule(q, k, v, g, beta, initial_state)
    raise ValueError(f"unknown gated delta rule backend {backend!r} (torch, recurrent, fla)")
