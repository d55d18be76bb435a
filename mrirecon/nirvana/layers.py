"""The backbone's layers: the task-aware token mixer, the SwiGLU MLP and the pre-norm block.

Attribute names follow the official checkpoint (``Task_Aware_Delta_Net``, ``q_lora.0``, ...), so the
module's ``state_dict`` keys are the official tensor names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import NirvanaConfig
from .ops import gated_delta_rule, gated_rms_norm, l2_normalize, rms_norm, short_conv
from .trigger import TriggerBank, TriggerCoefficients


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)


class ShortConv(nn.Module):
    """Depthwise causal convolution weight [D, 1, W] (no bias); the maths is :func:`ops.short_conv`."""

    def __init__(self, dim: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, 1, width))

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return short_conv(x, self.weight, state)


def _low_rank(dim: int, rank: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, rank, bias=False), nn.Linear(rank, dim, bias=False))


@dataclass
class LayerState:
    """Recurrent inference state of one layer for a batch of sequences."""

    conv_q: Tensor  # [B, D, W-1] last pre-conv inputs, oldest first
    conv_k: Tensor
    conv_v: Tensor
    delta: Tensor  # [B, H, K, V] float32 gated-delta state
    attn_k: Tensor | None = None  # [B, H, T_past, d] (layers with attention)
    attn_v: Tensor | None = None

    @property
    def seen_tokens(self) -> int:
        return 0 if self.attn_k is None else self.attn_k.shape[2]


@dataclass
class MixerOutput:
    out: Tensor  # [B,T,D]
    coefficients: TriggerCoefficients | None
    state: LayerState | None
    h: Tensor | None = None  # Trigger prediction [B,T,c]
    gate_attn: Tensor | None = None  # t   [B,T,1]
    gate_gdn: Tensor | None = None  # t_b [B,T,1]


class TaskAwareDeltaNet(nn.Module):
    """Token mixer: a gated-DeltaNet branch in every layer; from layer ``num_prelude_layers`` on also a
    causal softmax-attention branch, the Trigger step and the gated combination of both branches."""

    def __init__(self, config: NirvanaConfig, layer_idx: int) -> None:
        super().__init__()
        D, H = config.hidden_size, config.num_heads
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads, self.head_dim = H, config.head_dim
        self.has_trigger = layer_idx >= config.num_prelude_layers
        for name in ("q_proj", "k_proj", "v_proj", "g_proj", "o_proj"):
            setattr(self, name, nn.Linear(D, D, bias=False))
        self.b_proj = nn.Linear(D, H, bias=False)
        self.a_proj = nn.Linear(D, H, bias=False)
        self.A_log = nn.Parameter(torch.empty(H))
        self.dt_bias = nn.Parameter(torch.empty(H))
        self.q_conv1d = ShortConv(D, config.conv_size)
        self.k_conv1d = ShortConv(D, config.conv_size)
        self.v_conv1d = ShortConv(D, config.conv_size)
        self.o_norm = RMSNorm(self.head_dim, config.norm_eps)
        if self.has_trigger:
            c = config.concept_dim
            self.concept_proj = nn.Linear(D, 3 * c, bias=False)
            self.t_proj = nn.Linear(c, 1, bias=False)
            self.t2_proj = nn.Linear(c, 1, bias=False)
            self.q_lora = _low_rank(D, D // 16)
            self.k_lora = _low_rank(D, D // 16)
            self.v_lora = _low_rank(D, D // 16)
            self.o_proj_attn = _low_rank(D, D // 8)
            self.condition_interpolation = nn.Module()
            self.condition_interpolation.lora = nn.Sequential(
                nn.Linear(2 * D + 2 * c, D // 8, bias=False), nn.SiLU(), nn.Linear(D // 8, D, bias=False)
            )
        # Set by fuse_projections(): every projection of u in one weight (not saved with the state dict).
        self.register_buffer("fused_in_weight", None, persistent=False)

    def input_projections(self) -> list[str]:
        """Submodules that project the normalised input u, in the order of the fused weight."""
        names = ["q_proj", "k_proj", "v_proj", "g_proj", "b_proj", "a_proj"]
        if self.has_trigger:
            names += ["concept_proj", "q_lora.0", "k_lora.0", "v_lora.0"]
        return names

    @torch.no_grad()
    def fuse_projections(self) -> None:
        """Concatenate the input projections into one matrix so that inference runs one large matrix
        product instead of ten small ones. A copy: call again after the weights change."""
        weights = [self.get_submodule(n).weight for n in self.input_projections()]
        self.fused_in_weight = torch.cat(weights).detach()
        self._fused_sizes = [w.shape[0] for w in weights]

    def _project(self, u: Tensor) -> dict[str, Tensor]:
        """u [B,T,D] -> {projection name: [B,T,out]}."""
        names = self.input_projections()
        if self.fused_in_weight is None:
            return {n: self.get_submodule(n)(u) for n in names}
        parts = F.linear(u, self.fused_in_weight.to(u.dtype)).split(self._fused_sizes, dim=-1)
        return dict(zip(names, parts, strict=True))

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim))

    def forward(
        self,
        u: Tensor,
        coefficients: TriggerCoefficients | None,
        trigger: TriggerBank,
        state: LayerState | None = None,
        use_cache: bool = False,
        trigger_mode: str = "token",
        trigger_offset: Tensor | None = None,
        backend: str = "torch",
    ) -> MixerOutput:
        """u: [B,T,D] normalised input; coefficients: the Trigger state coming from the previous layer."""
        cfg = self.config
        proj = self._project(u)
        q_pre, k_pre, v_pre = proj["q_proj"], proj["k_proj"], proj["v_proj"]

        # Gated DeltaNet branch.
        q, conv_q = self.q_conv1d(q_pre, None if state is None else state.conv_q)
        k, conv_k = self.k_conv1d(k_pre, None if state is None else state.conv_k)
        v, conv_v = self.v_conv1d(v_pre, None if state is None else state.conv_v)
        beta = torch.sigmoid(proj["b_proj"])
        gt = torch.float64 if u.dtype == torch.float64 else torch.float32  # the decay is never low precision
        g = -self.A_log.to(gt).exp() * F.softplus(proj["a_proj"].to(gt) + self.dt_bias.to(gt))
        if backend == "torch" and u.shape[1] == 1:
            backend = "recurrent"  # a single decode step: the loop is the cheap exact path
        o, S = gated_delta_rule(
            l2_normalize(self._heads(q)).to(q.dtype),
            l2_normalize(self._heads(k)).to(k.dtype),
            self._heads(v),
            g,
            beta,
            None if state is None else state.delta,
            backend=backend,
        )
        o = gated_rms_norm(o, self._heads(proj["g_proj"]), self.o_norm.weight, cfg.norm_eps)
        o_gdn = self.o_proj(o.flatten(-2))

        new_state = LayerState(conv_q, conv_k, conv_v, S) if use_cache else None
        if not self.has_trigger:
            return MixerOutput(o_gdn, trigger.initial(u.dtype, u.device), new_state)

        # Attention branch: the pre-conv projections plus low-rank corrections, no positional code.
        qa = self._heads(q_pre + self.q_lora[1](proj["q_lora.0"])).transpose(1, 2)  # [B,H,T,d]
        ka = self._heads(k_pre + self.k_lora[1](proj["k_lora.0"])).transpose(1, 2)
        va = self._heads(v_pre + self.v_lora[1](proj["v_lora.0"])).transpose(1, 2)
        if state is not None and state.attn_k is not None:
            ka = torch.cat([state.attn_k, ka], dim=2)
            va = torch.cat([state.attn_v, va], dim=2)
        if use_cache:
            new_state.attn_k, new_state.attn_v = ka, va
        o_attn = _causal_attention(qa, ka, va, cfg.attention_window)
        o_attn = self.o_proj_attn(o_attn.transpose(1, 2).flatten(-2))

        # Trigger: one inner step on this layer's (c_k, c_v), then the prediction h from c_q.
        c_q, c_k, c_v = proj["concept_proj"].chunk(3, dim=-1)
        p = coefficients if coefficients is not None else trigger.initial(u.dtype, u.device)
        if trigger_offset is not None:
            p = p + trigger_offset
        if trigger_mode != "off":
            p = trigger.learn(c_k, c_v, p, cfg.trigger_lr, share_over_tokens=trigger_mode == "scan")
        h = trigger.predict(c_q, p)
        t = torch.sigmoid(self.t_proj(h))  # weighs the attention branch
        t_b = torch.sigmoid(self.t2_proj(h))  # weighs the gated-DeltaNet branch (independent of t)
        zeta = self.condition_interpolation.lora(torch.cat([o_gdn, o_attn, h, h], dim=-1))
        out = t_b * o_gdn + t * o_attn + (t * t_b) * zeta
        return MixerOutput(out, p, new_state, h, t, t_b)


def _causal_attention(q: Tensor, k: Tensor, v: Tensor, window: int | None) -> Tensor:
    """Softmax attention, scale 1/sqrt(d), queries aligned to the end of the keys. [B,H,Tq|Tk,d]."""
    Tq, Tk = q.shape[2], k.shape[2]
    if window is None and Tq == Tk:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if window is None and Tq == 1:
        return F.scaled_dot_product_attention(q, k, v)
    qpos = torch.arange(Tk - Tq, Tk, device=q.device)[:, None]
    kpos = torch.arange(Tk, device=q.device)[None, :]
    allowed = kpos <= qpos
    if window is not None:
        allowed &= kpos > qpos - window
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


class SwiGLU(nn.Module):
    """(silu(a) * b) W_down with [a | b] = x W_gate (the official fused gate/up projection)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, 2 * hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.gate_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(a) * b)


class NirvanaBlock(nn.Module):
    """x <- x + Mixer(RMSNorm(x)); x <- x + MLP(RMSNorm(x)); residual adds in float32."""

    def __init__(self, config: NirvanaConfig, layer_idx: int) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.Task_Aware_Delta_Net = TaskAwareDeltaNet(config, layer_idx)
        self.mlp_norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.mlp = SwiGLU(config.hidden_size, config.mlp_size)

    @property
    def mixer(self) -> TaskAwareDeltaNet:
        return self.Task_Aware_Delta_Net

    def forward(self, x: Tensor, coefficients: TriggerCoefficients | None, trigger: TriggerBank, **kw):
        mix = self.mixer(self.attn_norm(x), coefficients, trigger, **kw)
        s = x + mix.out if x.dtype == torch.float64 else (x.float() + mix.out.float()).to(x.dtype)
        return s + self.mlp(self.mlp_norm(s)), mix
