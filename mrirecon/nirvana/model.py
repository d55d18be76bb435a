"""The Nirvana backbone: embeddings -> blocks -> final norm, and the causal LM with weight loading."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ..io.files import write_atomically
from .config import NirvanaConfig
from .layers import LayerState, NirvanaBlock, RMSNorm
from .trigger import TriggerBank


@dataclass
class NirvanaCache:
    """Per-layer recurrent state for prefill + token-by-token decoding."""

    layers: list[LayerState | None]

    @property
    def seen_tokens(self) -> int:
        return max((s.seen_tokens for s in self.layers if s is not None), default=0)


@dataclass
class TriggerTrace:
    """What the Trigger did in one layer: prediction h [B,T,c] and the gates t, t_b [B,T,1]."""

    layer: int
    h: Tensor
    gate_attn: Tensor
    gate_gdn: Tensor


@dataclass
class NirvanaOutput:
    last_hidden_state: Tensor  # [B,T,D] after the final norm
    hidden_states: tuple[Tensor, ...] | None = None  # embeddings, each block's output (last one normed)
    cache: NirvanaCache | None = None
    logits: Tensor | None = None  # [B,T,V] (causal LM only)
    trigger_trace: list[TriggerTrace] = field(default_factory=list)
    mixer_outputs: tuple[Tensor, ...] | None = None  # each layer's mixer output, before the residual


class NirvanaModel(nn.Module):
    """The backbone trunk. Accepts ``input_ids [B,T]`` or ``inputs_embeds [B,T,D]``.

    ``trigger`` (``token`` | ``off`` | ``scan``) defaults to ``config.trigger``; ``backend`` picks the
    gated-delta-rule kernel (``torch`` chunked, ``recurrent`` loop, or ``fla`` on CUDA).
    """

    def __init__(self, config: NirvanaConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.layers = nn.ModuleList(NirvanaBlock(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.rnn_router = TriggerBank(config.concept_dim, config.logit_dim)
        self.backend = "torch"

    @property
    def num_trigger_layers(self) -> int:
        return self.config.num_hidden_layers - self.config.num_prelude_layers

    def forward(
        self,
        input_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        cache: NirvanaCache | None = None,
        use_cache: bool = False,
        output_hidden_states: bool = False,
        output_trigger: bool = False,
        output_mixer: bool = False,
        trigger: str | None = None,
        trigger_offsets: Tensor | None = None,
    ) -> NirvanaOutput:
        """trigger_offsets: [num_trigger_layers, 4, r] or [B, num_trigger_layers, 4, r], added to the
        Trigger coefficients entering each layer that has a Trigger (used by test-time adaptation)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        mode = trigger or self.config.trigger
        use_cache = use_cache or cache is not None
        states: list[LayerState | None] = list(cache.layers) if cache else [None] * len(self.layers)
        hidden, mixers, traces = [x], [], []
        p = None
        for i, block in enumerate(self.layers):
            offset = None
            if trigger_offsets is not None and block.mixer.has_trigger:
                offset = trigger_offsets[..., i - self.config.num_prelude_layers, :, :]
            x, mix = block(
                x,
                p,
                self.rnn_router,
                state=states[i],
                use_cache=use_cache,
                trigger_mode=mode,
                trigger_offset=offset,
                backend=self.backend,
            )
            p, states[i] = mix.coefficients, mix.state
            if output_hidden_states:
                hidden.append(x)
            if output_mixer:
                mixers.append(mix.out)
            if output_trigger and mix.h is not None:
                traces.append(TriggerTrace(i, mix.h, mix.gate_attn, mix.gate_gdn))
        x = self.norm(x)
        if output_hidden_states:  # Hugging Face convention: the last entry is after the final norm
            hidden[-1] = x
        return NirvanaOutput(
            last_hidden_state=x,
            hidden_states=tuple(hidden) if output_hidden_states else None,
            cache=NirvanaCache(states) if use_cache else None,
            trigger_trace=traces,
            mixer_outputs=tuple(mixers) if output_mixer else None,
        )

    def fuse_projections(self) -> NirvanaModel:
        """Inference speed-up: one matrix product for all projections of each layer's input (a copy of
        the frozen weights, outside the state dict; exact up to float rounding)."""
        for block in self.layers:
            block.mixer.fuse_projections()
        return self

    def compile_blocks(self, **compile_kwargs) -> NirvanaModel:
        """Compile each block with ``torch.compile`` in place (regional compilation: the blocks share two
        compiled graphs, prelude and Trigger layers, so compiling costs two blocks, not all of them)."""
        for block in self.layers:
            block.compile(**compile_kwargs)
        return self

    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None) -> None:
        """Seeded random initialisation following the reference's effective scheme, with the intended
        zero init of the low-rank second factors and of zeta's output layer (nirvana-backbone.md §15)."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        std = self.config.initializer_range

        def normal(t: Tensor, s: float) -> None:
            t.copy_(torch.randn(t.shape, generator=gen) * s)

        def xavier(t: Tensor, gain: float) -> None:
            bound = gain * math.sqrt(6.0 / (t.shape[0] + t.shape[1]))
            t.copy_((torch.rand(t.shape, generator=gen) * 2 - 1) * bound)

        normal(self.embeddings.weight, std)
        if self.config.pad_token_id is not None:
            self.embeddings.weight[self.config.pad_token_id].zero_()
        for name, param in self.named_parameters():
            if name.startswith(("embeddings", "rnn_router")):
                continue
            leaf = name.rsplit(".", 1)[0]
            if name.endswith(("norm.weight",)):
                param.fill_(1.0)
            elif name.endswith("conv1d.weight"):
                bound = 1.0 / math.sqrt(param.shape[-1])
                param.copy_((torch.rand(param.shape, generator=gen) * 2 - 1) * bound)
            elif name.endswith("A_log"):
                param.copy_(torch.log(torch.rand(param.shape, generator=gen) * 16).clamp_min(-20))
            elif name.endswith("dt_bias"):
                lo, hi = math.log(1e-3), math.log(0.1)
                dt = torch.exp(torch.rand(param.shape, generator=gen) * (hi - lo) + lo).clamp_min(1e-4)
                param.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
            elif leaf.endswith(("lora.1", "o_proj_attn.1", "condition_interpolation.lora.2")):
                param.zero_()
            elif leaf.endswith(("lora.0", "o_proj_attn.0")) or ".mlp." in name:
                normal(param, std)
            else:  # q/k/v/g/o/a/b projections, concept_proj, t_proj, t2_proj, zeta's first layer
                xavier(param, 2**-2.5)
        self.rnn_router.reset_parameters(std, gen)


def freeze(module: nn.Module) -> nn.Module:
    """Set ``requires_grad=False`` on every parameter and switch to eval mode (gradients still flow to
    the inputs)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class NirvanaForCausalLM(nn.Module):
    """Backbone + LM head; Hugging Face-style ``from_pretrained`` / ``save_pretrained``."""

    WEIGHTS_NAME = "model.safetensors"
    CONFIG_NAME = "config.json"

    def __init__(self, config: NirvanaConfig) -> None:
        super().__init__()
        self.config = config
        self.model = NirvanaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embeddings.weight

    @classmethod
    def from_config(cls, config: NirvanaConfig, seed: int = 0, dtype: torch.dtype = torch.float32):
        """A model with the seeded random initialisation (no official weights)."""
        torch.manual_seed(seed)
        model = cls(config)
        model.model.reset_parameters(seed)
        if not config.tie_word_embeddings:
            with torch.no_grad():
                gen = torch.Generator().manual_seed(seed + 1)
                model.lm_head.weight.copy_(torch.randn(model.lm_head.weight.shape, generator=gen) * 0.006)
        return model.to(dtype)

    def forward(self, input_ids: Tensor | None = None, inputs_embeds: Tensor | None = None, **kw):
        out = self.model(input_ids=input_ids, inputs_embeds=inputs_embeds, **kw)
        out.logits = self.lm_head(out.last_hidden_state)
        return out

    # ------------------------------------------------------------------ weights
    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        **config_overrides,
    ) -> NirvanaForCausalLM:
        """Load ``config.json`` + ``model.safetensors`` (official key names) strictly.

        A missing, unexpected or wrongly shaped tensor is an error naming it. Head policy: a file that
        carries ``lm_head.weight`` keeps its own head (untied), whatever the config says; a file
        without one ties the head to the embeddings.
        """
        from safetensors import SafetensorError, safe_open

        directory = Path(directory)
        cfg_path, w_path = directory / cls.CONFIG_NAME, directory / cls.WEIGHTS_NAME
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise FileNotFoundError(
                    f"{p}: not found (a backbone directory needs config.json and {cls.WEIGHTS_NAME})"
                )
        config = NirvanaConfig.from_json_file(cfg_path)
        try:
            with safe_open(str(w_path), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{w_path}: not a readable safetensors file ({e})") from e
        config.tie_word_embeddings = "lm_head.weight" not in tensors
        for k, v in config_overrides.items():
            setattr(config, k, v)
        config.__post_init__()
        with torch.device("meta"):
            model = cls(config)
        expected = dict(model.state_dict())
        if config.tie_word_embeddings:
            expected.pop("lm_head.weight", None)
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing:
            raise ValueError(f"{w_path}: missing tensor(s): {', '.join(missing[:10])}")
        if unexpected:
            raise ValueError(f"{w_path}: unexpected tensor(s): {', '.join(unexpected[:10])}")
        for k, t in expected.items():
            if tuple(tensors[k].shape) != tuple(t.shape):
                raise ValueError(f"{w_path}: tensor {k} has shape {tuple(tensors[k].shape)}, expected {tuple(t.shape)}")
        state = {k: v.to(device=device, dtype=dtype) for k, v in tensors.items()}
        model.load_state_dict(state, strict=False, assign=True)
        if config.tie_word_embeddings:
            model.lm_head.weight = model.model.embeddings.weight
        return model.eval()

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` atomically (the tied head is not duplicated)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        if self.config.tie_word_embeddings:
            state.pop("lm_head.weight")
        for name, write in (
            (self.WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": "pt"})),
            (self.CONFIG_NAME, self.config.to_json_file),
        ):
            write_atomically(directory / name, write)
