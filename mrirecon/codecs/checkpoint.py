"""Codec checkpoints: ``codec.safetensors`` (trainable tensors only) + ``card.json``.

The card records the network's class and init args, the backbone reference (name, config, weights,
sha256), the data, the metrics and how it was trained. The backbone is rebuilt from its reference and
checked against the recorded hash; it is never stored in a codec checkpoint. Nothing is unpickled.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..assets import asset
from ..io.files import file_sha256, write_atomically, write_text_atomically

CARD = "card.json"
WEIGHTS = "codec.safetensors"
FORMAT = "mrirecon-codec/1"
DEFAULT_CHECKPOINT = asset("default_codec")  # the repository's codecs/default, shipped in the wheel


def net_state(net: nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The trainable tensors of a network on the CPU (floating ones cast to ``dtype`` if given)."""
    state = net.trainable_state_dict() if hasattr(net, "trainable_state_dict") else net.state_dict()
    cast = lambda t: t.to(dtype) if dtype is not None and t.is_floating_point() else t  # noqa: E731
    return {k: cast(v.detach().cpu()).contiguous() for k, v in state.items()}


def save_codec(
    directory: str | os.PathLike,
    net: nn.Module,
    net_config: dict[str, Any],
    dtype: torch.dtype | None = None,
    **card: Any,
) -> Path:
    """Write ``codec.safetensors`` and ``card.json`` (atomically) into ``directory``.

    net_config: ``{"class_path": "mrirecon....", "init_args": {...}}``; ``dtype``: store floating
    tensors in this dtype (e.g. float16 to halve the file; loading casts back to the network's dtype);
    ``card``: extra card fields (data, metrics, training, ...).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS
    write_atomically(weights, lambda p: save_file(net_state(net, dtype), p, metadata={"format": FORMAT}))
    backbone = getattr(net, "backbone", None)
    content = {
        "format": FORMAT,
        "net": net_config,
        "backbone": getattr(backbone, "reference", None),
        "stored_dtype": str(dtype or "as trained").removeprefix("torch."),
        **card,
        "files": {WEIGHTS: file_sha256(weights)},
    }
    write_text_atomically(directory / CARD, json.dumps(content, indent=2, default=str) + "\n")
    return directory


class UnsafeCheckpointError(ValueError):
    """A checkpoint source or content that is refused (the message says why)."""


ALLOWED_CLASS_PREFIX = "mrirecon."


def check_class_path(class_path: str, where: str) -> None:
    """Refuse a class path (from a card or a Lightning checkpoint) outside this package, before any import."""
    if not isinstance(class_path, str) or not class_path.startswith(ALLOWED_CLASS_PREFIX) or ".." in class_path:
        raise UnsafeCheckpointError(f"{where}: class_path {class_path!r} is not part of mrirecon; refused")


def _net_class(class_path: str) -> type[nn.Module]:
    """Import a network class named by a card; only classes of this package are allowed."""
    check_class_path(class_path, "card")
    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"card names {class_path!r}, which is not a network class")
    return cls


def read_card(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / CARD
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{path}: no codec card (a checkpoint folder holds {CARD} and {WEIGHTS})") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if card.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {card.get('format')!r} (expected {FORMAT})")
    return card


def load_codec(
    directory: str | os.PathLike = DEFAULT_CHECKPOINT, device: str | torch.device = "cpu", **overrides: Any
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network of a codec checkpoint and load its tensors (strict). -> (net in eval mode, card).

    ``overrides`` replace init args (e.g. ``trigger="off"``, ``backbone_weights=...``).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    card = read_card(directory)
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: missing")
    expected = card.get("files", {}).get(WEIGHTS)
    if expected and file_sha256(weights) != expected:
        raise ValueError(f"{weights}: sha256 differs from the card (file changed or corrupt)")
    cls = _net_class(card["net"]["class_path"])
    net = cls(**{**card["net"].get("init_args", {}), **overrides})
    backbone = getattr(net, "backbone", None)
    saved = card.get("backbone") or {}
    rebuilt = backbone.reference.get("sha256") if backbone is not None else None
    if saved.get("sha256") and "backbone_weights" not in overrides and rebuilt != saved["sha256"]:
        raise ValueError(
            f"{directory}: backbone {saved.get('weights')} rebuilt with a different hash "
            f"({rebuilt} != {saved['sha256']})"
        )
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{weights}: not a readable safetensors file ({e})") from e
    missing, unexpected = net.load_state_dict(state, strict=False)
    fresh = getattr(net, "FRESH_TENSORS", ())
    missing = [k for k in missing if not k.startswith("backbone.") and k not in fresh]
    if missing or unexpected:
        raise ValueError(f"{weights}: missing {missing[:5]} / unexpected {unexpected[:5]} tensors")
    return net.to(device).eval(), card
