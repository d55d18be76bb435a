"""Trainable codecs around a frozen backbone: k-space encoder, image decoder, the composed model."""

from .backbones import (
    BACKBONE_REGISTRY,
    BACKBONES,
    BackboneName,
    FrozenBackbone,
    build_backbone,
    resolve_backbone_config,
)
from .decoder import ImageDecoder
from .encoder import KSpaceEncoder
from .model import TOKEN_ORDERS, ReconModel

__all__ = [
    "BACKBONES",
    "BACKBONE_REGISTRY",
    "BackboneName",
    "TOKEN_ORDERS",
    "FrozenBackbone",
    "ImageDecoder",
    "KSpaceEncoder",
    "ReconModel",
    "build_backbone",
    "resolve_backbone_config",
]
