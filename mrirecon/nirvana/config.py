"""Configuration of the Nirvana backbone, compatible with the official ``config.json``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

TRIGGER_MODES = ("token", "off", "scan")


@dataclass
class NirvanaConfig:
    """Backbone hyper-parameters, read from and written to the official ``config.json`` keys.

    Keys the model does not use (``window_size``, ``rope_theta``, ...) and unknown keys are kept in
    ``extra`` and written back unchanged. ``trigger`` is this project's own option (not an official
    key): ``token`` is the reference behaviour, ``off`` skips the inner step, ``scan`` shares one
    inner step over all tokens of a sequence.
    """

    vocab_size: int = 32000
    hidden_size: int = 2048
    num_hidden_layers: int = 22
    num_heads: int = 16
    hidden_ratio: int = 4
    intermediate_size: int | None = None
    norm_eps: float = 1e-6
    norm_first: bool = False
    initializer_range: float = 0.006
    pad_token_id: int | None = 2
    bos_token_id: int = 1
    eos_token_id: int = 2
    tie_word_embeddings: bool = False
    use_cache: bool = False
    concept_dim: int = 64
    logit_dim: int = 32
    model_type: str = "transformer_rnn"
    # Constants of the reference code that are not config keys there.
    num_prelude_layers: int = 2
    conv_size: int = 4
    trigger_lr: float = 0.01
    trigger: str = "token"
    # Attention mode: "full" (reference behaviour) or a positive window (intended SWA).
    attention_window: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.norm_first:
            raise ValueError("norm_first=True is not supported (the official configs use False)")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.trigger not in TRIGGER_MODES:
            raise ValueError(f"trigger must be one of {TRIGGER_MODES}, got {self.trigger!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mlp_size(self) -> int:
        """F: the given intermediate size, else 2/3 of hidden*ratio rounded up to a multiple of 256."""
        if self.intermediate_size is not None:
            return self.intermediate_size
        f = int(self.hidden_size * self.hidden_ratio * 2 / 3)
        return 256 * math.ceil(f / 256)

    _PROJECT_KEYS = ("num_prelude_layers", "conv_size", "trigger_lr", "trigger", "attention_window")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NirvanaConfig:
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        if "logit_dim" not in d:
            raise ValueError("config has no 'logit_dim' (the Trigger bank size); the reference requires it")
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        defaults = NirvanaConfig.__dataclass_fields__
        for k in self._PROJECT_KEYS:  # project options are written only when they differ from the default
            if d[k] == defaults[k].default:
                del d[k]
        d.update(self.extra)
        return dict(sorted(d.items()))

    @classmethod
    def from_json_file(cls, path: str | Path) -> NirvanaConfig:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read the backbone config: {e}") from e
        return cls.from_dict(d)

    def to_json_file(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
