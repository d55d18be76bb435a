"""Frozen backbones the codecs can wrap, by name: a registry of builders (:data:`BACKBONE_REGISTRY`).

Every entry maps ``inputs_embeds [B,T,D] -> hidden [B,T,D]``, never trains (``requires_grad=False``,
always in eval mode), and carries a ``reference`` (name, config, weights source, sha256) that codec
checkpoints store instead of the weights. ``transformer`` is a Llama-style causal decoder of Hugging Face
``transformers`` (the optional extra ``mrirecon[transformer]``) sized like the chosen Nirvana config.

Adding a backbone is one :class:`BackboneEntry` in :data:`BACKBONE_REGISTRY`; the names the options accept
(:data:`BACKBONES`, :data:`BackboneName`) follow from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..assets import asset
from ..io.files import file_sha256
from ..nirvana import NirvanaConfig, NirvanaForCausalLM, NirvanaModel, freeze

BACKBONE_DIR = asset("backbone")
CONFIG_ALIASES = {"tiny": "tiny/config.json", "small": "small/config.json", "1.3B": "nirvana-1.3B/config.json"}
TRANSFORMER_EXTRA = "transformer"


def resolve_backbone_config(name_or_path: str) -> NirvanaConfig:
    """``tiny``, ``1.3B`` or a path to a ``config.json``."""
    path = BACKBONE_DIR / CONFIG_ALIASES[name_or_path] if name_or_path in CONFIG_ALIASES else Path(name_or_path)
    return NirvanaConfig.from_json_file(path)


def state_hash(module: nn.Module) -> str:
    """sha256 over the parameters' names, dtypes, shapes and bytes (order of the state dict)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class FrozenBackbone(nn.Module):
    """A frozen sequence model. ``forward(embeds, trigger=None, trigger_offsets=None) -> hidden``.

    body: None (identity), a :class:`~mrirecon.nirvana.NirvanaModel` (``trigger_aware``: it takes the Trigger
    arguments) or any module called as ``body(inputs_embeds=..., use_cache=False).last_hidden_state``."""

    def __init__(
        self,
        name: str,
        body: nn.Module | None,
        hidden_size: int,
        reference: dict[str, Any],
        trigger_aware: bool = False,
    ) -> None:
        super().__init__()
        self.name, self.hidden_size, self.reference = name, hidden_size, reference
        self.body = freeze(body) if body is not None else None
        self.trigger_aware = trigger_aware and body is not None

    def train(self, mode: bool = True) -> FrozenBackbone:  # always eval: the backbone never trains
        return super().train(False)

    @property
    def num_trigger_layers(self) -> int:
        return self.body.num_trigger_layers if self.trigger_aware else 0

    @property
    def logit_dim(self) -> int:
        return self.body.config.logit_dim if self.trigger_aware else 0

    def forward(self, embeds: Tensor, trigger: str | None = None, trigger_offsets: Tensor | None = None) -> Tensor:
        """``trigger`` / ``trigger_offsets`` reach trigger-aware (Nirvana) bodies only; others ignore them."""
        if self.body is None:
            return embeds
        if self.trigger_aware:
            return self.body(inputs_embeds=embeds, trigger=trigger, trigger_offsets=trigger_offsets).last_hidden_state
        return self.body(inputs_embeds=embeds, use_cache=False).last_hidden_state


@dataclasses.dataclass(frozen=True)
class BackboneRequest:
    """What a builder gets: the resolved Nirvana config (sizes every entry), the reference so far (name,
    config, trigger) and the caller's options (see :func:`build_backbone`)."""

    name: str
    cfg: NirvanaConfig
    reference: dict[str, Any]
    weights: str | None
    seed: int
    trigger: str
    hidden_size: int | None
    dtype: str


@dataclasses.dataclass(frozen=True)
class BackboneEntry:
    """One backbone: ``build(request) -> FrozenBackbone``; ``official_weights``: whether it can load the
    official Nirvana weights (``backbone_weights``); ``summary``: one line for help texts."""

    build: Callable[[BackboneRequest], FrozenBackbone]
    official_weights: bool
    summary: str


def _build_nirvana(req: BackboneRequest, all_recurrent: bool = False) -> FrozenBackbone:
    """Nirvana with the official weights or a seeded random init; ``all_recurrent``: every layer a prelude
    layer (gated-delta mixer only, no attention, no Trigger)."""
    cfg = dataclasses.replace(req.cfg, trigger=req.trigger)
    if all_recurrent:
        cfg = dataclasses.replace(cfg, num_prelude_layers=cfg.num_hidden_layers)
    ref = dict(req.reference)
    if req.weights:
        if all_recurrent:
            body = _load_partial(req.weights, cfg)
        else:
            full = NirvanaForCausalLM.from_pretrained(
                req.weights, num_prelude_layers=cfg.num_prelude_layers, trigger=req.trigger
            )
            body = full.model
        ref.update(weights=str(req.weights), sha256=file_sha256(Path(req.weights) / "model.safetensors"))
    else:
        with torch.random.fork_rng(devices=[]):  # the default inits draw from the global RNG: keep the caller's
            torch.manual_seed(req.seed)
            body = NirvanaModel(cfg)
        body.reset_parameters(req.seed)
        on_meta = any(p.is_meta for p in body.parameters())
        ref.update(weights=f"random-init(seed={req.seed})", sha256=None if on_meta else state_hash(body))
    return FrozenBackbone(req.name, body.to(getattr(torch, req.dtype)), cfg.hidden_size, ref, trigger_aware=True)


def _build_identity(req: BackboneRequest) -> FrozenBackbone:
    """No backbone: the tokens pass through (width ``hidden_size`` or the config's)."""
    width = req.hidden_size or req.cfg.hidden_size
    ref = {**req.reference, "weights": None, "sha256": None, "hidden_size": width}
    return FrozenBackbone(req.name, None, width, ref)


BACKBONE_REGISTRY: dict[str, BackboneEntry] = {
    "nirvana": BackboneEntry(_build_nirvana, True, "Nirvana (the default)"),
    "gated-deltanet": BackboneEntry(
        lambda req: _build_nirvana(req, all_recurrent=True),
        True,
        "Nirvana with attention and Trigger off in every layer",
    ),
    "transformer": BackboneEntry(
        lambda req: _build_transformer(req.cfg, {**req.reference, "trigger": None}, req.seed, req.dtype),
        False,
        "Llama-style causal decoder sized like the config (seeded random weights; the transformer extra)",
    ),
    "none": BackboneEntry(_build_identity, True, "identity: the codecs alone"),
}
BACKBONES = tuple(BACKBONE_REGISTRY)
BackboneName = Literal[BACKBONES]  # the option type: command-line parsers offer and check these names


def build_backbone(
    name: str = "nirvana",
    config: str = "tiny",
    weights: str | None = None,
    seed: int = 0,
    trigger: str = "token",
    hidden_size: int | None = None,
    dtype: str = "float32",
) -> FrozenBackbone:
    """Build the frozen backbone ``name`` of :data:`BACKBONE_REGISTRY`.

    Args:
        name: ``nirvana`` | ``gated-deltanet`` (Nirvana with attention and Trigger off in every layer) |
            ``transformer`` (Llama-style causal decoder of the config's hidden size, layer count, heads and
            MLP size; RoPE, SDPA attention; seeded random weights only; no Trigger) |
            ``none`` (identity, width ``hidden_size`` or the config's).
        config: ``tiny``, ``1.3B`` or a config.json path (ignored when ``weights`` is given).
        weights: a directory with the official ``config.json`` + ``model.safetensors``; None for the
            seeded random initialisation.
        seed: seed of the random initialisation. It is drawn from its own random stream: the caller's
            global torch RNG is left as it was (so the codecs' initialisation follows the caller's seed).
        trigger: default Trigger mode (``token``, ``off``, ``scan``; ignored by ``transformer`` and ``none``).
        dtype: the backbone's parameter and compute dtype (``float32``, ``bfloat16``).
    """
    entry = BACKBONE_REGISTRY.get(name)
    if entry is None:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if weights and not entry.official_weights:
        raise ValueError(f"the {name} backbone has seeded random weights only; leave backbone_weights unset")
    cfg = NirvanaConfig.from_json_file(Path(weights) / "config.json") if weights else resolve_backbone_config(config)
    ref: dict[str, Any] = {"name": name, "config": config if not weights else str(weights), "trigger": trigger}
    return entry.build(BackboneRequest(name, cfg, ref, weights, seed, trigger, hidden_size, dtype))


def llama_config(cfg: NirvanaConfig) -> Any:
    """The ``transformers.LlamaConfig`` sized like a Nirvana config: hidden size, layers, heads (no grouped
    KV), MLP size (``cfg.mlp_size``), vocabulary, norm eps, init std, RoPE theta; SDPA attention, no cache."""
    try:
        from transformers import LlamaConfig
    except ImportError as e:
        raise ImportError(
            "the 'transformer' backbone needs Hugging Face transformers; install the extra: "
            f"pip install -c constraints.txt 'mrirecon[{TRANSFORMER_EXTRA}]' (or 'transformers>=5.6,<6')"
        ) from e
    return LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.mlp_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        hidden_act="silu",
        max_position_embeddings=int(cfg.extra.get("max_position_embeddings", 32768)),
        initializer_range=cfg.initializer_range,
        rms_norm_eps=cfg.norm_eps,
        use_cache=False,
        pad_token_id=cfg.pad_token_id,
        bos_token_id=cfg.bos_token_id,
        eos_token_id=cfg.eos_token_id,
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": float(cfg.extra.get("rope_theta", 10000.0))},
        attention_bias=False,
        mlp_bias=False,
        attn_implementation="sdpa",
    )


def _build_transformer(cfg: NirvanaConfig, ref: dict[str, Any], seed: int, dtype: str) -> FrozenBackbone:
    """A seeded random ``LlamaModel`` (token embeddings kept, as in Nirvana's body, but never used)."""
    config = llama_config(cfg)
    import transformers

    with torch.random.fork_rng(devices=[]):  # Hugging Face's init draws from the global RNG
        torch.manual_seed(seed)
        body = transformers.LlamaModel(config)
    on_meta = any(p.is_meta for p in body.parameters())
    ref.update(
        weights=f"random-init(seed={seed})",
        sha256=None if on_meta else state_hash(body),
        architecture="llama",
        attn_implementation="sdpa",
        transformers=transformers.__version__,
    )
    rope = dict(body.rotary_emb.named_buffers(recurse=False))
    body = body.to(getattr(torch, dtype))
    for key, buf in rope.items():  # RoPE frequencies stay float32 (bfloat16 would round them)
        setattr(body.rotary_emb, key, buf)
    return FrozenBackbone("transformer", body, cfg.hidden_size, ref)


def _load_partial(weights: str, cfg: NirvanaConfig) -> NirvanaModel:
    """The official weights without the attention/Trigger tensors (for ``gated-deltanet``)."""
    from safetensors.torch import load_file

    body = NirvanaModel(cfg)
    tensors = {k.removeprefix("model."): v for k, v in load_file(Path(weights) / "model.safetensors").items()}
    expected = body.state_dict().keys()
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise ValueError(f"{weights}: missing tensor(s) {', '.join(missing[:5])}")
    body.load_state_dict({k: tensors[k] for k in expected}, strict=True)
    return body
